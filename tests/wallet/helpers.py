"""A wallet client for tests: config, app and Safes, JWTs, sockets, the initial sequence."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import trio
from anvil import Anvil
from trio_websocket import WebSocketConnection

from rtserver.config import ChainConfig, Config, JwtConfig, WalletConfig, WalletToken
from rtserver.user_auth import mint_hs256

from conftest import make_config, rtserver_client, run_cli

ADMIN = "admin-secret"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}
SECRET = "wallet-test-secret-0123456789abcdef"
CHAIN_TYPE = "anvil"
SYMBOL = "EURe"
UNIT = 10**18
#: The initial sequence, in the document's order.
INITIAL = [
    "auth_success",
    "balance_data",
    "transaction_data",
    "chainid_data",
    "recovery_data",
    "user_data",
]


async def deploy_token(anvil: Anvil) -> str:
    return await anvil.deploy(
        "TestToken", ["string", "string", "uint8", "uint256"], ["Euro", SYMBOL, 18, 10**6 * UNIT]
    )


async def send_token(anvil: Anvil, token: str, to: str, amount: int) -> str:
    tx_hash = await anvil.call(
        anvil.accounts[0], token, "transfer(address,uint256)", ["address", "uint256"], [to, amount]
    )
    receipt = await anvil.receipt(tx_hash)
    assert receipt["status"] == "0x1"
    return tx_hash.lower()


def create_app(data_dir: Path) -> str:
    """A new app in ``data_dir``'s database (through the CLI): its id."""
    created = run_cli("apps", "create", "wallet-shop", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["app_id"])


def wallet_config(data_dir: Path, anvil: Anvil, token: str, app_id: str, **wallet: Any) -> Config:
    chain = ChainConfig(
        chain_type=CHAIN_TYPE,
        chain_id=anvil.chain_id,
        rpc_urls=(anvil.url,),
        poll_interval=0.1,
        rpc_timeout=5.0,
    )
    return make_config(data_dir, admin_token=ADMIN).replace(
        chains=(chain,),
        jwt=JwtConfig(hs256_secret=SECRET, app_id=app_id, leeway=5.0),
        wallet=WalletConfig(tokens=(WalletToken(anvil.chain_id, token, SYMBOL, 18),), **wallet),
    )


def config_toml(anvil: Anvil, token: str, app_id: str) -> str:
    """The same settings as :func:`wallet_config`, as a file for a server process."""
    return f"""
[server]
admin_token = "{ADMIN}"
shutdown_grace = 5.0

[jwt]
hs256_secret = "{SECRET}"
app_id = "{app_id}"

[wallet]
[[wallet.tokens]]
chain_id = {anvil.chain_id}
address = "{token}"
symbol = "{SYMBOL}"
decimals = 18

[[chains]]
chain_type = "{CHAIN_TYPE}"
chain_id = {anvil.chain_id}
rpc_urls = ["{anvil.url}"]
poll_interval = 0.1
"""


def jwt_for(user_id: str, app_id: str, ttl: float = 600.0) -> str:
    return mint_hs256(
        JwtConfig(hs256_secret=SECRET, app_id=app_id), user_id, ttl=ttl, now=time.time()
    )


async def put_safe(url: str, app_id: str, user_id: str, chain_id: int, address: str) -> None:
    async with rtserver_client(url, timeout=10) as client:
        answer = await client.put(
            f"/admin/v1/apps/{app_id}/users/{user_id}/safes/{chain_id}",
            json={"address": address, "signer_id": f"signer-{user_id}", "threshold": 1},
            headers=ADMIN_HEADERS,
        )
    assert answer.status_code == 200, answer.text


def ws_url(url: str, chain_id: int | None = None) -> str:
    base = url.replace("http://", "ws://") + "/ws"
    return base if chain_id is None else f"{base}?blockchainId={chain_id}"


async def recv(ws: WebSocketConnection, within: float = 10.0) -> dict[str, Any]:
    with trio.fail_after(within):
        message = await ws.get_message()
    value = json.loads(message)
    assert isinstance(value, dict)
    assert set(value) == {"type", "data", "timestamp"}, value
    return value


async def authenticate(ws: WebSocketConnection, token: str) -> list[dict[str, Any]]:
    """Send the auth message; the six messages of the initial sequence."""
    await ws.send_message(json.dumps({"type": "auth", "token": token, "clientName": "tests"}))
    return [await recv(ws) for _ in INITIAL]


async def request(ws: WebSocketConnection, body: dict[str, Any]) -> dict[str, Any]:
    await ws.send_message(json.dumps(body))
    return await recv(ws)


async def next_of(ws: WebSocketConnection, kind: str, within: float = 20.0) -> dict[str, Any]:
    """The next message of type ``kind`` (others before it are skipped)."""
    with trio.fail_after(within):
        while True:
            message = await recv(ws, within)
            if message["type"] == kind:
                return message


async def quiet(ws: WebSocketConnection) -> None:
    """Nothing was queued to ``ws``: a ``get_balance`` is answered first."""
    answer = await request(ws, {"type": "get_balance", "requestId": "quiet"})
    assert answer["type"] == "balance_data" and answer["data"]["requestId"] == "quiet", answer

"""Bad input on the wallet socket: each gets the document's ``error``/``auth_error`` or
close code, changes nothing, and the other clients are served on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio
from anvil import Anvil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from rtserver.config import WebSocketConfig
from rtserver.protocols.wallet._wire import checksum
from wallet.helpers import (
    ADMIN_HEADERS,
    SECRET,
    authenticate,
    create_app,
    deploy_token,
    jwt_for,
    put_safe,
    quiet,
    recv,
    request,
    wallet_config,
    ws_url,
)

from conftest import rtserver_client, run_server

EXPIRED = "JWT token expired, please refresh your token"
INVALID = "Invalid JWT token"


def _rs256(claims: dict[str, Any]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.encode(claims, pem, algorithm="RS256")


def _claims(user_id: str = "alice", **extra: Any) -> dict[str, Any]:
    return {"sub": user_id, "exp": int(time.time()) + 600, **extra}


#: (auth message token, the auth_error message expected).
BAD_TOKENS = {
    "another secret": (
        jwt.encode(_claims(), "not-the-secret-0123456789abcdef-0123", algorithm="HS256"),
        INVALID,
    ),
    "another algorithm": (_rs256(_claims()), INVALID),
    "alg none": (jwt.encode(_claims(), None, algorithm="none"), INVALID),  # type: ignore[arg-type]
    "expired": (
        jwt.encode(_claims(exp=int(time.time()) - 3600), SECRET, algorithm="HS256"),
        EXPIRED,
    ),
    "not a JWT": ("not.a.jwt", INVALID),
    "no user claim": (
        jwt.encode({"exp": int(time.time()) + 600}, SECRET, algorithm="HS256"),
        INVALID,
    ),
    "empty": ("", "Authentication token is required"),
    "not a string": (12345, "Authentication token is required"),
}


async def _closed_with(ws: WebSocketConnection, code: int) -> None:
    with trio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
        await ws.get_message()
    assert closed.value.reason.code == code


async def test_bad_input_corpus(tmp_path: Path, anvil: Anvil) -> None:
    token = await deploy_token(anvil)
    data_dir = tmp_path / "data"
    app_id = create_app(data_dir)
    chain_id = anvil.chain_id
    config = wallet_config(data_dir, anvil, token, app_id, auth_timeout=1.0)
    config = config.replace(websocket=WebSocketConfig(max_frame_bytes=4096))
    async with run_server(config) as server:
        await put_safe(server.url, app_id, "alice", chain_id, anvil.accounts[3])
        url = ws_url(server.url, chain_id)
        async with open_websocket_url(url) as bystander:
            await authenticate(bystander, jwt_for("alice", app_id))

            for name, (bad, expected) in BAD_TOKENS.items():
                async with open_websocket_url(url) as ws:
                    await ws.send_message(json.dumps({"type": "auth", "token": bad}))
                    answer = await recv(ws)
                    assert answer["type"] == "auth_error", name
                    assert answer["data"] == {"message": expected, "context": "auth_process"}, name
                    await _closed_with(ws, 1008)

            # An unknown blockchainId names the supported ones.
            async with open_websocket_url(ws_url(server.url) + "?blockchainId=999") as ws:
                await ws.send_message(
                    json.dumps({"type": "auth", "token": jwt_for("alice", app_id)})
                )
                answer = await recv(ws)
                assert answer["type"] == "auth_error"
                assert f"supported: {chain_id}" in answer["data"]["message"]
                await _closed_with(ws, 1008)

            # A user without a Safe on the chain.
            async with open_websocket_url(url) as ws:
                await ws.send_message(
                    json.dumps({"type": "auth", "token": jwt_for("carol", app_id)})
                )
                answer = await recv(ws)
                assert answer["type"] == "auth_error" and "No Safe" in answer["data"]["message"]
                await _closed_with(ws, 1008)

            # Before auth: only auth is accepted; malformed input is answered; then auth works.
            async with open_websocket_url(url) as ws:
                for message, context in [
                    ("{not json", "message"),
                    ("[1, 2]", "message"),
                    (json.dumps({"type": "get_balance"}), "auth"),
                    (json.dumps({"type": "get_transactions"}), "auth"),
                ]:
                    await ws.send_message(message)
                    answer = await recv(ws)
                    assert answer["type"] == "error" and answer["data"]["context"] == context
                await ws.send_message(b"\x00binary")
                assert (await recv(ws))["type"] == "error"
                sequence = await authenticate(ws, jwt_for("alice", app_id))
                assert sequence[0]["type"] == "auth_success"
                # After auth: unknown types, a second auth, bad params.
                unknown = await request(ws, {"type": "subscribe"})
                assert unknown["data"] == {
                    "message": "Unknown message type: subscribe",
                    "context": "message",
                }
                again = await request(ws, {"type": "auth", "token": jwt_for("alice", app_id)})
                assert again["type"] == "error" and again["data"]["context"] == "auth"
                for params in (
                    {"limit": 0},
                    {"limit": "many"},
                    {"startDate": "yesterday"},
                    [1],
                    {"startDate": "2025-02-01", "endDate": "2025-01-01"},
                ):
                    answer = await request(ws, {"type": "get_transactions", "params": params})
                    assert (
                        answer["type"] == "error" and answer["data"]["context"] == "transactions"
                    ), params
                # An oversized frame closes with 1009.
                await ws.send_message("x" * 10_000)
                await _closed_with(ws, 1009)

            # No auth message in time: auth_error, then 1008.
            async with open_websocket_url(url) as ws:
                answer = await recv(ws, within=5)
                assert answer["type"] == "auth_error" and "timeout" in answer["data"]["message"]
                await _closed_with(ws, 1008)

            # Nothing changed; the bystander was served all along.
            await quiet(bystander)
            async with rtserver_client(server.url, timeout=10) as client:
                user = (
                    await client.get(f"/admin/v1/apps/{app_id}/users/alice", headers=ADMIN_HEADERS)
                ).json()
            assert [s["address"] for s in user["safes"]] == [anvil.accounts[3]]
            assert user["kyc_state"] is None
            assert (
                checksum(anvil.accounts[3])
                == (await request(bystander, {"type": "get_balance"}))["data"]["safeAddress"]
            )


async def test_a_server_fault_closes_that_socket_with_1011(
    tmp_path: Path, anvil: Anvil, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rtserver.protocols.wallet._wallet import Wallet

    async def broken(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("a bug in a read")

    token = await deploy_token(anvil)
    data_dir = tmp_path / "data"
    app_id = create_app(data_dir)
    async with run_server(wallet_config(data_dir, anvil, token, app_id)) as server:
        await put_safe(server.url, app_id, "alice", anvil.chain_id, anvil.accounts[3])
        url = ws_url(server.url, anvil.chain_id)
        async with open_websocket_url(url) as other, open_websocket_url(url) as ws:
            await authenticate(other, jwt_for("alice", app_id))
            await authenticate(ws, jwt_for("alice", app_id))
            monkeypatch.setattr(Wallet, "transactions", broken)
            await ws.send_message(json.dumps({"type": "get_transactions"}))
            await _closed_with(ws, 1011)
            await quiet(other)  # the other socket is served on

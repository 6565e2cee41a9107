"""The wallet scenario: the initial sequence at N concurrent connects, and push latency.

A real rtserver process follows a real Anvil node with an ERC-20 listed in
``[[wallet.tokens]]``; N users each have a Safe (registered through the admin API) and
a JWT. Measured:

* **initial sequence**: N sockets connect and authenticate at once; per socket, the
  time from opening the connection to the sixth message of the initial sequence
  (``user_data``), and the wall time until all N have it;
* **push latency**: ERC-20 transfers to a sample of the Safes, one at a time; per
  transfer, the time from the node's answer to ``eth_sendTransaction`` (Anvil mines at
  once) to the owner's socket receiving ``new_transaction`` (and ``balance_update``).

Run alone: ``python benchmarks/wallet.py --connections 1000 --transfers 50``, or as the
``wallet`` scenario of ``./scripts/bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio
from eth_abi import encode
from eth_hash.auto import keccak
from trio_websocket import WebSocketConnection, open_websocket_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.chain import CHAIN_ID, rpc, start_anvil  # noqa: E402
from rtserver.config import JwtConfig  # noqa: E402
from rtserver.user_auth import mint_hs256  # noqa: E402

SECRET = "bench-wallet-secret-0123456789abcdef"
ADMIN = "bench-admin-token"
POLL_INTERVAL = 0.2


def _deploy_token(client: httpx.Client, url: str, owner: str) -> str:
    code = (ROOT / "contracts" / "TestToken.bin").read_text().strip()
    args = encode(["string", "string", "uint8", "uint256"], ["Euro", "EURe", 18, 10**30])
    tx = rpc(client, url, "eth_sendTransaction", {"from": owner, "data": "0x" + code + args.hex()})
    deadline = time.monotonic() + 30
    # The node may answer the send before the receipt can be read (seen in a full run).
    while (receipt := rpc(client, url, "eth_getTransactionReceipt", tx)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no receipt for the token deployment {tx}")
        time.sleep(0.05)
    return str(receipt["contractAddress"]).lower()


def _transfer_data(to: str, amount: int) -> str:
    selector = keccak(b"transfer(address,uint256)")[:4]
    return "0x" + (selector + encode(["address", "uint256"], [to, amount])).hex()


def _config(anvil_url: str, token: str, app_id: str) -> str:
    return f"""
[server]
admin_token = "{ADMIN}"
[jwt]
hs256_secret = "{SECRET}"
app_id = "{app_id}"
[wallet]
[[wallet.tokens]]
chain_id = {CHAIN_ID}
address = "{token}"
symbol = "EURe"
decimals = 18
[[chains]]
chain_type = "anvil"
chain_id = {CHAIN_ID}
rpc_urls = ["{anvil_url}"]
poll_interval = {POLL_INTERVAL}
"""


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 1)}


async def _connect(
    url: str,
    token: str,
    out: list[float],
    sockets: dict[str, Any],
    user: str,
    ready: trio.Event,
    done: trio.Event,
) -> None:
    started = time.perf_counter()
    async with open_websocket_url(url) as ws:
        await ws.send_message(json.dumps({"type": "auth", "token": token, "clientName": "bench"}))
        types = [json.loads(await ws.get_message())["type"] for _ in range(6)]
        if types[-1] != "user_data":
            raise RuntimeError(f"unexpected initial sequence: {types}")
        out.append(time.perf_counter() - started)
        sockets[user] = ws
        ready.set()
        await done.wait()


async def _measure(
    server_url: str,
    anvil_url: str,
    token: str,
    users: dict[str, str],
    app_id: str,
    owner: str,
    transfers: int,
) -> dict[str, Any]:
    ws_url = server_url.replace("http://", "ws://") + f"/ws?blockchainId={CHAIN_ID}"
    jwt = JwtConfig(hs256_secret=SECRET, app_id=app_id)
    tokens = {u: mint_hs256(jwt, u, ttl=3600, now=time.time()) for u in users}
    connect_times: list[float] = []
    sockets: dict[str, WebSocketConnection] = {}
    done = trio.Event()
    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        started = time.perf_counter()
        ready_events = []
        for user in users:
            ready = trio.Event()
            ready_events.append(ready)
            nursery.start_soon(
                _connect, ws_url, tokens[user], connect_times, sockets, user, ready, done
            )
        for ready in ready_events:
            await ready.wait()
        wall = time.perf_counter() - started
        sample = list(users)[:transfers]
        async with httpx.AsyncClient(timeout=30) as client:
            for user in sample:
                ws = sockets[user]
                body = {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_sendTransaction",
                    "params": [
                        {"from": owner, "to": token, "data": _transfer_data(users[user], 10**18)}
                    ],
                }
                await client.post(anvil_url, json=body)
                sent = time.perf_counter()
                with trio.fail_after(30):
                    while json.loads(await ws.get_message())["type"] != "new_transaction":
                        pass
                latencies.append(time.perf_counter() - sent)
        done.set()
    return {
        "connections": len(users),
        "initial_sequence": {"all_connected_s": round(wall, 2), **_percentiles(connect_times)},
        "push_latency": {
            "transfers": len(latencies),
            "poll_interval_s": POLL_INTERVAL,
            **_percentiles(latencies),
        },
    }


def run_wallet(
    connections: int, transfers: int, work: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the scenario (see the module doc); the figures as a dict."""
    from benchmarks.run import free_port

    work.mkdir(parents=True, exist_ok=True)
    anvil_port, server_port = free_port(), free_port()
    anvil, accounts = start_anvil(anvil_port, work / "anvil-wallet.log")
    anvil_url = f"http://127.0.0.1:{anvil_port}"
    data = work / "data-wallet"
    subprocess.run(["rm", "-rf", str(data)], check=True)
    server: subprocess.Popen[bytes] | None = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTSERVER_")}
    try:
        with httpx.Client(timeout=30) as client:
            token = _deploy_token(client, anvil_url, accounts[0])
        rt = [sys.executable, "-m", "rtserver"]
        created = subprocess.run(
            [*rt, "apps", "create", "bench-wallet", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=ROOT,
        )
        app_id = json.loads(created.stdout)["app_id"]
        config = work / "wallet.toml"
        config.write_text(_config(anvil_url, token, app_id))
        with open(work / "server-wallet.log", "wb") as server_log:
            server = subprocess.Popen(
                [
                    *rt,
                    "serve",
                    "--config",
                    str(config),
                    "--data-dir",
                    str(data),
                    "--bind",
                    f"127.0.0.1:{server_port}",
                ],
                stdout=server_log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        url = f"http://127.0.0.1:{server_port}"
        users = {f"user{i}": "0x" + secrets.token_hex(20) for i in range(connections)}
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("rtserver did not start")
                time.sleep(0.1)
            for user, safe in users.items():
                client.put(
                    f"/admin/v1/apps/{app_id}/users/{user}/safes/{CHAIN_ID}",
                    json={"address": safe},
                    headers={"Authorization": f"Bearer {ADMIN}"},
                ).raise_for_status()
        log(f"wallet: {connections} users registered; connecting")
        return trio.run(_measure, url, anvil_url, token, users, app_id, accounts[0], transfers)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        anvil.terminate()
        anvil.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--transfers", type=int, default=50)
    args = parser.parse_args()
    result = run_wallet(
        args.connections,
        args.transfers,
        ROOT / "bench-results",
        lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

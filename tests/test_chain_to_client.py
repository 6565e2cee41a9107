"""The whole path with real parts: Anvil → watcher → store → hub → a WebSocket client.

A real ``rtserver serve`` process follows a real Anvil node; the client is a real
WebSocket on loopback. ``kill -9`` in the middle loses nothing and duplicates nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from anvil import Anvil, anvil_binary, start_anvil
from delivery.helpers import command, connect, connected, nothing_pending, recv, wait_closed

from conftest import ServerProcess, rtserver_client, run_cli

pytestmark = pytest.mark.skipif(anvil_binary() is None, reason="Anvil not installed")


@pytest.fixture
def anvil(tmp_path: Path) -> Anvil:
    node = start_anvil(tmp_path / "anvil")
    yield node  # type: ignore[misc]
    node.stop()


def write_config(tmp_path: Path, node: Anvil) -> Path:
    path = tmp_path / "rtserver.toml"
    path.write_text(
        "[[chains]]\n"
        'chain_type = "anvil"\n'
        f"chain_id = {node.chain_id}\n"
        f'rpc_urls = ["{node.url}"]\n'
        "poll_interval = 0.05\n"
    )
    return path


async def test_chain_transfers_reach_the_client_across_kill_9(
    tmp_path: Path, anvil: Anvil, server_process: Callable[..., ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    config = str(write_config(tmp_path, anvil))
    created = run_cli("apps", "create", "wallet", "--data-dir", str(data_dir))
    key = json.loads(created.stdout)["api_key"]
    owner, alice = anvil.accounts[0], anvil.accounts[1]

    def start() -> ServerProcess:
        return server_process("--config", config, data_dir=data_dir)

    proc = await trio.to_thread.run_sync(start)
    async with rtserver_client(proc.url, headers={"X-API-Key": key}) as client:
        added = await client.post(
            "/tx/api/v1/addresses",
            json={"wallets": [{"chain_type": "anvil", "address": [alice]}]},
        )
        assert added.status_code == 200
    async with trio.open_nursery() as nursery:
        ws = await connect(nursery, proc.url, key)
        await connected(ws)

        acked_tx = await anvil.transfer(owner, alice, 1)
        push = await recv(ws)
        assert push["type"] == "transaction" and push["code"] == 0
        data = push["data"]
        assert data["txhash"] == acked_tx and data["chain_type"] == "anvil"
        assert data["listenAddress"] == [alice] and data["is_reorg_resend"] is False
        assert data["amount"] == "1" and data["txStatus"] == "success"
        ack = {"id": "a1", "type": "transactionACK", "data": {"messageId": push["id"]}}
        assert (await command(ws, ack))["code"] == 0

        unacked_tx = await anvil.transfer(owner, alice, 2)
        unacked = await recv(ws)
        assert unacked["data"]["txhash"] == unacked_tx

        proc.kill()  # SIGKILL: no shutdown code runs
        await wait_closed(ws)

        # Mined while rtserver is down: the watcher catches up from its checkpoint.
        missed_tx = await anvil.transfer(owner, alice, 3)
        proc = await trio.to_thread.run_sync(start)
        ws = await connect(nursery, proc.url, key)
        hello = await connected(ws)
        first = await recv(ws)
        assert first == unacked  # the same message id and bytes: a resend
        second = await recv(ws)
        assert second["data"]["txhash"] == missed_tx and second["data"]["amount"] == "3"
        assert (await command(ws, {**ack, "data": {"messageId": second["id"]}}))["code"] == 0
        await nothing_pending(ws)  # the ACKed message never came back; nothing twice
        assert hello["data"]["appId"] == json.loads(created.stdout)["app_id"]
        await ws.aclose()
    assert proc.terminate() == 0

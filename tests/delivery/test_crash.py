"""Crash safety with real server processes: ``kill -9`` loses no committed message."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from delivery.helpers import (
    command,
    connect,
    connected,
    make_record,
    nothing_pending,
    recv,
    wait_closed,
)
from rtserver.protocols.address_monitoring._naming import push_data
from rtserver.store import outbox

from conftest import REPO, ServerProcess, free_port, rtserver_client, run_cli
from toy_protocol import TOKEN


def _replay_body(n: int) -> dict[str, object]:
    record = make_record(n)
    return {
        "id": f"replay-{n}",
        "time": 1745000000000,
        "type": "transaction",
        "code": 0,
        "data": push_data(record, [record.sender or ""], False),
        "msg": "success",
    }


async def _replay(client: httpx.AsyncClient, n: int) -> None:
    answer = await client.post("/tx/api/v1/transaction/ws/replay", json=_replay_body(n))
    assert answer.status_code == 200, answer.text


async def test_kill_9_then_reconnect_gets_unacked_once(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    created = run_cli("apps", "create", "crashy", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    api_key = json.loads(created.stdout)["api_key"]
    headers = {"X-API-Key": api_key}

    proc = await trio.to_thread.run_sync(lambda: server_process(data_dir=data_dir))
    async with trio.open_nursery() as nursery:
        async with rtserver_client(proc.url, headers=headers, timeout=10) as client:
            ws = await connect(nursery, proc.url, api_key)
            await connected(ws)
            await _replay(client, 1)
            await _replay(client, 2)
            unacked, acked = await recv(ws), await recv(ws)
            assert unacked["data"]["txhash"] == make_record(1).tx_hash
            reply = await command(
                ws, {"id": "ack", "type": "transactionACK", "data": {"messageId": acked["id"]}}
            )
            assert reply["code"] == 0  # answered only once the ACK is committed
        proc.kill()  # SIGKILL: no shutdown code runs
        await wait_closed(ws)

        # A message committed while no client was connected.
        proc = await trio.to_thread.run_sync(lambda: server_process(data_dir=data_dir))
        async with rtserver_client(proc.url, headers=headers, timeout=10) as client:
            await _replay(client, 3)
        ws = await connect(nursery, proc.url, api_key)
        await connected(ws)
        first, second = await recv(ws), await recv(ws)
        assert first == unacked  # same id, same bytes: a resend, not a new message
        assert second["data"]["txhash"] == make_record(3).tx_hash
        await nothing_pending(ws)  # the ACKed one never comes back, nothing twice
        await ws.aclose()
        proc.kill()

    import sqlite3

    conn = sqlite3.connect(data_dir / "rtserver.sqlite3")
    try:
        assert outbox.pending_count(conn, json.loads(created.stdout)["app_id"]) == 2
    finally:
        conn.close()


async def test_history_recovery_is_exact_and_flagged_across_kill_9(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    """A client back with its last offset gets exactly what it missed, complete; one whose
    offset fell out of the retained history is told recovery is incomplete."""
    data_dir = tmp_path / "data"
    env = {"RTSERVER_STREAMS_HISTORY_SIZE": "4"}

    def start() -> ServerProcess:
        port = free_port()
        argv = [sys.executable, str(REPO / "tests" / "toy_protocol.py"), "serve"]
        argv += ["--bind", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
        return server_process(data_dir=data_dir, port=port, argv=argv, env=env)

    def url(proc: ServerProcess, since: str = "") -> str:
        query = f"?token={TOKEN}" + (f"&since={since}" if since else "")
        return proc.url.replace("http://", "ws://") + "/toy/r" + query

    async def greeted(ws: WebSocketConnection) -> str:
        """The recovery line (after the greeting)."""
        with trio.fail_after(10):
            assert str(await ws.get_message()).startswith("hello ")
            return str(await ws.get_message())

    async def publish(ws: WebSocketConnection, *texts: str) -> list[str]:
        for text in texts:
            await ws.send_message(f"publish {text}")
        with trio.fail_after(10):
            return [str(await ws.get_message()) for _ in texts]

    proc = await trio.to_thread.run_sync(start)
    async with open_websocket_url(url(proc)) as ws:
        await greeted(ws)
        assert await publish(ws, "m1", "m2", "m3") == ["1 m1", "2 m2", "3 m3"]
    async with open_websocket_url(url(proc)) as ws:
        epoch = (await greeted(ws)).rpartition("epoch=")[2]
    assert epoch
    proc.kill()  # SIGKILL: no shutdown code runs

    proc = await trio.to_thread.run_sync(start)
    async with open_websocket_url(url(proc)) as ws:
        await greeted(ws)
        assert await publish(ws, "m4", "m5") == ["4 m4", "5 m5"]  # offsets go on
    async with open_websocket_url(url(proc, f"{epoch}:3")) as back:
        assert await greeted(back) == f"recovered complete=true n=2 epoch={epoch}"
        with trio.fail_after(10):
            assert [await back.get_message(), await back.get_message()] == ["4 m4", "5 m5"]
            await back.send_message("ping")
            assert await back.get_message() == "echo ping"  # nothing else, nothing twice
        assert await publish(back, "m6", "m7", "m8", "m9") == ["6 m6", "7 m7", "8 m8", "9 m9"]
    proc.kill()

    proc = await trio.to_thread.run_sync(start)
    async with open_websocket_url(url(proc, f"{epoch}:3")) as stale:
        # Only the last 4 are kept: 4 and 5 are gone, so recovery from 3 is incomplete.
        assert await greeted(stale) == f"recovered complete=false n=4 epoch={epoch}"
        with trio.fail_after(10):
            assert [await stale.get_message() for _ in range(4)] == ["6 m6", "7 m7", "8 m8", "9 m9"]
    async with open_websocket_url(url(proc, f"{epoch}:5")) as recent:
        assert await greeted(recent) == f"recovered complete=true n=4 epoch={epoch}"
    proc.kill()

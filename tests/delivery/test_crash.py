"""Crash safety with real server processes: ``kill -9`` loses no committed message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import trio

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

from conftest import ServerProcess, run_cli


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
        async with httpx.AsyncClient(base_url=proc.url, headers=headers, timeout=10) as client:
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
        async with httpx.AsyncClient(base_url=proc.url, headers=headers, timeout=10) as client:
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

"""Injecting transactions the way the chain watcher does, and WebSocket clients."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import trio
from trio_websocket import WebSocketConnection, connect_websocket_url

from rtserver.core import Core
from rtserver.events import TransactionMatch
from rtserver.records import TransactionRecord
from rtserver.store import apps
from rtserver.store.apps import NewApp
from rtserver.store.transactions import store_records

WS_PATH = "/tx/api/v1/transaction/ws"
SENDER = "0x1111111111111111111111111111111111111111"
RECEIVER = "0x2222222222222222222222222222222222222222"


def make_record(n: int, *, padding: int = 0, chain_id: int = 1) -> TransactionRecord:
    return TransactionRecord(
        chain_type="ethereum",
        chain_id=chain_id,
        tx_hash=f"0x{n:064x}",
        height=1000 + n,
        tx_time=1_745_000_000 + n,
        sender=SENDER,
        receiver=RECEIVER,
        transfer_type="native",
        amount=str(10**18 + n),
        symbol="ETH",
        decimals=18,
        tx_status="success",
        method_call="x" * padding or None,
    )


async def inject(
    core: Core,
    record: TransactionRecord,
    app_ids: Sequence[str] = (),
    connection_ids: Sequence[str] = (),
    listen: str = SENDER,
) -> Any:
    """Store ``record`` and stage its matches in ONE write job, publish after commit."""
    matches = [TransactionMatch(record, (listen,), app_id=a) for a in app_ids]
    matches += [TransactionMatch(record, (listen,), connection_id=c) for c in connection_ids]

    def job(conn: Any) -> Any:
        store_records(conn, [record], now=core.clock.time())
        return core.match_sink.stage(conn, matches)

    return await core.store.write(job, after_commit=core.match_sink.publish)


async def new_app(core: Core, webhook_url: str | None = None) -> NewApp:
    return await core.store.write(
        lambda conn: apps.create_app(conn, "test", webhook_url, now=core.clock.time())
    )


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + WS_PATH


async def connect(
    nursery: trio.Nursery,
    base: str,
    api_key: str,
    *,
    resend: str | None = None,
    queue: int = 1,
) -> WebSocketConnection:
    headers = [(b"X-API-Key", api_key.encode())]
    if resend is not None:
        headers.append((b"X-ResendDuration", resend.encode()))
    return await connect_websocket_url(
        nursery,
        ws_url(base),
        extra_headers=headers,
        message_queue_size=queue,
        max_message_size=16 * 1024 * 1024,
    )


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(10):
        return json.loads(await ws.get_message())  # type: ignore[no-any-return]


async def connected(ws: WebSocketConnection) -> dict[str, Any]:
    message = await recv(ws)
    assert message["type"] == "connected", message
    return message


async def command(ws: WebSocketConnection, body: Any) -> dict[str, Any]:
    await ws.send_message(body if isinstance(body, str | bytes) else json.dumps(body))
    return await recv(ws)


async def nothing_pending(ws: WebSocketConnection) -> None:
    """A ping round trip: the next message must be its pong (nothing else was queued)."""
    reply = await command(ws, {"id": "probe", "type": "ping", "data": {}})
    assert reply["type"] == "pong" and reply["id"] == "probe", reply


async def wait_closed(ws: WebSocketConnection) -> None:
    """Read until the connection is gone (the server was killed or closed it)."""
    with trio.fail_after(10):
        try:
            while True:
                await ws.get_message()
        except Exception:
            pass

"""The comparison peer: a minimal broadcaster on the asyncio ``websockets`` library.

What a Python developer would write first for "push chain events to apps": no database,
no outbox, no retries. It speaks enough of the address-monitoring WebSocket protocol for
the same load generator to drive it and rtserver alike:

* ``GET /tx/api/v1/transaction/ws`` with ``X-API-Key`` (400 without); the key names the
  app; the server sends the ``connected`` message first;
* ``transaction`` pushes in the ``{id,time,type,code,data,msg}`` envelope, ``data`` built
  by the same naming function as rtserver's (``push_data``), serialised once per event
  and app and handed to every connection of the app with ``websockets.broadcast``;
* ``transactionACK`` and ``ping`` commands are answered (ACKs change nothing here).

``POST /tx/api/v1/transaction/ws/replay`` (with ``X-API-Key``, on the control port):
the message is pushed to the app's connections at once, like rtserver's replay minus the
store.

Control: ``POST /bench/inject`` on ``--control`` (a tiny HTTP server) with the rtserver
injector's body ``{"count": N, "rate": R, "batch_max": B}``, paced the same way; every
event goes to every app that has connections (in the benchmarks every app watches the
address).

``python benchmarks/peers/websockets_broadcaster.py --bind 127.0.0.1:9001 --control 127.0.0.1:9002``
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import contextlib

from benchmarks.synthetic import WATCHED, make_event, pacing
from rtserver.protocols.address_monitoring._naming import push_data

PATH = "/tx/api/v1/transaction/ws"
REPLAY_PATH = "/tx/api/v1/transaction/ws/replay"

#: Open connections per app (API key).
apps: dict[str, set[ServerConnection]] = {}
sequence = 0


def envelope(message_id: str, type_: str, data: Any = None, code: int = 0) -> str:
    return json.dumps(
        {
            "id": message_id,
            "time": int(time.time() * 1000),
            "type": type_,
            "code": code,
            "data": data,
            "msg": "success",
        },
        separators=(",", ":"),
    )


def reject(status: http.HTTPStatus, text: str) -> Response:
    body = json.dumps({"code": status.value, "msg": text, "data": None}).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


def check_request(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?")[0] != PATH:
        return reject(http.HTTPStatus.NOT_FOUND, "not found")
    if not request.headers.get("X-API-Key", "").strip():
        return reject(http.HTTPStatus.BAD_REQUEST, "X-API-Key header is required")
    return None


async def handler(ws: ServerConnection) -> None:
    assert ws.request is not None
    key = ws.request.headers["X-API-Key"].strip()
    client_id = f"client-{uuid.uuid4().hex[:12]}"
    await ws.send(envelope(str(uuid.uuid4()), "connected", {"clientId": client_id, "appId": key}))
    members = apps.setdefault(key, set())
    members.add(ws)
    try:
        async for raw in ws:
            try:
                message = json.loads(raw)
                message_id, type_ = message["id"], message["type"]
                data = message.get("data") or {}
            except (ValueError, KeyError, TypeError):
                await ws.send(envelope("", "error", None, 400))
                continue
            if type_ == "transactionACK":
                reply = {"txHash": data.get("txHash"), "messageId": data.get("messageId")}
                await ws.send(envelope(message_id, "transactionACK", reply))
            elif type_ == "ping":
                await ws.send(envelope(message_id, "pong"))
            else:
                await ws.send(envelope(message_id, type_, None, 400))
    finally:
        members.discard(ws)
        if not members:
            apps.pop(key, None)


def publish(n: int, address: str) -> int:
    """Make ``n`` events and broadcast each to every app's connections; messages sent."""
    global sequence
    sent = 0
    for _ in range(n):
        sequence += 1
        record = make_event(sequence, address)
        data = push_data(record, [address], False)
        for members in list(apps.values()):
            broadcast(members, envelope(str(uuid.uuid4()), "transaction", data))
            sent += len(members)
    return sent


def replay(key: str, message: dict[str, Any]) -> dict[str, Any]:
    """``POST /tx/api/v1/transaction/ws/replay``: push the given ``WsTransactionMessage``
    (a new id and time) to every connection of the app ``key``; nothing is stored."""
    data = message["data"]
    broadcast(apps.get(key, ()), envelope(str(uuid.uuid4()), "transaction", data))
    return {"code": 0, "message": "ok", "data": {"processed": True, "txhash": data.get("txhash")}}


async def inject(body: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    address = body.get("address", WATCHED)
    count, rate = int(body["count"]), float(body["rate"])
    start = loop.time()
    wall = time.monotonic()
    late = 0.0
    sent = 0
    for offset, n in pacing(count, rate, int(body.get("batch_max", 500)), 0.01):
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late = max(late, loop.time() - start - offset)
        sent += publish(n, address)
    return {
        "injected": count,
        "matches": sent,
        "seconds": time.monotonic() - wall,
        "max_late_seconds": late,
    }


async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal HTTP/1.1 server for ``POST /bench/inject`` and ``GET /healthz``."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, path, _ = line.decode("latin-1").split(" ", 2)
            length = 0
            key = ""
            while True:
                header = await reader.readline()
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
                elif name.strip().lower() == "x-api-key":
                    key = value.strip()
            body = await reader.readexactly(length) if length else b""
            if method == "POST" and path == "/bench/inject":
                status, reply = 200, await inject(json.loads(body))
            elif method == "POST" and path == REPLAY_PATH:
                status, reply = 200, replay(key, json.loads(body))
            elif path == "/healthz":
                status, reply = 200, {"ok": True, "apps": len(apps)}
            else:
                status, reply = 404, {"error": "not found"}
            payload = json.dumps(reply).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


def split(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host, int(port)


async def main(bind: str, control_bind: str) -> None:
    host, port = split(bind)
    chost, cport = split(control_bind)
    ctl = await asyncio.start_server(control, chost, cport)
    async with (
        ctl,
        serve(
            handler,
            host,
            port,
            process_request=check_request,
            compression=None,
            ping_interval=None,
            max_size=64 * 1024,
        ),
    ):
        print(f"websockets peer on ws://{bind}{PATH}, control http://{control_bind}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="websockets broadcaster (benchmark peer)")
    parser.add_argument("--bind", default="127.0.0.1:9001")
    parser.add_argument("--control", default="127.0.0.1:9002")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.bind, args.control))

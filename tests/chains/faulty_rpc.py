"""A JSON-RPC proxy in front of a real node that misbehaves on a schedule (the one fake in the chain tests).

A real node cannot be told to time out, rate-limit or answer garbage on demand, so this
small HTTP/1.1 server (Trio, loopback) forwards requests to Anvil and, request by
request, follows ``schedule`` cyclically:

* ``ok``: forward and return the node's answer;
* ``timeout``: say nothing for ``hang`` seconds, then close;
* ``429``: HTTP 429 Too Many Requests (``Retry-After: 0``);
* ``500``: HTTP 500;
* ``garbage``: HTTP 200 with a body that is not JSON;
* ``partial``: forward, then drop the last reply of the batch;
* ``wrong``: HTTP 200 with valid JSON of the wrong shape;
* ``reset``: close the connection without answering.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import partial

import httpx
import trio


class FaultyRpc:
    def __init__(
        self,
        upstream: str,
        schedule: list[str],
        *,
        hang: float = 3.0,
        unsupported: frozenset[str] = frozenset(),
    ) -> None:
        self.upstream = upstream
        self.schedule = schedule
        self.hang = hang
        #: Methods answered with "method not found" (-32601), as an older node would.
        self.unsupported = unsupported
        #: Requests with any of these methods get no answer (the test may change it).
        self.blocked: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.port = 0
        self.requests = 0
        self.faults: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started()
            await trio.serve_listeners(partial(self._handle, client), listeners)

    async def _handle(self, client: httpx.AsyncClient, stream: trio.SocketStream) -> None:
        async with stream:
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, body = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                body += chunk
            if self.blocked and any(m.encode() in body for m in self.blocked):
                await trio.sleep(self.hang)
                return
            fault = self.schedule[self.requests % len(self.schedule)]
            self.requests += 1
            self.faults[fault] += 1
            if fault == "timeout":
                await trio.sleep(self.hang)
                return
            if fault == "reset":
                return
            if fault == "429":
                await _respond(stream, 429, b"slow down", extra=b"Retry-After: 0\r\n")
                return
            if fault == "500":
                await _respond(stream, 500, b"internal error")
                return
            if fault == "garbage":
                await _respond(stream, 200, b"<html>\x00\xffnot json at all")
                return
            if fault == "wrong":
                await _respond(stream, 200, b'{"jsonrpc": "2.0", "unexpected": true}')
                return
            status, answer = await self._forward(client, body)
            if fault == "partial":
                decoded = json.loads(answer)
                if isinstance(decoded, list):
                    decoded = decoded[:-1]
                else:
                    decoded = {"jsonrpc": "2.0", "id": decoded.get("id")}
                answer = json.dumps(decoded).encode()
            await _respond(stream, status, answer)

    async def _forward(self, client: httpx.AsyncClient, body: bytes) -> tuple[int, bytes]:
        request = json.loads(body)
        items = request if isinstance(request, list) else [request]
        self.calls.update(item["method"] for item in items)
        local = {
            item["id"]: {
                "jsonrpc": "2.0",
                "id": item["id"],
                "error": {"code": -32601, "message": "the method does not exist/is not available"},
            }
            for item in items
            if item["method"] in self.unsupported
        }
        rest = [item for item in items if item["id"] not in local]
        answers: dict[object, object] = dict(local)
        status = 200
        if rest:
            upstream = await client.post(self.upstream, json=rest)
            status = upstream.status_code
            answers.update({a["id"]: a for a in upstream.json()})
        replies = [answers[item["id"]] for item in items]
        return status, json.dumps(replies if isinstance(request, list) else replies[0]).encode()


async def _respond(stream: trio.SocketStream, status: int, body: bytes, extra: bytes = b"") -> None:
    reason = {200: b"OK", 429: b"Too Many Requests", 500: b"Internal Server Error"}.get(
        status, b"X"
    )
    await stream.send_all(
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n%s\r\n" % (status, reason, len(body), extra) + body
    )

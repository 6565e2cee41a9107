"""A small HTTP/1.1 webhook receiver on loopback (trio), answering scripted statuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    #: Statuses to answer, in order; once used up, ``default``.
    script: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Request] = field(default_factory=list)
    arrived: trio.Event = field(default_factory=trio.Event)

    async def wait_for(self, count: int) -> None:
        with trio.fail_after(30):
            while len(self.requests) < count:
                self.arrived = trio.Event()
                await self.arrived.wait()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What the README shows a receiver doing (Standard Webhooks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(sig.removeprefix("v1,"), expected)
        for sig in headers["webhook-signature"].split()
    )


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        receiver = Receiver(f"http://127.0.0.1:{port}/hook")

        async def handle(stream: trio.SocketStream) -> None:
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, body = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                body += chunk
            status = receiver.script.pop(0) if receiver.script else receiver.default
            receiver.requests.append(Request(headers, body))
            receiver.arrived.set()
            await stream.send_all(
                f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await stream.aclose()

        nursery.start_soon(trio.serve_listeners, handle, listeners)
        yield receiver
        nursery.cancel_scope.cancel()

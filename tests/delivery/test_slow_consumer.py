"""A client that stops reading is closed with 1013; the others never wait for it."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from delivery.helpers import connect, connected, inject, make_record, new_app, nothing_pending, recv
from rtserver.config import WebSocketConfig

from conftest import make_config, run_server


async def test_slow_client_closed_1013_others_keep_order(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data").replace(websocket=WebSocketConfig(send_queue_max=8))
    async with run_server(config) as server:
        core = server.core
        app = await new_app(core)
        app_id = app.app.app_id
        sent: list[str] = []
        fast_got: list[str] = []
        async with trio.open_nursery() as nursery:
            slow = await connect(nursery, server.url, app.api_key)
            fast = await connect(nursery, server.url, app.api_key)
            await connected(slow)
            await connected(fast)

            async def read_fast(ws: WebSocketConnection) -> None:
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        fast_got.append(json.loads(await ws.get_message())["data"]["txhash"])

            nursery.start_soon(read_fast, fast)
            # ``slow`` reads nothing from now on: big messages fill the socket buffers,
            # then its server-side queue, until the server gives up on it.
            n = 0
            with trio.fail_after(60):
                while core.metrics.slow_consumers._value.get() == 0:
                    record = make_record(n, padding=64 * 1024)
                    await inject(core, record, [app_id])
                    sent.append(record.tx_hash)
                    n += 1
                for extra in range(n, n + 5):  # the fast client still gets later ones
                    record = make_record(extra, padding=100)
                    await inject(core, record, [app_id])
                    sent.append(record.tx_hash)
                while len(fast_got) < len(sent):
                    await trio.sleep(0.01)
            assert fast_got == sent

            # The slow client reads again: what was written, then the 1013 close.
            with pytest.raises(ConnectionClosed) as closed:
                with trio.fail_after(30):
                    while True:
                        await slow.get_message()
            assert closed.value.reason.code == 1013
            assert closed.value.reason.reason

            # Reconnected, it gets every message, oldest first (none was ACKed).
            again = await connect(nursery, server.url, app.api_key)
            await connected(again)
            resent = [(await recv(again))["data"]["txhash"] for _ in sent]
            assert resent == sent
            await nothing_pending(again)
            await again.aclose()
            await fast.aclose()
            nursery.cancel_scope.cancel()


async def test_client_that_never_reads_again_is_aborted(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data").replace(
        websocket=WebSocketConfig(send_queue_max=4, ping_timeout=0.5)
    )
    async with run_server(config) as server:
        core = server.core
        app = await new_app(core)
        host, port = server.url.removeprefix("http://").split(":")
        # A raw client with a tiny, fixed receive buffer (no autotuning) that reads the
        # handshake answer and then nothing: the server's writes really block.
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect((host, int(port)))
        stuck = trio.SocketStream(sock)
        await stuck.send_all(
            (
                "GET /tx/api/v1/transaction/ws HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"X-API-Key: {app.api_key}\r\n\r\n"
            ).encode()
        )
        assert (await stuck.receive_some(100)).startswith(b"HTTP/1.1 101")
        n = 0
        with trio.fail_after(60):
            while core.metrics.slow_consumers._value.get() == 0:
                await inject(core, make_record(n, padding=64 * 1024), [app.app.app_id])
                n += 1
            # Its last write can never finish: the server drops the TCP connection.
            while core.connections.for_app(app.app.app_id):
                await trio.sleep(0.02)
        # ... with a reset: a plain close would leave the connection ESTABLISHED on the
        # client's side for as long as the kernel retries the unsent bytes (40 s and more
        # were seen), as docs/delivery.md promises it is not.
        with trio.fail_after(10):
            while _tcp_state(sock) == _TCP_ESTABLISHED:
                await trio.sleep(0.05)
        await stuck.aclose()


_TCP_ESTABLISHED = 1


def _tcp_state(sock: trio.socket.SocketType) -> int:
    """The kernel's TCP state of ``sock`` (``tcpi_state``, the first byte of TCP_INFO)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]

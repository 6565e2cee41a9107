"""The listener: WebSocket routes on bare sockets, everything else through Hypercorn,
and the fallback for an upgrade on a kept-alive HTTP connection."""

from __future__ import annotations

import contextlib
import gc
import json
import socket
import sys
import time
from typing import Any

import trio
from delivery.helpers import WS_PATH, inject, make_record, new_app
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Pong, Request, TextMessage

from rtserver.components import Component
from rtserver.delivery import Session
from rtserver.http import WebSocketConnection, WebSocketRoute, default_shape
from rtserver.http._websocket import _whole_text_frames
from rtserver.protocols.address_monitoring import ws
from rtserver.server import DEFAULT_COMPONENTS

from conftest import (
    RunningServer,
    free_port,
    make_config,
    run_server,
    start_server_process,
    wait_healthy,
)


async def _open(server: RunningServer) -> tuple[trio.SocketStream, str]:
    host, port = server.url.removeprefix("http://").split(":")
    return await trio.open_tcp_stream(host, int(port)), f"{host}:{port}"


async def _http_response(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """Read one HTTP response with a Content-Length body: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head, body


class _Client:
    """A WebSocket client on a stream the test owns (wsproto, no library handshake)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.texts: list[Any] = []

    def request(self, host: str, key: str) -> bytes:
        return self.ws.send(
            Request(host=host, target=WS_PATH, extra_headers=[(b"X-API-Key", key.encode())])
        )

    def text(self, message: dict[str, Any]) -> bytes:
        return self.ws.send(TextMessage(json.dumps(message)))

    async def next(self) -> Any:
        """The next JSON text message (the handshake's acceptance is checked on the way)."""
        with trio.fail_after(10):
            while not self.texts:
                self.ws.receive_data(await self.stream.receive_some(65536))
                for event in self.ws.events():
                    if isinstance(event, TextMessage):
                        self.texts.append(json.loads(event.data))
                    else:
                        assert isinstance(event, AcceptConnection), event
        return self.texts.pop(0)


async def test_upgrade_on_a_kept_alive_connection_is_served_by_the_fallback(
    server: RunningServer,
) -> None:
    app = await new_app(server.core)
    stream, host = await _open(server)
    async with stream:
        await stream.send_all(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head, _ = await _http_response(stream)
        assert head.startswith(b"HTTP/1.1 200")
        client = _Client(stream)  # the same TCP connection now asks for the stream
        await stream.send_all(client.request(host, app.api_key))
        hello = await client.next()
        assert hello["type"] == "connected" and hello["data"]["appId"] == app.app.app_id
        await inject(server.core, make_record(1), [app.app.app_id])
        pushed = await client.next()
        assert pushed["type"] == "transaction"
        assert pushed["data"]["txhash"] == make_record(1).tx_hash
        await stream.send_all(client.text({"id": "p", "type": "ping", "data": {}}))
        assert (await client.next())["type"] == "pong"


async def test_frames_sent_right_behind_the_handshake_are_read(server: RunningServer) -> None:
    app = await new_app(server.core)
    stream, host = await _open(server)
    async with stream:
        client = _Client(stream)
        # One write: the upgrade request and a command, before the server answered.
        early = Connection(ConnectionType.CLIENT).send(
            TextMessage(json.dumps({"id": "early", "type": "ping", "data": {}}))
        )
        await stream.send_all(client.request(host, app.api_key) + early)
        assert (await client.next())["type"] == "connected"
        pong = await client.next()
        assert (pong["id"], pong["type"]) == ("early", "pong")


async def test_bad_handshakes_get_json_errors_and_http_still_works(
    server: RunningServer,
) -> None:
    app = await new_app(server.core)
    cases = [
        # (extra request headers, expected status)
        ("Sec-WebSocket-Version: 13\r\n", 400),  # no Sec-WebSocket-Key
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n", 426),
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", 400),  # no version
    ]
    for extra, status in cases:
        stream, host = await _open(server)
        async with stream:
            await stream.send_all(
                (
                    f"GET {WS_PATH} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nX-API-Key: {app.api_key}\r\n{extra}\r\n"
                ).encode()
            )
            head, body = await _http_response(stream)
            assert head.startswith(f"HTTP/1.1 {status}".encode()), (extra, head)
            error = json.loads(body)
            assert error["code"] == status and error["message"], error
    async with server.client() as client:
        assert (await client.get("/healthz")).status_code == 200
        # Not GET: Quart answers, in the API's error shape.
        posted = await client.post(WS_PATH, headers={"Upgrade": "websocket"})
        assert posted.status_code == 405 and posted.json()["code"] == 405


async def test_a_client_that_sends_nothing_is_closed(tmp_path: Any) -> None:
    async with run_server(make_config(tmp_path / "data")) as server:
        stream, _ = await _open(server)
        async with stream:
            with trio.fail_after(30):  # Hypercorn's keep-alive timeout (5 s) applies
                assert await stream.receive_some(100) == b""


async def test_closed_connections_are_freed_without_the_garbage_collector(
    server: RunningServer,
) -> None:
    """A server that holds thousands of sockets collects garbage rarely (``gc.freeze`` and
    high thresholds): a closed connection must not survive in a reference cycle."""
    app = await new_app(server.core)
    gc.collect()
    gc.disable()
    try:
        for n in range(3):
            stream, host = await _open(server)
            async with stream:
                client = _Client(stream)
                await stream.send_all(client.request(host, app.api_key))
                assert (await client.next())["type"] == "connected"
                await inject(server.core, make_record(n), [app.app.app_id])
                await client.next()
                await stream.send_all(client.text({"id": "p", "type": "ping", "data": {}}))
                await client.next()
                if n == 1:  # and one that ACKs, for the ACK service's closures
                    await stream.send_all(
                        client.text(
                            {
                                "id": "a",
                                "type": "transactionACK",
                                "data": {"messageId": "m-unknown"},
                            }
                        )
                    )
                    await client.next()
                await stream.send_all(client.ws.send(CloseConnection(1000)))
                with trio.fail_after(10):
                    while await stream.receive_some(65536):
                        pass
        with trio.fail_after(10):
            while len(server.core.connections):
                await trio.sleep(0.01)
        await trio.sleep(0.1)
        kinds = (Session, WebSocketConnection, ws._Commands)
        left = [type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds)]
    finally:
        gc.enable()
    assert left == []


def _census() -> tuple[int, int]:
    """The Trio tasks and the entered cancel scopes of the process (server and test).

    An exited scope with a deadline stays in Trio's deadline heap until the deadline
    passes (the handshake's, the test's ``fail_after``): not counted, it is not held by
    the connection.
    """
    objects = gc.get_objects()
    tasks = sum(isinstance(o, trio.lowlevel.Task) for o in objects)
    scopes = sum(isinstance(o, trio.CancelScope) and o._cancel_status is not None for o in objects)
    return tasks, scopes


def _server_sockets() -> list[WebSocketConnection]:
    return [o for o in gc.get_objects() if isinstance(o, WebSocketConnection)]


async def test_an_idle_connection_holds_one_task_one_cancel_scope_and_no_parser(
    server: RunningServer,
) -> None:
    """What an idle connection costs (issue 17): its task with the runtime's cancel scope;
    no frame parser, timer or per-read scope. The parser is made when bytes come and let
    go once no frame or message is half read: a message in fragments, its second frame
    split inside the header, is kept across reads and answered."""
    app = await new_app(server.core)
    stream, host = await _open(server)
    async with stream:
        client = _Client(stream)
        await stream.send_all(client.request(host, app.api_key))
        assert (await client.next())["type"] == "connected"
        (talking,) = _server_sockets()
        assert talking._ws is None  # nothing came after the handshake
        command = json.dumps({"id": "f", "type": "ping", "data": {}})
        first = client.ws.send(TextMessage(command[:10], message_finished=False))
        second = client.ws.send(TextMessage(command[10:], message_finished=True))
        await stream.send_all(first + second[:1])
        await trio.sleep(0.2)
        assert talking._ws is not None  # half a message and half a header are held
        await stream.send_all(second[1:])
        pong = await client.next()
        assert (pong["id"], pong["type"]) == ("f", "pong")
        await trio.sleep(0.1)
        assert talking._ws is None
        # A WebSocket ping is answered with its pong, and leaves nothing behind either.
        await stream.send_all(client.ws.send(Ping(b"still there?")))
        with trio.fail_after(10):
            pongs: list[Pong] = []
            while not pongs:
                client.ws.receive_data(await stream.receive_some(65536))
                pongs = [e for e in client.ws.events() if isinstance(e, Pong)]
        assert pongs[0].payload == b"still there?"
        await trio.sleep(0.1)
        assert talking._ws is None

        gc.collect()
        tasks, scopes = _census()
        idle = 20
        async with contextlib.AsyncExitStack() as streams:
            for _ in range(idle):
                other, _ = await _open(server)
                await streams.enter_async_context(other)
                other_client = _Client(other)
                await other.send_all(other_client.request(host, app.api_key))
                assert (await other_client.next())["type"] == "connected"
            await trio.sleep(0.2)
            gc.collect()
            more_tasks, more_scopes = _census()
            assert len(_server_sockets()) == idle + 1
            assert all(c._ws is None for c in _server_sockets())
        # Services may be between two sleeps: a little slack, far less than one per socket.
        assert idle <= more_tasks - tasks <= idle + 2
        assert idle <= more_scopes - scopes <= idle + 2


def _raw_frame(opcode: int, payload: bytes, *, mask: bool = True, rsv1: bool = False) -> bytes:
    """One client frame built by hand, so that it can break the rules wsproto enforces."""
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    key = b"\x01\x02\x03\x04"
    assert len(payload) < 126
    if not mask:
        return bytes((first, len(payload))) + payload
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((first, 0x80 | len(payload))) + key + masked


async def test_frames_that_break_the_protocol_close_with_its_code(server: RunningServer) -> None:
    app = await new_app(server.core)
    cases = [
        (_raw_frame(0x1, b'{"id":"x"}', mask=False), 1002),  # clients must mask
        (_raw_frame(0x1, b"\xff\xfe not utf-8"), 1007),
        (_raw_frame(0x1, b"{}", rsv1=True), 1002),  # no extension was negotiated
        (_raw_frame(0x3, b"??"), 1002),  # reserved opcode
        (_raw_frame(0x9, b"x" * 125)[:1] + b"\xfe\x00\x80" + b"\x00" * 4, 1002),  # long ping
    ]
    for bad, code in cases:
        stream, host = await _open(server)
        async with stream:
            client = _Client(stream)
            await stream.send_all(client.request(host, app.api_key))
            assert (await client.next())["type"] == "connected"
            await stream.send_all(bad)
            closed: list[CloseConnection] = []
            with trio.fail_after(10):
                while not closed and (data := await stream.receive_some(65536)):
                    client.ws.receive_data(data)
                    closed = [e for e in client.ws.events() if isinstance(e, CloseConnection)]
            assert closed and closed[0].code == code, (bad, closed)
    # The server is unharmed: a new client is served.
    stream, host = await _open(server)
    async with stream:
        client = _Client(stream)
        await stream.send_all(client.request(host, app.api_key))
        assert (await client.next())["type"] == "connected"


async def test_garbage_instead_of_http_is_answered_by_hypercorn(server: RunningServer) -> None:
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 3000 + b"\r\n",
    ):
        stream, _ = await _open(server)
        async with stream:
            await stream.send_all(garbage)
            with trio.fail_after(10):
                answer = await stream.receive_some(65536)
            # Not HTTP: Hypercorn's parser answers (before any route), as it always did.
            assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    async with server.client() as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_a_failing_websocket_handler_ends_its_connection_not_the_server(
    tmp_path: Any,
) -> None:
    from rtserver.components import Component

    async def broken(connection: WebSocketConnection) -> None:
        raise RuntimeError("a bug in a handler")

    def component(core: object) -> Component:
        return Component(
            "broken", websocket_routes=(WebSocketRoute("/broken", broken, default_shape),)
        )

    async with run_server(
        make_config(tmp_path / "data"), components=(*DEFAULT_COMPONENTS, component)
    ) as server:
        stream, host = await _open(server)
        async with stream:
            await stream.send_all(
                (
                    f"GET /broken HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            with trio.fail_after(10):
                assert await stream.receive_some(100) == b""  # closed, nothing sent
        async with server.client() as client:
            assert (await client.get("/healthz")).status_code == 200


def test_out_of_file_descriptors_the_listener_waits_and_recovers(tmp_path: Any) -> None:
    """At the open-file limit ``accept`` fails: the server logs it (rarely), keeps the
    connections in the kernel's queue, and serves again once descriptors are free."""
    port = free_port()
    data = tmp_path / "data"
    launcher = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96)); "
        "os.execv(sys.executable, [sys.executable, '-m', 'rtserver', *sys.argv[1:]])"
    )
    server = start_server_process(
        data,
        port=port,
        argv=[
            sys.executable,
            "-c",
            launcher,
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data),
        ],
    )
    clients: list[socket.socket] = []
    try:
        # More connections than descriptors: each is accepted until the limit, the rest
        # wait in the backlog (none of them sends anything).
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(150)]
        deadline = time.monotonic() + 30
        while "cannot accept connections" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        for client in clients:
            client.close()
        wait_healthy(server)
        assert server.proc.poll() is None
        # One warning per 10 s at most, not one per attempt (ten a second).
        assert server.log().count("cannot accept connections") <= 4, server.log()
    finally:
        for client in clients:
            client.close()
        assert server.terminate() == 0, server.log()


def test_whole_text_frames_are_decoded_as_wsproto_does_and_anything_else_is_left_to_it() -> None:
    """The decoder of clients' plain commands gives wsproto's messages for whole masked
    text frames (one or several, short and 16-bit lengths, any UTF-8), and declines
    (None) whatever wsproto must judge: fragments, control frames, a frame cut short,
    an unmasked one, RSV bits, a non-minimal length, invalid UTF-8."""
    client = Connection(ConnectionType.CLIENT)
    texts = ["", '{"id":"1","type":"ping"}', "é€😀" * 10, "x" * 125, "y" * 126, "z" * 70_000]
    for text in texts[:-1]:
        data = client.send(TextMessage(text))
        decoded = _whole_text_frames(data)
        assert decoded is not None and [m.data for m in decoded] == [text]  # type: ignore[attr-defined]
    several = b"".join(client.send(TextMessage(t)) for t in texts[:-1])
    assert [m.data for m in _whole_text_frames(several) or []] == texts[:-1]  # type: ignore[attr-defined]
    declined = [
        client.send(TextMessage(texts[-1])),  # over 64 KiB: a 64-bit length
        several[:-1],  # the last frame continues in the next read
        client.send(TextMessage("a", message_finished=False)),
        client.send(Ping(b"?")),
        _raw_frame(0x1, b"{}", mask=False),
        _raw_frame(0x1, b"{}", rsv1=True),
        _raw_frame(0x1, b"\xff\xfe"),
        _raw_frame(0x2, b"{}"),  # binary
        bytes((0x81, 0x80 | 126, 0, 5)) + b"\x00" * 4 + b"hello",  # 5 in two bytes
    ]
    for data in declined:
        assert _whole_text_frames(data) is None, data[:8]

"""The session runtime carries a whole socket protocol: a toy one, defined here in a few
lines, gets the lifecycle (greeting, read loop, close handshake, shutdown, faults that end
one connection only) without writing any of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from rtserver.components import Component
from rtserver.core import Core
from rtserver.delivery import Delivery, Frame, Session, run_session
from rtserver.http import WebSocketConnection, WebSocketRoute, default_shape
from rtserver.server import DEFAULT_COMPONENTS

from conftest import RunningServer, make_config, run_server

#: A route with a path parameter, served on the bare-socket path like the others.
TOY_PATH = "/toy/{room}"


class _Echo:
    """The toy protocol's whole per-connection code: greet, echo, fail on request."""

    def __init__(self, room: str, closed: list[str]) -> None:
        self._room = room
        self._closed = closed
        self._session: Session | None = None

    async def opened(self, session: Session) -> None:
        self._session = session
        session.send(Frame(f"hello {session.conn_id} in {self._room}"))

    async def received(self, message: str | bytes) -> Frame | None:
        if message == "boom":
            raise RuntimeError("a bug in the toy protocol")
        return Frame(f"echo {message!s}")

    def closed(self) -> None:
        assert self._session is not None
        self._closed.append(self._session.conn_id)


def _toy_component(closed: list[str]) -> object:
    def factory(core: Core) -> Component:
        async def handler(connection: WebSocketConnection) -> None:
            request = connection.request
            assert request is not None
            if request.arg("token") != "open-sesame":
                await connection.reject(403, "wrong token")
                return
            delivery = Delivery.of(core)
            assert delivery is not None
            session = delivery.hub.attach(core.connections.new_id("toy"))
            await connection.accept()
            delivery.hub.finish_resend(session, [])
            echo = _Echo(request.params["room"], closed)
            await run_session(core, delivery.hub, "toy", connection, session, echo)

        return Component(
            "toy", websocket_routes=(WebSocketRoute(TOY_PATH, handler, default_shape),)
        )

    return factory


@asynccontextmanager
async def _toy_server(tmp_path: Path, closed: list[str]) -> AsyncIterator[RunningServer]:
    config = make_config(tmp_path / "data")
    async with run_server(config, (*DEFAULT_COMPONENTS, _toy_component(closed))) as server:  # type: ignore[arg-type]
        yield server


def _url(server: RunningServer, token: str = "open-sesame") -> str:
    room = TOY_PATH.replace("{room}", "lobby%201")
    return server.url.replace("http://", "ws://") + f"{room}?token={token}"


async def test_a_toy_protocol_gets_the_lifecycle_from_the_runtime(tmp_path: Path) -> None:
    closed: list[str] = []
    async with _toy_server(tmp_path, closed) as server:
        async with open_websocket_url(_url(server)) as ws:
            with trio.fail_after(10):
                hello = await ws.get_message()
                assert isinstance(hello, str) and hello.startswith("hello toy-")
                assert hello.endswith(" in lobby 1")  # the path parameter, decoded
                await ws.send_message("ping")
                assert await ws.get_message() == "echo ping"
            assert len(server.core.connections) == 1
        with trio.fail_after(10):
            while not closed:
                await trio.sleep(0.01)
        assert closed == [hello.removeprefix("hello ").removesuffix(" in lobby 1")]
        assert len(server.core.connections) == 0

        # The protocol rejects a handshake with its own status.
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(_url(server, token="wrong")):
                pass
        assert rejected.value.status_code == 403
        # A parameter is one segment: a longer path is no toy route (an ordinary 404).
        nested = server.url.replace("http://", "ws://") + "/toy/a/b?token=open-sesame"
        with pytest.raises(ConnectionRejected) as unknown:
            async with open_websocket_url(nested):
                pass
        assert unknown.value.status_code == 404


async def test_a_toy_handler_bug_ends_its_connection_only(tmp_path: Path) -> None:
    closed: list[str] = []
    async with _toy_server(tmp_path, closed) as server:
        async with open_websocket_url(_url(server)) as calm:
            await calm.get_message()
            async with open_websocket_url(_url(server)) as buggy:
                await buggy.get_message()
                await buggy.send_message("boom")
                with pytest.raises(ConnectionClosed), trio.fail_after(10):
                    await buggy.get_message()
            await calm.send_message("still there?")
            with trio.fail_after(10):
                assert await calm.get_message() == "echo still there?"
        with trio.fail_after(10):
            while len(closed) < 2:
                await trio.sleep(0.01)
        assert not server.done.is_set()


async def test_shutdown_closes_toy_sockets_with_1001(tmp_path: Path) -> None:
    closed: list[str] = []
    async with _toy_server(tmp_path, closed) as server, open_websocket_url(_url(server)) as ws:
        await ws.get_message()
        server.stop.set()
        with pytest.raises(ConnectionClosed) as ended, trio.fail_after(10):
            while True:
                await ws.get_message()
        assert ended.value.reason.code == 1001

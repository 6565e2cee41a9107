"""The session runtime carries a whole socket protocol: a toy one, defined in a few lines
(``tests/toy_protocol.py``), gets the lifecycle (greeting, recovery, read loop, close
handshake, shutdown, faults that end one connection only) and durable publishing without
writing any of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from rtserver.server import DEFAULT_COMPONENTS

from conftest import RunningServer, make_config, run_server
from toy_protocol import TOY_PATH, toy_component


@asynccontextmanager
async def _toy_server(tmp_path: Path, closed: list[str]) -> AsyncIterator[RunningServer]:
    config = make_config(tmp_path / "data")
    async with run_server(config, (*DEFAULT_COMPONENTS, toy_component(closed))) as server:  # type: ignore[arg-type]
        yield server


def _url(
    server: RunningServer, token: str = "open-sesame", room: str = "lobby%201", since: str = ""
) -> str:
    path = TOY_PATH.replace("{room}", room)
    query = f"?token={token}" + (f"&since={since}" if since else "")
    return server.url.replace("http://", "ws://") + path + query


async def _greeted(ws: WebSocketConnection) -> tuple[str, str]:
    """The greeting and the recovery line a toy socket gets first."""
    with trio.fail_after(10):
        return str(await ws.get_message()), str(await ws.get_message())


async def test_a_toy_protocol_gets_the_lifecycle_from_the_runtime(tmp_path: Path) -> None:
    closed: list[str] = []
    async with _toy_server(tmp_path, closed) as server:
        async with open_websocket_url(_url(server)) as ws:
            hello, recovered = await _greeted(ws)
            assert hello.startswith("hello toy-")
            assert hello.endswith(" in lobby 1")  # the path parameter, decoded
            assert recovered == "recovered complete=true n=0 epoch="  # nothing published
            with trio.fail_after(10):
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
            await _greeted(calm)
            async with open_websocket_url(_url(server)) as buggy:
                await _greeted(buggy)
                await buggy.send_message("boom")
                with pytest.raises(ConnectionClosed) as ended, trio.fail_after(10):
                    await buggy.get_message()
                assert ended.value.reason.code == 1011  # internal error, said so
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
        await _greeted(ws)
        server.stop.set()
        with pytest.raises(ConnectionClosed) as ended, trio.fail_after(10):
            while True:
                await ws.get_message()
        assert ended.value.reason.code == 1001


async def test_a_toy_room_echoes_what_is_published_to_its_subscribers_only(
    tmp_path: Path,
) -> None:
    async with (
        _toy_server(tmp_path, []) as server,
        open_websocket_url(_url(server, room="a")) as alice,
        open_websocket_url(_url(server, room="a")) as bob,
        open_websocket_url(_url(server, room="b")) as carol,
    ):
        for ws in (alice, bob, carol):
            await _greeted(ws)
        await alice.send_message("publish hi")
        await bob.send_message("publish ho")
        with trio.fail_after(10):
            got = {
                name: [await ws.get_message(), await ws.get_message()]
                for name, ws in (("alice", alice), ("bob", bob))
            }
        # One order for everyone (the topic's offsets), whoever published.
        assert got["alice"] == got["bob"]
        assert sorted(got["alice"]) == ["1 hi", "2 ho"]
        await carol.send_message("publish elsewhere")
        with trio.fail_after(10):
            assert await carol.get_message() == "1 elsewhere"  # room b's own offsets
            await alice.send_message("ping")
            assert await alice.get_message() == "echo ping"  # room b's message never came


async def test_a_toy_client_recovers_what_it_missed_with_a_completeness_flag(
    tmp_path: Path,
) -> None:
    async with _toy_server(tmp_path, []) as server:
        async with open_websocket_url(_url(server)) as ws:
            await _greeted(ws)
            for n in range(3):
                await ws.send_message(f"publish m{n}")
            with trio.fail_after(10):
                seen = [await ws.get_message() for _ in range(3)]
        assert seen == ["1 m0", "2 m1", "3 m2"]
        async with open_websocket_url(_url(server)) as other:
            _, recovered = await _greeted(other)
            epoch = recovered.rpartition("epoch=")[2]
            assert recovered == f"recovered complete=true n=0 epoch={epoch}" and epoch
            await other.send_message("publish m3")
            with trio.fail_after(10):
                assert await other.get_message() == "4 m3"

        # Back from offset 2: exactly 3 and 4, complete.
        async with open_websocket_url(_url(server, since=f"{epoch}:2")) as back:
            _, recovered = await _greeted(back)
            assert recovered == f"recovered complete=true n=2 epoch={epoch}"
            with trio.fail_after(10):
                assert [await back.get_message(), await back.get_message()] == ["3 m2", "4 m3"]
                await back.send_message("ping")
                assert await back.get_message() == "echo ping"  # nothing else, nothing twice
        # Offsets of another life of the stream: what is retained, flagged incomplete.
        async with open_websocket_url(_url(server, since="0badc0de:2")) as stranger:
            _, recovered = await _greeted(stranger)
            assert recovered == f"recovered complete=false n=4 epoch={epoch}"

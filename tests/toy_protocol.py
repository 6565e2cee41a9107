"""A toy socket protocol on the realtime core, defined in a few lines: no lifecycle code.

``/toy/{room}?token=open-sesame[&since=<epoch>:<offset>]`` subscribes the socket to the
history topic ``channel:toy-<room>`` (recovering what it missed since ``since``), greets
it with ``hello <conn id> in <room>`` and a ``recovered complete=<bool> n=<count>
epoch=<epoch>`` line, then:

* ``publish <text>`` publishes ``<text>`` to the room through the durable stream; every
  subscriber (the sender too) gets ``<offset> <text>``;
* ``boom`` raises (a bug in the protocol: it must end this connection only);
* anything else is echoed as ``echo <message>``.

Run as a real server process: ``python tests/toy_protocol.py serve ...`` (``rtserver``
with this protocol added).
"""

from __future__ import annotations

import sys

from rtserver.components import Component
from rtserver.core import Core
from rtserver.delivery import Delivery, Frame, Session, StreamPosition, run_session
from rtserver.http import WebSocketConnection, WebSocketRoute, default_shape

#: A route with a path parameter, served on the bare-socket path like the others.
TOY_PATH = "/toy/{room}"
TOKEN = "open-sesame"
#: The wire format of the toy protocol's frames.
FORMAT = "toy"


def room_topic(room: str) -> str:
    return "channel:toy-" + room


def _since(value: str | None) -> StreamPosition | None:
    if not value:
        return None
    epoch, _, offset = value.rpartition(":")
    return StreamPosition(epoch, int(offset))


class _Room:
    """The toy protocol's whole per-connection code."""

    def __init__(
        self, delivery: Delivery, room: str, since: StreamPosition | None, closed: list[str]
    ) -> None:
        self._delivery = delivery
        self._room = room
        self._since = since
        self._closed = closed
        self._session: Session | None = None

    async def opened(self, session: Session) -> None:
        self._session = session
        session.send(Frame(f"hello {session.conn_id} in {self._room}"))
        topic = room_topic(self._room)
        recovery = await self._delivery.streams.recover(topic, self._since)
        complete = str(recovery.complete).lower()
        epoch = recovery.position.epoch
        session.send(
            Frame(f"recovered complete={complete} n={len(recovery.messages)} epoch={epoch}")
        )
        self._delivery.hub.finish_recovery(session, topic, recovery.messages)

    async def received(self, message: str | bytes) -> Frame | None:
        if message == "boom":
            raise RuntimeError("a bug in the toy protocol")
        if isinstance(message, str) and message.startswith("publish "):
            text = message.removeprefix("publish ")
            await self._delivery.streams.publish(
                room_topic(self._room), lambda at: {FORMAT: f"{at.offset} {text}"}
            )
            return None
        return Frame(f"echo {message!s}")

    def closed(self) -> None:
        assert self._session is not None
        self._closed.append(self._session.conn_id)


def toy_component(closed: list[str] | None = None) -> object:
    """The toy protocol as a component factory; ``closed`` collects ended connections."""
    ended: list[str] = closed if closed is not None else []

    def factory(core: Core) -> Component:
        delivery = Delivery.of(core)
        assert delivery is not None
        hub = delivery.hub

        async def handler(connection: WebSocketConnection) -> None:
            request = connection.request
            assert request is not None
            if request.arg("token") != TOKEN:
                await connection.reject(403, "wrong token")
                return
            room = request.params["room"]
            since = _since(request.arg("since"))
            session = hub.attach(core.connections.new_id("toy"), format=FORMAT)
            # Live messages of the room wait from here until the recovery is queued.
            hub.subscribe(session, room_topic(room), recovering=True)
            await connection.accept()
            protocol = _Room(delivery, room, since, ended)
            await run_session(core, hub, "toy", connection, session, protocol)

        return Component(
            "toy", websocket_routes=(WebSocketRoute(TOY_PATH, handler, default_shape),)
        )

    return factory


if __name__ == "__main__":
    from rtserver.cli import main
    from rtserver.server import DEFAULT_COMPONENTS

    sys.exit(main(sys.argv[1:], components=(*DEFAULT_COMPONENTS, toy_component())))  # type: ignore[arg-type]

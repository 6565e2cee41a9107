"""The fallback WebSocket path: an upgrade that came on a kept-alive HTTP connection.

The listener serves every other upgrade on the bare socket (:mod:`._websocket`). One that
arrives after another request on the same connection is already Hypercorn's, so it
reaches the Quart WebSocket route of the same path; :class:`AsgiWebSocket` gives the
session runtime (:func:`rtserver.delivery.run_session`) the same port over it. Its read
timeout is Hypercorn's, and a disconnect cancels the route's task.

Writes: under Hypercorn, the pre-framed bytes of a hand-over go to the connection in one
``Data`` event (:class:`~rtserver.http._hypercorn.FramedWriter`); under another ASGI
server, one ``websocket.send`` per message (ASGI has no way to send pings or pongs).
"""

from __future__ import annotations

from collections.abc import Sequence

from quart import websocket

from rtserver.delivery import Frame, Session, Transport
from rtserver.http._hypercorn import FramedWriter, framed_writer


class _QuartWriter:
    """The portable writer (any ASGI server): one ``websocket.send`` per message."""

    async def write(self, frames: Sequence[Frame]) -> None:
        for frame in frames:
            if frame.message_id is not None or frame.text:  # ASGI has no ping or pong
                await websocket.send(frame.text)

    async def abort(self) -> None:
        return None  # nothing to cut under: the ASGI server owns the socket


class AsgiWebSocket:
    """The accepted WebSocket of the current Quart WebSocket context, as a session port."""

    def __init__(self) -> None:
        # Quart's private attribute ``_send`` (``partial(send_data, send)``) leads to
        # Hypercorn's stream; read only here and in the Hypercorn adapter.
        asgi_send = getattr(websocket._get_current_object(), "_send", None)  # type: ignore[attr-defined]
        writer = framed_writer(asgi_send)
        self._writer: FramedWriter | _QuartWriter = writer or _QuartWriter()

    @property
    def transport(self) -> Transport:
        return self._writer

    async def receive(self) -> str | bytes:
        return await websocket.receive()

    async def close(self, code: int, reason: str) -> None:
        await websocket.close(code, reason)

    async def abort(self) -> None:
        await self._writer.abort()

    def route_control_frames(self, session: Session) -> None:
        pass  # Hypercorn answers pings itself

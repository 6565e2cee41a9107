"""The one module that relies on Hypercorn's internals (Hypercorn is pinned to 0.18.x).

The listener runs Hypercorn's per-connection server itself instead of
``hypercorn.trio.serve``, so it needs pieces Hypercorn does not document as API:
``TCPServer``, ``Lifespan``, ``WorkerContext``, ``ConnectionState``, ``wrap_app`` and
``repr_socket_addr``. They are imported here and nowhere else; a Hypercorn upgrade is
checked against this module (and ``tests/test_http_hardening.py``).

:class:`ConnectionServer` also corrects how ``TCPServer`` carries out a protocol's request
to close the connection or to (re)arm its keep-alive timer. With a Quart-Trio app the
request arrives inside the task that wrote the response's last bytes, and Quart-Trio
cancels that task right then (it ends the request once the response is sent). Hypercorn
does not shield that work, so it was cut short: a connection meant to close stayed open
with nobody serving it, and a kept-alive connection was never timed out, which also held
graceful shutdown for its whole grace period. Closing also raced a response being written
by another task (``trio.BusyResourceError``), since Hypercorn serialises writes but not its
end-of-file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, Updated
from hypercorn.protocol.events import Data
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app
from wsproto.connection import ConnectionState as WebSocketState

from rtserver.delivery import Frame

log = logging.getLogger("rtserver.http")

__all__ = [
    "ConnectionServer",
    "ConnectionState",
    "FramedWriter",
    "Lifespan",
    "WorkerContext",
    "framed_writer",
    "repr_socket_addr",
    "wrap_app",
]

#: Seconds a response still being written gets before its connection closes under it.
#: A client that stopped reading must not keep a closing connection open.
CLOSE_AFTER_WRITE_TIMEOUT = 5.0


class ConnectionServer(TCPServer):
    """Hypercorn's per-connection server, whose close and keep-alive bookkeeping always
    runs to completion (see module doc).

    Guarantees: a close requested by the protocol shuts the socket down after any write in
    progress (waiting at most :data:`CLOSE_AFTER_WRITE_TIMEOUT` s for it) and closes it,
    even when the requesting task is being cancelled; the keep-alive timer is armed or
    stopped whenever the protocol asks, likewise.
    """

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: ConnectionState,
        stream: trio.abc.HalfCloseableStream,
    ) -> None:
        # Hypercorn annotates the stream as TLS, but serves any trio stream (plain TCP
        # too); the listener hands it a socket stream with the bytes it already read.
        super().__init__(app, config, context, state, stream)  # type: ignore[arg-type]

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Closed):
            # Shielding is bounded: the write wait has its own timeout, and shutting down
            # and closing a plain socket do not block.
            with trio.CancelScope(shield=True):
                await self._close_after_write()
            await self.protocol.handle(Closed())
        elif isinstance(event, Updated):
            # Restarting or stopping the timer task only takes a lock no one holds long.
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
        else:
            await super().protocol_send(event)

    async def _close_after_write(self) -> None:
        with trio.move_on_after(CLOSE_AFTER_WRITE_TIMEOUT):
            # Writes hold send_lock: taking it lets the one in progress (a 400 written by
            # the reading task, say) reach the client before the end-of-file.
            async with self.send_lock:
                await self._close()
                return
        await self._close()  # closing the socket aborts the stalled write


# -- the fallback WebSocket path's writer ---------------------------------------------------


class FramedWriter:
    """Pre-framed WebSocket bytes straight into Hypercorn's connection.

    Used only for an upgrade that comes on a kept-alive HTTP connection (the listener
    serves every other one on the bare socket). The frames of a hand-over (built once per
    message for all sockets) are joined and handed to the ``WSStream``'s own ``send`` (a
    ``Data`` event, the call its ``app_send`` makes after framing), which writes them
    under Hypercorn's per-connection send lock. They are uncompressed text frames (RSV1
    clear), valid with or without permessage-deflate (RFC 7692 section 6).
    """

    def __init__(self, stream: WSStream) -> None:
        self._stream = stream

    async def write(self, frames: Sequence[Frame]) -> None:
        stream = self._stream
        if (
            stream.closed
            or stream.state != ASGIWebsocketState.CONNECTED
            or stream.connection.state != WebSocketState.OPEN
        ):
            return
        data = frames[0].wire if len(frames) == 1 else b"".join([f.wire for f in frames])
        await stream.send(Data(stream_id=stream.stream_id, data=data))

    async def abort(self) -> None:
        """Close the TCP connection under a write that cannot finish (client not reading)."""
        try:
            tcp = _owner(_owner(self._stream.send).send)  # H11Protocol, then TCPServer
            await tcp.stream.aclose()
        except Exception:  # internals changed: nothing better to do than wait
            log.debug("cannot abort a stuck connection", exc_info=True)


def framed_writer(asgi_send: Any) -> FramedWriter | None:
    """The writer for the Hypercorn stream behind Quart's ``send`` of a WebSocket
    (``partial(send_data, stream.app_send)``); None under another ASGI server."""
    try:
        stream = _owner(asgi_send.args[0])
    except (AttributeError, IndexError):
        return None
    return FramedWriter(stream) if isinstance(stream, WSStream) else None


def _owner(bound: Any) -> Any:
    return bound.__self__

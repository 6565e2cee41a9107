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

import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, Updated
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

__all__ = [
    "ConnectionServer",
    "ConnectionState",
    "Lifespan",
    "WorkerContext",
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

"""The TCP listener: WebSocket routes answered directly, everything else by Hypercorn.

Every connection's first request head is read here. An upgrade request for a registered
:class:`~rtserver.http.WebSocketRoute` is served by :func:`serve_websocket` on the bare
socket (one task per connection, see ``_websocket``); any other connection is handed,
with the bytes already read, to Hypercorn's own per-connection server (by way of
``_hypercorn``, the one module that relies on Hypercorn's internals), which runs the
Quart-Trio app exactly as ``hypercorn.trio.serve`` would (lifespan, keep-alive, graceful
shutdown). So HTTP keeps Quart's routing and Hypercorn's HTTP/1.1, and the streaming
endpoints, which hold thousands of mostly idle sockets, cost a fraction of an ASGI
WebSocket each. An upgrade that arrives later on a kept-alive HTTP connection still
works: it reaches the Quart route of the same path.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig

from rtserver.exceptions import BindError
from rtserver.http._hypercorn import (
    ConnectionServer,
    ConnectionState,
    Lifespan,
    WorkerContext,
    repr_socket_addr,
    wrap_app,
)
from rtserver.http._websocket import ReadDeadlines, WebSocketRoute, recv_some, serve_websocket

log = logging.getLogger("rtserver.http")

#: Longest first request head read before deciding (Hypercorn's h11 limit is the same).
_MAX_HEAD = 16 * 1024
#: The name of every connection's task.
_CONNECTION_TASK = "rtserver.http.connection"
#: Seconds between accept attempts while ``accept`` fails (out of file descriptors).
_ACCEPT_RETRY = 0.1
#: Seconds between two warnings about failing accepts.
_ACCEPT_WARNING_EVERY = 10.0


class _PrefixedStream(trio.abc.HalfCloseableStream):
    """A socket stream that first returns bytes already read from it."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self.socket = stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class Listener:
    """Accepts connections on the configured sockets and routes each one (see module doc)."""

    def __init__(
        self,
        app: Any,
        config: HypercornConfig,
        routes: Sequence[WebSocketRoute],
        *,
        max_message_bytes: int,
        read_timeout: float | None,
    ) -> None:
        self._app = wrap_app(app, config.wsgi_max_body_size, None)
        self._config = config
        #: Routes without parameters by path (one dict lookup), then the others in order.
        self._routes = {r.path.encode(): r for r in routes if not r.has_params}
        self._patterns = [r for r in routes if r.has_params]
        self._max_message = max_message_bytes
        self._deadlines = ReadDeadlines(read_timeout or math.inf)
        self._context = WorkerContext(None)
        self._state: dict[str, Any] = {}
        self._accept_failures = 0
        self._next_accept_warning = -math.inf

    async def serve(
        self,
        *,
        shutdown_trigger: Callable[[], Awaitable[object]],
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until ``shutdown_trigger`` returns, then stop accepting and give open
        connections ``graceful_timeout`` seconds to finish."""
        config = self._config
        lifespan = Lifespan(self._app, config, self._state)
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(lifespan.handle_lifespan)
            # Cancelled with the lifespan task, once every connection has ended.
            lifespan_nursery.start_soon(self._deadlines.run)
            await lifespan.wait_for_startup()
            try:
                sockets = config.create_sockets().insecure_sockets
            except OSError as exc:
                where = ", ".join(config.bind)
                raise BindError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
            try:
                async with trio.open_nursery() as connections:
                    binds = []
                    for sock in sockets:
                        sock.listen(config.backlog)
                        sock.setblocking(False)
                        binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
                    async with trio.open_nursery() as acceptors:
                        for sock in sockets:
                            acceptors.start_soon(self._accept, sock, connections)
                        task_status.started(binds)
                        await shutdown_trigger()
                        acceptors.cancel_scope.cancel()
                    for sock in sockets:
                        sock.close()
                    await self._context.terminated.set()
                    connections.cancel_scope.deadline = (
                        trio.current_time() + config.graceful_timeout
                    )
            finally:
                for sock in sockets:
                    sock.close()
            await lifespan.wait_for_shutdown()
            lifespan_nursery.cancel_scope.cancel()

    async def _accept(self, listening: socket.socket, connections: trio.Nursery) -> None:
        try:
            while True:
                await trio.lowlevel.wait_readable(listening)
                # Take every connection the kernel has queued: a reconnect storm is
                # accepted in a few wake-ups instead of one per client.
                while True:
                    try:
                        sock, _ = listening.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as exc:
                        if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                            continue  # the client gave up before we took it
                        # Out of file descriptors (EMFILE, ENFILE) or memory: the
                        # connection stays in the kernel's queue; try again shortly.
                        self._accept_failed(exc)
                        await trio.sleep(_ACCEPT_RETRY)
                        break
                    sock.setblocking(False)
                    # A constant name: trio would format one per task.
                    connections.start_soon(self._connection, sock, name=_CONNECTION_TASK)
        finally:
            trio.lowlevel.notify_closing(listening)

    def _accept_failed(self, exc: OSError) -> None:
        """Log a failing ``accept`` at most once per ``_ACCEPT_WARNING_EVERY`` seconds."""
        self._accept_failures += 1
        now = trio.current_time()
        if now >= self._next_accept_warning:
            log.warning(
                "cannot accept connections: %s (%d failures since the last warning; raise "
                "the open-file limit or lower the load)",
                exc.strerror or exc,
                self._accept_failures,
            )
            self._accept_failures = 0
            self._next_accept_warning = now + _ACCEPT_WARNING_EVERY

    async def _connection(self, sock: socket.socket) -> None:
        """Read the first request head, then hand the connection to its server; a bug in
        its handling ends that connection, not the server.

        One coroutine for both (and the head read in a helper that has returned): this
        frame lives as long as the connection, and every frame is part of its cost.
        """
        try:
            head = await self._read_head(sock)
            if not head:  # closed, or silent until the keep-alive timeout
                trio.lowlevel.notify_closing(sock)
                sock.close()
                return
            end = head.find(b"\r\n\r\n")
            route = self._route(head[:end]) if end != -1 else None
            if route is not None:
                handed_over = [head[: end + 4], head[end + 4 :]]
                del head  # the WebSocket keeps no buffer of its handshake
                await serve_websocket(
                    route,
                    sock,
                    handed_over,
                    max_message_bytes=self._max_message,
                    deadlines=self._deadlines,
                )
                return
            await self._serve_http(sock, head)
        except Exception:
            log.exception("connection handler failed; connection closed")
            if sock.fileno() != -1:
                trio.lowlevel.notify_closing(sock)
                sock.close()

    async def _read_head(self, sock: socket.socket) -> bytes:
        """The bytes read up to the end of the first request head (more if they came
        with it); b"" if the peer closed or stayed silent for the keep-alive timeout."""
        head = b""
        try:
            with trio.move_on_after(self._config.keep_alive_timeout):
                while b"\r\n\r\n" not in head and len(head) < _MAX_HEAD:
                    chunk = await recv_some(sock)
                    if not chunk:
                        break
                    head += chunk
        except OSError:
            head = b""
        return head

    async def _serve_http(self, sock: socket.socket, head: bytes) -> None:
        """Hypercorn's HTTP/1.1 server on the connection, ``head`` already read."""
        stream = _PrefixedStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), head)
        server = ConnectionServer(
            self._app, self._config, self._context, ConnectionState(self._state.copy()), stream
        )
        try:
            await server.run()
        finally:
            # Hypercorn closes the socket on its way out unless it is cancelled first (the
            # end of the shutdown grace): then the descriptor must not wait for the GC.
            if sock.fileno() != -1:
                trio.lowlevel.notify_closing(sock)
                sock.close()

    def _route(self, head: bytes) -> WebSocketRoute | None:
        """The WebSocket route of a ``GET <route path>`` with ``Upgrade: websocket``."""
        request_line, _, headers = head.partition(b"\r\n")
        parts = request_line.split(b" ")
        if len(parts) != 3 or parts[0] != b"GET":
            return None
        path = parts[1].partition(b"?")[0]
        route = self._routes.get(path)
        if route is None:
            text = path.decode("latin-1")
            route = next((r for r in self._patterns if r.match(text) is not None), None)
            if route is None:
                return None
        for line in headers.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"upgrade" and b"websocket" in value.lower():
                return route
        return None

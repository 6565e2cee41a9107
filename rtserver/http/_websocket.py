"""WebSocket connections served straight off the socket: one task per connection.

A route registered as a :class:`WebSocketRoute` is answered by the listener
(:mod:`rtserver.http._listener`) before Hypercorn and Quart see the connection. What a
connection then costs is one Trio task (the route's handler, reading) and one stdlib
socket, plus a wsproto frame parser only while a frame or message is half read: no ASGI
queues, no request context, no second task for writing, no timer (one task keeps the read
timeout of every connection, :class:`ReadDeadlines`). Writes go to the socket directly
(:meth:`WebSocketConnection.write_now`), and only a socket whose buffer is full is
written by an awaiting task (:meth:`WebSocketConnection.write`), through
``trio.lowlevel.wait_writable``.

The handshake is RFC 6455's, parsed by wsproto's h11 handshake; no extension is
negotiated (permessage-deflate offers are declined, so every frame is plain). Rejections
are HTTP responses whose JSON body has the error shape of the route's API.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import re
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast
from urllib.parse import parse_qs, unquote

import trio
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

from rtserver.delivery import Frame, Session
from rtserver.exceptions import ConnectionEnded
from rtserver.http._errors import ErrorShape

log = logging.getLogger("rtserver.ws")

#: Bytes read from the socket per ``recv``.
_RECV = 65536
#: Close codes that must never be sent in a close frame (RFC 6455 §7.4.1).
_UNSENDABLE = {1005, 1006, 1015}
#: ``SO_LINGER`` on with a zero timeout: ``close`` sends a TCP reset (struct linger).
_LINGER_RESET = struct.pack("ii", 1, 0)
#: The read timeout is checked this many times per timeout: a silent connection is
#: closed between one and 1 + 1/_SWEEPS timeouts after its last byte.
_SWEEPS = 4
#: What ``WebSocketConnection._events`` is between reads (an exhausted iterator, shared).
_NO_EVENTS: Iterator[Event] = iter(())


class WebSocketClosed(ConnectionEnded):
    """The bare socket's :class:`~rtserver.exceptions.ConnectionEnded`."""


class _Wire(Protocol):
    @property
    def wire(self) -> bytes: ...


@dataclass(frozen=True)
class WebSocketRequest:
    """The handshake request: path, query arguments, headers (names lower-case), the
    values of the route's path parameters (``{name}`` segments), percent-decoded, and
    the peer's IP address (``""`` if unknown: the socket was already gone)."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    peer: str = ""

    def header(self, name: str) -> str:
        """The header's value ('' when absent); repeated headers are comma-joined."""
        return self.headers.get(name.lower(), "")

    def arg(self, name: str) -> str:
        """The query argument's first value ('' when absent)."""
        values = self.query.get(name)
        return values[0] if values else ""


Handler = Callable[["WebSocketConnection"], Awaitable[None]]


@dataclass(frozen=True)
class WebSocketRoute:
    """A WebSocket endpoint served by the listener: ``handler`` gets every upgrade
    request for ``path`` and must :meth:`~WebSocketConnection.accept` or
    :meth:`~WebSocketConnection.reject` it. ``error_shape`` renders rejection bodies.

    ``path`` may hold parameters, whole segments written ``{name}`` (as in
    ``/ws/transactions/{txId}``): each matches one non-empty segment, and its value
    reaches the handler in :attr:`WebSocketRequest.params`.
    """

    path: str
    handler: Handler
    error_shape: ErrorShape

    @property
    def has_params(self) -> bool:
        return "{" in self.path

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters if ``path`` (undecoded) is this route's, else None."""
        found = _pattern(self.path).fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


@functools.lru_cache(maxsize=256)
def _pattern(path: str) -> re.Pattern[str]:
    """A route path as a regular expression: ``{name}`` is one non-empty segment."""
    parts = re.split(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", path)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)


class WebSocketConnection:
    """One WebSocket on a non-blocking stdlib socket, owned by the task that runs its route.

    Reading (:meth:`receive`) belongs to that task; writing may come from it, from the
    event loop (:meth:`write_now`) or from one other task (:meth:`write`), never two at
    once: the caller (delivery's session queue) serialises writes.
    """

    # Slots, and the wsproto parser only while a frame or message is in progress: one
    # of these per idle connection is part of what an idle connection costs.
    __slots__ = (
        "_close_reply",
        "_control_queue",
        "_events",
        "_expired",
        "_handshake",
        "_leftover",
        "_max_message",
        "_parts",
        "_read_timeout",
        "_silent_sweeps",
        "_size",
        "_sock",
        "_writable",
        "_write_busy",
        "_ws",
        "error_shape",
        "request",
    )

    def __init__(
        self,
        sock: socket.socket,
        request: WebSocketRequest,
        handshake: H11Handshake,
        leftover: bytes,
        *,
        error_shape: ErrorShape,
        max_message_bytes: int,
        read_timeout: float,
    ) -> None:
        self._sock = sock
        #: The handshake request, until :meth:`accept` (then None: not kept per socket).
        self.request: WebSocketRequest | None = request
        self.error_shape = error_shape
        self._handshake: H11Handshake | None = handshake
        self._leftover = leftover
        self._max_message = max_message_bytes
        self._read_timeout = read_timeout
        #: wsproto's parser, from the first byte after the handshake until it holds no
        #: part of a frame or message again (see :func:`_at_rest`); made anew when needed.
        self._ws: Connection | None = None
        self._events = _NO_EVENTS
        #: The parts of a fragmented message read so far (None between messages).
        self._parts: list[str | bytes | bytearray] | None = None
        self._size = 0
        self._write_busy = False
        #: True from the 101 until a close frame was sent or received: frames may go out.
        self._writable = False
        self._close_reply: bytes | None = None
        #: Where the control frames the server owes (pongs) go: by default (None) written
        #: at once; a front-end with a send queue routes them through it to keep frames whole.
        self._control_queue: Session | None = None
        #: While :meth:`receive` waits for bytes: the read-deadline sweeps since the last
        #: byte came (:class:`ReadDeadlines`); None while it does not wait.
        self._silent_sweeps: int | None = None
        #: Set by the sweep that found this connection silent for the read timeout.
        self._expired = False

    # -- the session port (rtserver.delivery.SocketPort) ------------------------------

    @property
    def transport(self) -> WebSocketConnection:
        """Frames are written to the socket itself (:meth:`write_now`, :meth:`write`)."""
        return self

    def route_control_frames(self, session: Session) -> None:
        # Through the session's queue, so that a pong never cuts into a frame being written.
        self._control_queue = session

    # -- handshake --------------------------------------------------------------------

    async def accept(self) -> None:
        """Answer ``101 Switching Protocols``; frames may flow from now on."""
        handshake = self._handshake
        assert handshake is not None, "accept() or reject() was already called"
        data = handshake.send(AcceptConnection(extensions=[]))
        self._handshake = None
        self.request = None  # read it before accepting; an open socket keeps none of it
        await self._send_all(data)
        self._writable = True
        if self._leftover:  # frames the client sent right behind its request
            ws = self._parser()
            ws.receive_data(self._leftover)
            self._events = ws.events()
            self._leftover = b""

    def _parser(self) -> Connection:
        """wsproto's frame parser (and framer of the control frames we send): the one in
        use, or a new one (equivalent: the last one was at rest)."""
        ws = self._ws
        if ws is None:
            ws = self._ws = Connection(ConnectionType.SERVER)
        return ws

    async def reject(self, status: int, message: str) -> None:
        """Answer with an HTTP error whose JSON body has the route's error shape."""
        handshake = self._handshake
        assert handshake is not None, "accept() or reject() was already called"
        self._handshake = None
        await self._send_all(_rejection(handshake, status, message, self.error_shape))

    # -- reading ------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next whole message; answers pings on the way.

        Always a checkpoint (yields to other tasks), even when the message was already
        buffered. Raises :class:`WebSocketClosed` when the peer closes, sends a message
        over the size limit (1009) or an invalid frame (1002), goes silent for longer
        than the read timeout, or the socket breaks.
        """
        assert self._handshake is None, "receive() before accept()"
        # A checkpoint per message: while the client's bytes are buffered, reading never
        # waits, and a flood of small commands would otherwise hold the event loop.
        await trio.lowlevel.checkpoint()
        # This frame lives as long as the connection: what it handles is done in helpers
        # (no message, event or chunk stays referenced here while it waits), and nothing
        # is raised here on the way (an exception would attach a frame object to it).
        while True:
            message = self._next_message()
            if message is not None:
                return message
            # The read timeout is kept by one task for every connection (ReadDeadlines):
            # a waiting connection holds no cancel scope and no timer of its own.
            self._silent_sweeps = 0
            try:
                while not self._read_available():
                    try:
                        await trio.lowlevel.wait_readable(self._sock)
                    except trio.ClosedResourceError:
                        if not self._expired:
                            raise
                    if self._expired:
                        raise WebSocketClosed(
                            1006, f"nothing received for {self._read_timeout:.0f} s"
                        )
            finally:
                self._silent_sweeps = None

    def _next_message(self) -> str | bytes | None:
        """The next whole message of what was read, answering pings on the way; None
        when what was read holds no more (then the spent parser is dropped if at rest)."""
        for event in self._events:
            if isinstance(event, (TextMessage, BytesMessage)):
                self._size += len(event.data)
                if self._size > self._max_message:
                    raise WebSocketClosed(1009, f"message larger than {self._max_message} bytes")
                if event.message_finished and self._parts is None:  # in one frame
                    self._size = 0
                    data = event.data
                    return data if isinstance(data, str) else bytes(data)
                parts = self._parts
                if parts is None:
                    parts = self._parts = []
                parts.append(event.data)
                if event.message_finished:
                    self._parts, self._size = None, 0
                    if isinstance(event, TextMessage):  # a text message's parts are str
                        return "".join(cast(list[str], parts))
                    return b"".join(cast(list[bytes], parts))
            elif isinstance(event, Ping):
                pong = self._parser().send(event.response())
                if self._control_queue is not None:
                    self._control_queue.send(Frame.control(pong))
                else:
                    self._write_best_effort(pong)
            elif isinstance(event, CloseConnection):
                self._writable = False
                ws = self._parser()
                if ws.state is ConnectionState.REMOTE_CLOSING:
                    self._close_reply = ws.send(event.response())
                raise WebSocketClosed(event.code, event.reason or "")
        # Everything read is handled: drop the spent generator, and the parser too if no
        # frame or message is half read (an idle socket keeps none).
        self._events = _NO_EVENTS
        if self._ws is not None and _at_rest(self._ws):
            self._ws = None
        return None

    def _read_available(self) -> bool:
        """Feed the parser what the socket holds; False if it holds nothing yet.

        Raises :class:`WebSocketClosed` if the socket broke or the peer closed it
        without a close frame.
        """
        try:
            data = self._sock.recv(_RECV)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise WebSocketClosed(1006, f"read failed: {exc.strerror}") from None
        if not data:
            raise WebSocketClosed(1006, "connection closed without a close frame")
        if self._ws is None:  # no frame half read: the commands' common case is decoded here
            messages = _whole_text_frames(data)
            if messages is not None:
                self._events = iter(messages)
                return True
        ws = self._parser()
        ws.receive_data(data)
        self._events = ws.events()
        return True

    def sweep_read_deadline(self) -> None:
        """One tick of the read-deadline sweep: a connection that has waited for bytes
        through ``_SWEEPS`` whole sweep intervals (the read timeout) is woken to fail."""
        silent = self._silent_sweeps
        if silent is None:
            return
        if silent < _SWEEPS:
            self._silent_sweeps = silent + 1
            return
        self._expired = True
        # The socket is closed next (a 1006 sends no close frame), so waking the reading
        # task the way a closing socket does is what notify_closing is for.
        trio.lowlevel.notify_closing(self._sock)

    # -- writing --------------------------------------------------------------------------

    def write_now(self, data: bytes) -> int:
        """Write without waiting: the bytes the socket took (0 if its buffer is full),
        or -1 when only :meth:`write` may write now (one is in progress, or closing)."""
        if self._write_busy or not self._writable:
            return -1
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            return -1  # the next write() meets the error and ends the session

    async def write(self, frames: Sequence[_Wire]) -> None:
        """Write ``frames`` (already framed bytes) in one go, waiting for the socket."""
        if not self._writable:
            return
        data = frames[0].wire if len(frames) == 1 else b"".join([f.wire for f in frames])
        await self._send_all(data)

    def _write_best_effort(self, data: bytes) -> None:
        if not self._write_busy:
            with contextlib.suppress(OSError):
                self._sock.send(data)

    async def _send_all(self, data: bytes) -> None:
        self._write_busy = True
        try:
            await send_all(self._sock, data)
        except OSError as exc:
            raise trio.BrokenResourceError(f"write failed: {exc.strerror}") from exc
        finally:
            self._write_busy = False

    # -- closing --------------------------------------------------------------------------

    async def close(self, code: int, reason: str) -> None:
        """The closing handshake, then the TCP close (bound it with a cancel scope).

        Sends our close frame (or the reply to the peer's) and waits for the peer's
        close frame if it has not come yet. Codes that may not be sent (1006: the peer
        vanished or went silent) close the TCP connection at once.
        """
        self._writable = False
        # Nothing to send: not accepted, or the peer vanished or went silent.
        if self._handshake is not None or code in _UNSENDABLE:
            self.release()
            return
        # The parser that saw the peer's close frame is never dropped: a new one means
        # the peer has not closed yet.
        ws = self._parser()
        completed = False
        try:
            if self._close_reply is not None:
                await self._send_all(self._close_reply)
            elif ws.state is ConnectionState.OPEN:
                await self._send_all(ws.send(CloseConnection(code, reason[:120])))
                while not _closed(ws):  # until the peer's close frame is read
                    try:
                        data = await recv_some(self._sock)
                    except OSError as exc:
                        raise WebSocketClosed(1006, f"read failed: {exc.strerror}") from None
                    if not data:
                        raise WebSocketClosed(1006, "connection closed without a close frame")
                    ws.receive_data(data)
                    for _ in ws.events():
                        pass
            completed = True
        except (WebSocketClosed, trio.BrokenResourceError, OSError):
            pass
        finally:
            # Cancelled (the peer does not read) or failed: whatever is still unsent
            # would keep the TCP connection alive in the kernel; reset it instead.
            if completed:
                self.release()
            else:
                self.reset()

    def release(self) -> None:
        """Close the socket the ordinary way (FIN after what is still buffered); idempotent.

        A task waiting on the socket gets ClosedResourceError.
        """
        if self._sock.fileno() != -1:
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()

    async def abort(self) -> None:
        """The session port's abort: :meth:`reset`."""
        self.reset()

    def reset(self) -> None:
        """Close the socket at once with a TCP reset, discarding unsent data; idempotent.

        For a peer that does not read: a plain ``close`` would leave the kernel trying
        to deliver the buffered bytes (and the connection ESTABLISHED on the peer's
        side) for minutes. A task waiting on the socket gets ClosedResourceError.
        """
        if self._sock.fileno() != -1:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.release()


class ReadDeadlines:
    """The read timeout of every WebSocket the listener serves, kept by one task.

    A connection waiting for bytes counts the sweeps since its last byte came; the sweep
    that finds it silent for ``timeout`` wakes its task, which ends the connection with
    1006. So a waiting connection costs a set entry here instead of a cancel scope and a
    timer per read (about 1 KiB per idle connection).
    """

    def __init__(self, timeout: float) -> None:
        #: Seconds without a byte while waiting for a message (inf: no timeout).
        self.timeout = timeout
        self._connections: set[WebSocketConnection] = set()

    def watch(self, connection: WebSocketConnection) -> None:
        self._connections.add(connection)

    def unwatch(self, connection: WebSocketConnection) -> None:
        self._connections.discard(connection)

    async def run(self) -> None:
        """Service: sweep every ``timeout / _SWEEPS`` seconds (never if there is none)."""
        if math.isinf(self.timeout):
            await trio.sleep_forever()
        while True:
            await trio.sleep(self.timeout / _SWEEPS)
            # A sweep only sets flags and wakes tasks: the set does not change under it.
            for connection in self._connections:
                connection.sweep_read_deadline()


def _closed(ws: Connection) -> bool:
    return ws.state is ConnectionState.CLOSED


def _whole_text_frames(data: bytes) -> list[Event] | None:
    """The messages of ``data`` when it is nothing but whole, unfragmented, masked text
    frames of at most 64 KiB with valid UTF-8 (what clients' commands are); None for
    anything else, which wsproto then parses (and answers any protocol error of).

    Why: wsproto's pure-Python frame and message decoders cost more than the command
    they carry; a reconnect storm or a block's fan-out brings thousands of ACKs at once.
    """
    messages: list[Event] = []
    at, end = 0, len(data)
    while at < end:
        if end - at < 6 or data[at] != 0x81 or not data[at + 1] & 0x80:
            return None  # not FIN + text without RSV bits, or not masked
        length = data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length = int.from_bytes(data[at : at + 2], "big")
            at += 2
            if length < 126:
                return None  # not the shortest length encoding: wsproto refuses it
        elif length == 127:
            return None
        if end - at < 4 + length:
            return None  # a frame continues in the next read
        mask = data[at : at + 4]
        at += 4
        key = int.from_bytes((mask * (length // 4 + 1))[:length], "little")
        payload = (int.from_bytes(data[at : at + length], "little") ^ key).to_bytes(
            length, "little"
        )
        at += length
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
        messages.append(TextMessage(data=text, frame_finished=True, message_finished=True))
    return messages


def _at_rest(ws: Connection) -> bool:
    """Whether wsproto's parser holds no part of a frame or message, so that a new one
    would parse what comes next the same way (the state of wsproto 1.x's frame protocol;
    tests/test_listener.py checks it against fragmented messages and split frames)."""
    proto = ws._proto
    frames = proto._frame_decoder
    return (
        ws.state is ConnectionState.OPEN
        and frames.header is None
        and len(frames.buffer) == 0
        and proto._message_decoder.opcode is None
    )


def _rejection(handshake: H11Handshake, status: int, message: str, shape: ErrorShape) -> bytes:
    # Like an HTTP error, a rejection carries a request id (body and header) to quote.
    request_id = "ws-" + secrets.token_hex(8)
    body = json.dumps(shape(status, message, request_id), ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        (b"connection", b"close"),
    ]
    return handshake.send(RejectConnection(status_code=status, headers=headers, has_body=True)) + (
        handshake.send(RejectData(data=body, body_finished=True))
    )


async def serve_websocket(
    route: WebSocketRoute,
    sock: socket.socket,
    head: list[bytes],
    *,
    max_message_bytes: int,
    deadlines: ReadDeadlines,
) -> None:
    """Run ``route`` on a socket whose upgrade request was read; closes the socket.

    ``head`` is ``[request head, bytes read after it]``; it is emptied here, so that an
    open connection holds none of the handshake's buffers. A request that is not a valid
    WebSocket handshake gets its HTTP error here (400, or 426 for a wrong
    ``Sec-WebSocket-Version``) and never reaches the route.
    """
    connection: WebSocketConnection | None = None
    try:
        accepted = _parse_handshake(route, sock, head, max_message_bytes, deadlines.timeout)
        if isinstance(accepted, bytes):
            await _send_bounded(sock, accepted)
            return
        connection = accepted
        deadlines.watch(connection)
        await route.handler(connection)
    except (trio.BrokenResourceError, WebSocketClosed):
        pass  # the peer went away during the handshake or the closing
    finally:
        if connection is not None:
            deadlines.unwatch(connection)
            connection.release()  # a no-op after close(); after reject(), the answer stays
        elif sock.fileno() != -1:
            trio.lowlevel.notify_closing(sock)
            sock.close()


def _parse_handshake(
    route: WebSocketRoute,
    sock: socket.socket,
    head: list[bytes],
    max_message_bytes: int,
    read_timeout: float,
) -> WebSocketConnection | bytes:
    """The connection for a valid upgrade request, or the HTTP rejection to send."""
    request_head, leftover = head
    head.clear()
    handshake = H11Handshake(ConnectionType.SERVER)
    try:
        handshake.receive_data(request_head)
        request = next(iter(handshake.events()), None)
    except RemoteProtocolError as exc:
        hint = exc.event_hint
        status = hint.status_code if isinstance(hint, RejectConnection) else 400
        return _rejection(handshake, status, str(exc), route.error_shape)
    if not isinstance(request, Request):  # the listener saw a whole head; be sure anyway
        return _rejection(handshake, 400, "malformed upgrade request", route.error_shape)
    path, _, query = request.target.partition("?")
    params = route.match(path) if route.has_params else {}
    headers: dict[str, str] = {}
    for name, value in request.extra_headers:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return WebSocketConnection(
        sock,
        WebSocketRequest(unquote(path), parse_qs(query), headers, params or {}, _peer(sock)),
        handshake,
        leftover,
        error_shape=route.error_shape,
        max_message_bytes=max_message_bytes,
        read_timeout=read_timeout,
    )


def _peer(sock: socket.socket) -> str:
    """The IP address of the socket's peer; "" when it is not connected any more."""
    try:
        peer = sock.getpeername()
    except OSError:
        return ""
    return str(peer[0]) if isinstance(peer, tuple) else ""


async def _send_bounded(sock: socket.socket, data: bytes) -> None:
    with trio.move_on_after(10):
        try:
            await send_all(sock, data)
        except OSError:
            log.debug("rejection not delivered", exc_info=True)


async def recv_some(sock: socket.socket) -> bytes:
    """Bytes from a non-blocking socket, waiting until some come (b'' at end of stream)."""
    while True:
        try:
            return sock.recv(_RECV)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)


async def send_all(sock: socket.socket, data: bytes) -> None:
    """Write all of ``data`` to a non-blocking socket, waiting while its buffer is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)

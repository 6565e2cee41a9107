"""The session runtime: one accepted WebSocket's whole life, the same for every protocol.

A protocol front-end accepts (or rejects) the handshake, then hands the socket to
:func:`run_session` with a :class:`SessionHandler`: what to queue when the connection
opens, what to answer to each message, what to release when it closes. Everything else
is here, once:

* registration: the hub's session (fan-out, pings, retries) and the connection registry
  (status, metrics, shutdown with 1001, revocation with 1008), including the races with
  a shutdown or a revocation that happened between the handshake's check and now;
* the read loop, in the connection's only task (the hub writes from the event loop);
* the end: the peer's close answered, or the server's reason sent (1013 too slow, 1001
  shutting down, 1008 revoked); a client that does not read its close is aborted after
  ``websocket.ping_timeout``.

Guarantees a handler can rely on: :meth:`SessionHandler.opened` runs before the first
message is read; :meth:`SessionHandler.received` is never called concurrently with
itself; :meth:`SessionHandler.closed` runs exactly once, whatever ended the connection.
A fault of one connection ends that connection only, never a service: an exception in
its handler is logged and the socket is closed with 1011 (internal error).
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from rtserver.connections import CREDENTIALS_REVOKED, GOING_AWAY, ConnectionInfo
from rtserver.core import Core
from rtserver.delivery._hub import (
    CONNECTION_LOST,
    TRY_AGAIN_LATER,
    Frame,
    Hub,
    Session,
    Transport,
)
from rtserver.exceptions import ConnectionEnded
from rtserver.logs import fields, log_context

log = logging.getLogger("rtserver.sockets")

#: Close code of a connection whose protocol code failed (RFC 6455: Internal Error).
INTERNAL_ERROR = 1011


class SocketPort(Protocol):
    """What the runtime needs of an accepted WebSocket, whichever server path it came by
    (the listener's bare socket, or an upgrade that came through Hypercorn and Quart)."""

    @property
    def transport(self) -> Transport:
        """Where the session's frames are written."""
        ...

    async def receive(self) -> str | bytes:
        """The next whole message; raises :class:`ConnectionEnded` when the connection
        ends (the peer closed, broke a protocol rule, went silent or vanished)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """The closing handshake (the caller bounds it), then the TCP close."""
        ...

    async def abort(self) -> None:
        """Drop the connection at once (a peer that does not read its close)."""
        ...

    def route_control_frames(self, session: Session) -> None:
        """Send the control frames the server owes (pongs) through ``session``'s queue,
        so that they never cut into a frame being written."""
        ...


class SessionHandler(Protocol):
    """A protocol's side of one connection (see the module doc for the guarantees)."""

    async def opened(self, session: Session) -> None:
        """Queue what the client gets first (a greeting, a resend) with ``session.send``."""
        ...

    async def received(self, message: str | bytes) -> Frame | None:
        """One client message → the reply to queue, or None (answered later, or not at
        all). Bad input is answered, never raised."""
        ...

    def closed(self) -> None:
        """Release what the connection held (subscriptions, per-connection state)."""
        ...


async def run_session(
    core: Core,
    hub: Hub,
    endpoint: str,
    socket: SocketPort,
    session: Session,
    handler: SessionHandler,
) -> None:
    """Serve one accepted connection until either side ends it, then close it.

    ``session`` comes from :meth:`Hub.attach`, called before the handshake's last await
    so that no live message is missed (they are held until the handler's resend is
    finished); ``endpoint`` labels its metrics and its entry in the connection registry.
    Returns once the socket is closed or aborted; the closing handshake is bounded by
    ``websocket.ping_timeout``.
    """
    # The connection id tags the log lines of this task while it works (opening, each
    # message, closing), not while it waits: a context variable set for the whole life
    # of an idle connection would cost it about 300 bytes.
    conn_id = session.conn_id
    context = log_context.set(conn_id)
    try:
        registry = core.connections
        app_id = session.app_id
        opened_at = core.clock.monotonic()
        if log.isEnabledFor(logging.INFO):
            log.info("%s socket opened", endpoint, extra=_who(endpoint, session))
        #: (code, reason) when the peer ended it; not the exception, whose traceback would
        #: hold this frame in a reference cycle.
        ended: tuple[int, str] | None = None
        info = ConnectionInfo(conn_id, endpoint, app_id, session.fail)
        registry.add(info)
        try:
            with trio.CancelScope() as reading:
                # The session fails (slow client 1013, shutdown 1001, revoked 1008): stop reading.
                session.on_close = reading.cancel
                # Races with what happened between the handshake's checks and the
                # registration above: the sweeps that close every session missed this one.
                if registry.closing.is_set():
                    session.fail(GOING_AWAY, "server shutting down")
                elif app_id is not None and core.is_revoked(app_id):
                    session.fail(CREDENTIALS_REVOKED, "API key revoked")
                socket.route_control_frames(session)
                session.bind(socket.transport, core.metrics.messages_sent.labels(endpoint).inc)
                try:
                    await handler.opened(session)
                    while True:
                        log_context.reset(context)
                        try:
                            message = await socket.receive()
                        finally:  # tagged again, however the wait ended
                            context = log_context.set(conn_id)
                        await hub.wait_walk()
                        reply = await handler.received(message)
                        if reply is not None:
                            session.send(reply)
                except ConnectionEnded as closed:  # the peer closed, broke a rule, went silent
                    ended = (closed.code, closed.reason)
                except Exception:  # a bug in the protocol: this connection ends, with 1011
                    log.exception("%s socket: the protocol failed; closing with 1011", endpoint)
                    session.fail(INTERNAL_ERROR, "internal error")
        finally:
            registry.remove(info)
            hub.detach(session)
            handler.closed()
            if not session.closed:  # stop deliveries to it
                session.on_close = None
                session.fail(CONNECTION_LOST, "connection ended")
        await _close(core, endpoint, socket, session, ended, opened_at)
    finally:
        log_context.reset(context)


async def _close(
    core: Core,
    endpoint: str,
    socket: SocketPort,
    session: Session,
    ended: tuple[int, str] | None,
    opened_at: float,
) -> None:
    """Close an ended connection: answer the peer's close (``ended``), or say why the
    server ended it; then log it.

    Not inline in :func:`run_session`: that frame lives as long as the connection, and
    the locals and the deep log call of the closing would make it bigger all along.
    """
    if ended is not None:  # answer the peer's close, or close with the rule it broke
        code, reason = ended
    else:  # the server ended it (slow client, shutdown, revoked, broken socket): say why
        code, reason = session.close_code, session.close_reason
        if code == TRY_AGAIN_LATER:
            core.metrics.slow_consumers.inc()
    # A client that stopped reading holds the last write (and so the close frame)
    # forever: past the ping timeout its TCP connection is aborted.
    with trio.move_on_after(core.config.websocket.ping_timeout) as stuck:
        await session.wait_drained()
        await socket.close(code, reason)
    if stuck.cancelled_caught:
        await socket.abort()
    duration = core.clock.monotonic() - opened_at
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s socket closed: %d %s after %.1f s%s",
            endpoint,
            code,
            reason or "-",
            duration,
            " (by the client)" if ended is not None else "",
            extra=_who(
                endpoint,
                session,
                close_code=code,
                close_reason=reason,
                closed_by="client" if ended is not None else "server",
                aborted=stuck.cancelled_caught,
                duration_s=round(duration, 3),
            ),
        )


def _who(endpoint: str, session: Session, **more: object) -> dict[str, object]:
    """The fields of a socket's log lines: which protocol, connection, app and user."""
    return fields(
        protocol=endpoint,
        connection=session.conn_id,
        app=session.app_id,
        user=session.user_id,
        **more,
    )

"""``GET /ws/transactions/{txId}``: one payment's status socket, no authentication.

Wire-exact to the document: on connect the current ``status`` message (or the ``error``
"Transaction not found"), a ``settlement`` message when it settles, a ``status`` message
when it expires or is cancelled. Read-only: every client frame is answered with an
``error`` and changes nothing.

How it sits on the core: the handler attaches a hub session in this protocol's format,
subscribes it to the state topic ``payment:<txId>`` *recovering* (live messages wait),
reads the proposal and the topic's last offset in one store read, sends the ``status``
of what it read, and finishes the recovery *through* that offset: a transition committed
before the read is in the status already and its live message is dropped; one committed
after it follows. So each socket gets every transition once, none missed, none twice.

Served on the bare socket by the listener (:func:`make_route`); an upgrade that comes on
a kept-alive HTTP connection reaches the Quart route of the same path
(:func:`make_blueprint`); both run :func:`_serve`.

Choices where the document is silent (docs/payments.md):

* an id that is not a UUID, or an unknown one: the handshake is accepted, the ``error``
  message is sent, and the socket is closed with 1008: the document's clients (the
  browser's ``WebSocket``, the Python ``websockets`` example) can read a message, not
  the body of a refused handshake;
* the connection limits (``payments.max_connections_per_transaction`` and
  ``…_per_ip``) refuse the handshake with HTTP 429 and the ``error`` body: a flood is
  turned away before it costs a session;
* a socket stays open after a terminal status (the document's reference server never
  closes one): the client closes it, as the document advises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
from quart import Blueprint, Response, websocket

from rtserver.core import Core
from rtserver.delivery import Delivery, Frame, Session, SocketPort, payment_topic, run_session
from rtserver.exceptions import ConnectionEnded
from rtserver.http import AsgiWebSocket, WebSocketConnection, WebSocketRoute, json_response
from rtserver.payments import CurrentStatus, Payments
from rtserver.protocols.payment_status._wire import (
    FORMAT,
    INVALID_ID,
    NOT_FOUND,
    READ_ONLY_FRAME,
    WS_PATH,
    error_shape,
    error_text,
    status_frame,
)
from rtserver.protocols.payment_status.api import parse_transaction_id

ENDPOINT = "payment-status"
#: The close code after an ``error`` (invalid or unknown id): Policy Violation.
POLICY_VIOLATION = 1008


class ConnectionLimits:
    """Open status sockets per transaction id and per client IP, bounded by config.

    Only open sockets are counted (an entry leaves with its last socket), so the maps
    are as large as the open connections, never larger.
    """

    def __init__(self, per_transaction: int, per_ip: int) -> None:
        self._per_transaction = per_transaction
        self._per_ip = per_ip
        self._by_transaction: dict[str, int] = {}
        self._by_ip: dict[str, int] = {}

    def refusal(self, transaction_id: str | None, peer: str) -> str | None:
        """Why one more socket for ``transaction_id`` from ``peer`` is refused, or None."""
        if peer and self._by_ip.get(peer, 0) >= self._per_ip:
            return f"too many connections from this address (at most {self._per_ip})"
        if transaction_id and self._by_transaction.get(transaction_id, 0) >= self._per_transaction:
            return f"too many connections for this transaction (at most {self._per_transaction})"
        return None

    def add(self, transaction_id: str | None, peer: str) -> None:
        """Count one socket until :meth:`remove` (check :meth:`refusal` first, with no
        await in between).

        Two calls rather than a context manager: a generator-based one would stay
        allocated (about 330 bytes) for the whole life of every socket.
        """
        _add(self._by_ip, peer, 1)
        _add(self._by_transaction, transaction_id, 1)

    def remove(self, transaction_id: str | None, peer: str) -> None:
        """No longer count one socket counted by :meth:`add`."""
        _add(self._by_ip, peer, -1)
        _add(self._by_transaction, transaction_id, -1)


def _add(counts: dict[str, int], key: str | None, delta: int) -> None:
    if not key:
        return
    count = counts.get(key, 0) + delta
    if count > 0:
        counts[key] = count
    else:
        counts.pop(key, None)


class _StatusSocket:
    """One socket's side of the protocol (a :class:`~rtserver.delivery.SessionHandler`)."""

    def __init__(self, delivery: Delivery, topic: str, current: CurrentStatus) -> None:
        self._delivery = delivery
        self._topic = topic
        self._current = current

    async def opened(self, session: Session) -> None:
        """The current ``status``, then the live messages held since the subscription
        that it does not already cover."""
        proposal = self._current.proposal
        assert proposal is not None
        session.send(status_frame(proposal))
        self._delivery.hub.finish_recovery(session, self._topic, [], through=self._current.offset)

    async def received(self, message: str | bytes) -> Frame:
        return READ_ONLY_FRAME

    def closed(self) -> None:
        pass  # nothing per connection beyond the hub's session (the runtime detaches it)


#: Accepts the handshake and returns the socket as a session port.
_Accept = Callable[[], Awaitable[SocketPort]]


async def _serve(
    delivery: Delivery,
    payments: Payments,
    limits: ConnectionLimits,
    raw_id: str,
    peer: str,
    accept: _Accept,
) -> None:
    """One status socket whose handshake passed the limits (see the module doc)."""
    core = delivery.core
    hub = delivery.hub
    transaction_id = parse_transaction_id(raw_id)
    limits.add(transaction_id, peer)
    try:
        if transaction_id is None:
            await _refuse(core, await accept(), INVALID_ID)
            return
        topic = payment_topic(transaction_id)
        session = hub.attach(core.connections.new_id("payment"), format=FORMAT)
        try:
            # Live messages of the topic wait from here until the status is queued.
            hub.subscribe(session, topic, recovering=True)
            current = await payments.current_status(transaction_id)
            if current.proposal is None:
                hub.detach(session)
                await _refuse(core, await accept(), NOT_FOUND)
                return
            socket = await accept()
            handler = _StatusSocket(delivery, topic, current)
            await run_session(core, hub, ENDPOINT, socket, session, handler)
        finally:
            hub.detach(session)  # idempotent; covers a failed read or accept
    finally:
        limits.remove(transaction_id, peer)


async def _refuse(core: Core, socket: SocketPort, message: str) -> None:
    """Send the ``error`` message on an accepted socket, then close it with 1008
    (bounded by ``websocket.ping_timeout``: a peer that does not read is aborted)."""
    with trio.move_on_after(core.config.websocket.ping_timeout) as stuck:
        try:
            await socket.transport.write([Frame(error_text(message))])
            await socket.close(POLICY_VIOLATION, message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionEnded, OSError):
            stuck.cancel()  # the peer is gone: nothing to close gracefully
    if stuck.cancelled_caught:
        await socket.abort()


def make_route(delivery: Delivery, payments: Payments, limits: ConnectionLimits) -> WebSocketRoute:
    """The status socket, served by the listener on bare sockets."""

    async def handler(connection: WebSocketConnection) -> None:
        request = connection.request
        assert request is not None
        raw_id, peer = request.params["txId"], request.peer
        del request
        refusal = limits.refusal(parse_transaction_id(raw_id), peer)
        if refusal is not None:
            await connection.reject(429, refusal)
            return

        async def accept() -> SocketPort:
            await connection.accept()
            return connection

        await _serve(delivery, payments, limits, raw_id, peer, accept)

    return WebSocketRoute(WS_PATH, handler, error_shape)


def make_blueprint(delivery: Delivery, payments: Payments, limits: ConnectionLimits) -> Blueprint:
    """The same socket for an upgrade that came on a kept-alive HTTP connection."""
    blueprint = Blueprint("payment_status_ws", __name__)

    @blueprint.websocket("/ws/transactions/<tx_id>")
    async def status_socket(tx_id: str) -> Response | None:
        peer = websocket.remote_addr or ""
        refusal = limits.refusal(parse_transaction_id(tx_id), peer)
        if refusal is not None:
            return json_response(error_shape(429, refusal, ""), status=429)

        async def accept() -> SocketPort:
            await websocket.accept()
            return AsgiWebSocket()

        await _serve(delivery, payments, limits, tx_id, peer, accept)
        return None

    return blueprint

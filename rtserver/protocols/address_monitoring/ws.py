"""``GET /tx/api/v1/transaction/ws``: the address-monitoring transaction stream.

Wire-exact to the spec's "WebSocket real-time push" section: the ``X-API-Key`` handshake
(also ``?api_key=``, an extension for browsers), ``X-ResendDuration``, the ``connected``
message, the ``{id,time,type,code,data,msg}`` envelope, the five commands and their
error table. What this module adds to the delivery core is only translation: frames
in, calls on :class:`~rtserver.delivery.Delivery` out, and the envelope rendering.

Push path: outbox entries are rendered once per message into a :class:`Frame` whose
WebSocket bytes are built once and shared by every connection of the app. The stream is
served on the bare socket by the listener (:func:`make_route`); an upgrade on a
kept-alive HTTP connection comes through Quart instead (:func:`make_blueprint`), and both
run the same :func:`_stream` on the session runtime (:func:`rtserver.delivery.run_session`),
which owns the connection's lifecycle; this module owns the wire.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, TypeGuard

from quart import Blueprint, Response, websocket

from rtserver.addresses import chain_family, normalize_address
from rtserver.clock import Clock
from rtserver.delivery import (
    AckRequest,
    AckResult,
    Delivery,
    Frame,
    PushFrame,
    Session,
    SocketPort,
    app_topic,
    run_session,
)
from rtserver.exceptions import AuthenticationError, InvalidInputError
from rtserver.http import (
    AsgiWebSocket,
    WebSocketConnection,
    WebSocketRoute,
    get_chain_id,
    json_response,
)
from rtserver.protocols.address_monitoring._auth import (
    API_KEY_HEADER,
    API_KEY_QUERY,
    websocket_api_key,
)
from rtserver.protocols.address_monitoring._errors import PREFIX, error_envelope
from rtserver.protocols.address_monitoring._naming import push_data, v2_detail
from rtserver.protocols.address_monitoring._params import chain_type_param, tx_hash_param, viewer
from rtserver.records import TransactionRecord
from rtserver.store import outbox
from rtserver.store.apps import App
from rtserver.store.transactions import visible_record

log = logging.getLogger("rtserver.ws")

ENDPOINT = "address-monitoring"
RESEND_HEADER = "X-ResendDuration"
#: Longest command id echoed back; longer ones are treated as missing.
MAX_ID_LENGTH = 256
#: Connection-scoped subscriptions one socket may hold.
MAX_SUBSCRIPTIONS = 1_000
#: Longest address a ``subscribe`` accepts (the longest real ones are under 100).
MAX_ADDRESS_LENGTH = 256


# -- rendering ---------------------------------------------------------------------------


def envelope(
    clock: Clock,
    message_id: str,
    type_: str,
    code: int = 0,
    data: Any = None,
    msg: str = "success",
) -> Frame:
    """A reply or server message in the spec's envelope, serialised once, stamped with
    ``clock``'s time."""
    text = _encode(
        {
            "id": message_id,
            "time": clock.time_ms(),
            "type": type_,
            "code": code,
            "data": data,
            "msg": msg,
        }
    )
    return Frame(text)


#: Compact JSON, one encoder for every call (``json.dumps`` with options builds one per
#: call: a cost per ACK reply and per push).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def push_frame(
    record: TransactionRecord, listen_addresses: Sequence[str], is_reorg_resend: bool
) -> PushFrame:
    """A ``transaction`` push's whole text, rendered when its entries are staged: the
    shared tail (``data`` onwards) once, and the head of each entry (``id``, ``time``).

    ``time`` is the message's creation time, so a resend (the stored text, sent again)
    is byte-identical to the first push (same ``id``, same ``time``).
    """
    data = _encode(push_data(record, listen_addresses, is_reorg_resend))

    def head(message_id: str, created_at_ms: int) -> str:
        return f'{{"id":"{message_id}","time":{created_at_ms},"type":"transaction","code":0,"data":'

    return head, f'{data},"msg":"success"}}'


# -- the endpoint --------------------------------------------------------------------------


def make_route(delivery: Delivery) -> WebSocketRoute:
    """The stream, served by the listener on bare sockets."""

    async def handler(connection: WebSocketConnection) -> None:
        request = connection.request
        assert request is not None
        key = request.header(API_KEY_HEADER).strip() or request.arg(API_KEY_QUERY).strip()
        window_ms = delivery.resend_window_ms(request.header(RESEND_HEADER) or None)
        del request
        failure = await _admit(delivery, key)
        del key  # this frame lives as long as the connection
        if isinstance(failure, tuple):
            await connection.reject(*failure)
            return
        app_id = failure.app_id
        del failure
        await connection.accept()
        await _stream(delivery, app_id, window_ms, connection)

    return WebSocketRoute(PREFIX + "/transaction/ws", handler, error_envelope)


def make_blueprint(delivery: Delivery) -> Blueprint:
    blueprint = Blueprint("address_monitoring_ws", __name__, url_prefix=PREFIX)

    @blueprint.get("/transaction/ws")
    async def upgrade_required() -> Response:
        # A plain GET (no Upgrade header) reaches the HTTP rule: 426 as the spec says.
        response = json_response(
            error_envelope(426, "Upgrade: websocket header is missing", ""), status=426
        )
        response.headers["Upgrade"] = "websocket"
        response.headers["Connection"] = "Upgrade"
        return response

    @blueprint.websocket("/transaction/ws")
    async def transaction_stream() -> Response | None:
        failure = await _admit(delivery, websocket_api_key())
        if isinstance(failure, tuple):
            return json_response(error_envelope(failure[0], failure[1], ""), status=failure[0])
        window_ms = delivery.resend_window_ms(websocket.headers.get(RESEND_HEADER))
        await websocket.accept()
        await _stream(delivery, failure.app_id, window_ms, AsgiWebSocket())
        return None

    return blueprint


async def _admit(delivery: Delivery, key: str) -> App | tuple[int, str]:
    """The app of a handshake's key, or the (HTTP status, message) to reject it with."""
    if not key:
        return 400, "X-API-Key header is required"
    try:
        app = await delivery.core.authenticate_app(key)
    except AuthenticationError as exc:
        return 401, str(exc)
    if delivery.core.connections.closing.is_set():
        return 503, "server is shutting down"
    return app


def _stream(
    delivery: Delivery, app_id: str, window_ms: int, socket: SocketPort
) -> Coroutine[Any, Any, None]:
    """One accepted connection on the session runtime: ``connected``, the resend, then
    live pushes and commands until either side closes.

    Returns the session's coroutine for the caller to await: a coroutine of this
    function's own would be one more frame kept for the life of every connection.
    """
    core = delivery.core
    session = delivery.hub.attach(
        core.connections.new_id("client"),
        topics=(app_topic(app_id),),
        app_id=app_id,
        window_ms=window_ms,
        resending=True,
    )
    commands = _Commands(delivery, session, app_id)
    return run_session(core, delivery.hub, ENDPOINT, socket, session, commands)


#: Shared by every connection until its first subscribe (an empty frozenset is no
#: singleton in CPython 3.11: each would cost 216 bytes).
_NO_SUBSCRIPTIONS: frozenset[tuple[str, str]] = frozenset()


class _Commands:
    """One connection's side of the protocol (a :class:`~rtserver.delivery.SessionHandler`):
    the greeting and resend, then the client commands: parse, validate, answer in the
    envelope."""

    # Slots, and the shared empty frozenset until a first subscribe: one of these per
    # idle connection is part of what an idle connection costs.
    __slots__ = ("_app_id", "_clock", "_delivery", "_session", "_subscriptions")

    def __init__(self, delivery: Delivery, session: Session, app_id: str) -> None:
        self._delivery = delivery
        self._clock = delivery.core.clock
        self._session = session
        self._app_id = app_id
        #: (chain_type, normal-form address) this connection subscribed to.
        self._subscriptions = _NO_SUBSCRIPTIONS

    async def opened(self, session: Session) -> None:
        """``connected`` (with what this connect recovers), then the resend; live messages
        committed meanwhile follow it, once each."""
        delivery = self._delivery
        resend = await delivery.load_resend(session)
        session.send(
            self._envelope(
                str(uuid.uuid4()),
                "connected",
                data={
                    "clientId": session.conn_id,
                    "appId": self._app_id,
                    # Extensions (docs/delivery.md): what this connect recovers.
                    "resendDuration": session.window_ms // 1000,
                    "resendCount": len(resend.entries),
                    "pendingNotResent": resend.not_resent,
                },
            )
        )
        await delivery.finish_resend(session, resend)

    def closed(self) -> None:
        self._delivery.core.watched.drop_connection(self._session.conn_id)

    def _envelope(
        self, message_id: str, type_: str, code: int = 0, data: Any = None, msg: str = "success"
    ) -> Frame:
        """:func:`envelope` stamped with the server's clock."""
        return envelope(self._clock, message_id, type_, code, data, msg)

    async def received(self, raw: str | bytes) -> Frame | None:
        """One inbound frame → its reply (None: answered later); never raises for bad input."""
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                return self._envelope("", "error", 400, None, "message is not valid UTF-8")
        try:
            message = json.loads(raw)
        except json.JSONDecodeError as exc:
            return self._envelope(
                "",
                "error",
                400,
                None,
                f"invalid JSON: {exc.msg} at position {exc.pos}",
            )
        except RecursionError:
            return self._envelope("", "error", 400, None, "invalid JSON: nested too deeply")
        if not isinstance(message, dict):
            return self._envelope("", "error", 400, None, "message must be a JSON object")
        type_ = message.get("type")
        message_id = message.get("id")
        echo_type = type_ if isinstance(type_, str) and len(type_) <= MAX_ID_LENGTH else "error"
        if not isinstance(message_id, str) or not message_id or len(message_id) > MAX_ID_LENGTH:
            return self._envelope(
                "",
                echo_type,
                400,
                None,
                f"id required (a string of 1 to {MAX_ID_LENGTH} characters)",
            )
        if not isinstance(type_, str) or not type_:
            return self._envelope(message_id, "error", 400, None, "type required")
        data = message.get("data")
        if not isinstance(data, dict):
            data = {}
        handler = _HANDLERS.get(type_)
        if handler is None:
            return self._envelope(
                message_id, echo_type, 400, None, f"unknown message type: {echo_type}"
            )
        try:
            return await handler(self, message_id, data)
        except Exception:
            log.exception("command %s failed", type_)
            return self._envelope(message_id, type_, 500, None, "internal error")

    async def ping(self, message_id: str, data: dict[str, Any]) -> Frame:
        return self._envelope(message_id, "pong")

    async def subscribe(self, message_id: str, data: dict[str, Any]) -> Frame:
        address, chain_type = data.get("address"), data.get("chain_type")
        if not _text(address) or not _text(chain_type):
            return self._envelope(
                message_id, "subscribe", 400, None, "address and chain_type required"
            )
        if len(address) > MAX_ADDRESS_LENGTH or len(chain_type) > MAX_ID_LENGTH:
            return self._envelope(
                message_id, "subscribe", 400, None, "address or chain_type too long"
            )
        chain_type = chain_type.strip().lower()
        key = (chain_type, normalize_address(chain_type, address))
        if key not in self._subscriptions and len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            return self._envelope(
                message_id,
                "subscribe",
                400,
                None,
                f"too many subscriptions on this connection (at most {MAX_SUBSCRIPTIONS})",
            )
        self._delivery.core.watched.subscribe(self._session.conn_id, chain_type, address)
        self._subscriptions = self._subscriptions | {key}
        return self._envelope(
            message_id,
            "subscribe",
            data={"API Key": self._app_id, "address": address, "chain_type": chain_type},
        )

    async def unsubscribe(self, message_id: str, data: dict[str, Any]) -> Frame:
        address, chain_type = data.get("address"), data.get("chain_type")
        if not _text(address):
            return self._envelope(message_id, "unsubscribe", 400, None, "address required")
        chain = chain_type.strip().lower() if _text(chain_type) else None
        self._delivery.core.watched.unsubscribe(self._session.conn_id, address, chain)
        self._subscriptions = frozenset(
            (c, a)
            for c, a in self._subscriptions
            if not ((chain is None or c == chain) and a == normalize_address(c, address))
        )
        return self._envelope(
            message_id, "unsubscribe", data={"address": address, "chainType": chain}
        )

    async def get_tx_hash(self, message_id: str, data: dict[str, Any]) -> Frame:
        core = self._delivery.core
        key: tuple[str, int, str] | None = None
        wanted = data.get("messageId")
        if _text(wanted) and len(wanted) <= MAX_ID_LENGTH:
            entry = await core.store.read(outbox.get_entry, self._app_id, wanted)
            if entry is not None:
                key = entry.tx_key
        if key is None:
            chain_type, chain_id, tx_hash = (
                data.get("chain_type"),
                data.get("chain_id"),
                data.get("txHash"),
            )
            if not (_text(chain_type) and _json_integer(chain_id) and _text(tx_hash)):
                if _text(wanted):
                    return self._envelope(
                        message_id, "getTxHash", 404, None, "transaction not found"
                    )
                return self._envelope(
                    message_id,
                    "getTxHash",
                    400,
                    None,
                    "chain_type, chain_id, txHash required",
                )
            try:
                number = get_chain_id(data)
                chain = chain_type_param(data, chain_id=number, core=core)
                assert chain is not None and number is not None
            except InvalidInputError as exc:
                return self._envelope(message_id, "getTxHash", 400, None, str(exc))
            try:
                key = (chain, number, tx_hash_param(chain, tx_hash, "txHash"))
            except InvalidInputError:  # no transaction has a malformed hash
                return self._envelope(message_id, "getTxHash", 404, None, "transaction not found")
        record = await core.store.read(visible_record, viewer(core, self._app_id), *key)
        if record is None:
            return self._envelope(message_id, "getTxHash", 404, None, "transaction not found")
        return self._envelope(message_id, "getTxHash", data=v2_detail(record))

    async def transaction_ack(self, message_id: str, data: dict[str, Any]) -> Frame | None:
        wanted = data.get("messageId")
        chain_type, chain_id, tx_hash = (
            data.get("chain_type"),
            data.get("chain_id"),
            data.get("txHash"),
        )
        if _text(wanted) and len(wanted) <= MAX_ID_LENGTH:
            request = AckRequest(message_id=wanted)
        elif not (_text(chain_type) and _text(tx_hash)):
            return self._envelope(
                message_id,
                "transactionACK",
                400,
                None,
                "chain_type and messageId/txHash required",
            )
        elif chain_id is not None and not _json_integer(chain_id):
            return self._envelope(
                message_id, "transactionACK", 400, None, "chain_id must be an integer"
            )
        else:
            try:  # in range: a huge one would fail the whole ACK batch it is in
                get_chain_id(data, required=False)
            except InvalidInputError as exc:
                return self._envelope(message_id, "transactionACK", 400, None, str(exc))
            chain = chain_type.strip().lower()
            request = AckRequest(
                chain_type=chain, chain_id=chain_id, tx_hash=_tx_hash(chain, tx_hash)
            )
        # Answered once committed (by the delivery core's ACK service, which commits the
        # ACKs of every connection together); the reader goes on meanwhile.
        given = tx_hash if _text(tx_hash) else None
        reply = _AckReply(self, message_id, request.message_id, given)
        await self._delivery.ack_later(self._app_id, request, reply)
        return None


class _AckReply:
    """The reply to one ``transactionACK``, sent once its ACK is committed.

    An object, not a closure: a closure over these fields is six objects for the cyclic
    garbage collector to walk, and a reconnect storm keeps tens of thousands of ACKs in
    flight (the largest share of what its collections walked).
    """

    __slots__ = ("_commands", "_given", "_id", "_wanted")

    def __init__(
        self, commands: _Commands, message_id: str, wanted: str | None, given: str | None
    ) -> None:
        self._commands = commands
        self._id = message_id
        self._wanted = wanted
        self._given = given

    def __call__(self, result: AckResult | None) -> None:
        commands = self._commands
        if result is None:
            frame = commands._envelope(self._id, "transactionACK", 500, None, "internal error")
        else:
            found = result.entries[0][1] if result.entries else None
            data: dict[str, Any] = {"txHash": self._given or found}
            if self._wanted is not None:
                data["messageId"] = self._wanted
            frame = commands._envelope(self._id, "transactionACK", data=data)
        commands._session.send(frame)


def _tx_hash(chain_type: str, tx_hash: str) -> str:
    tx_hash = tx_hash.strip()
    return tx_hash.lower() if chain_family(chain_type) == "evm" else tx_hash


def _text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _json_integer(value: Any) -> TypeGuard[int]:
    """A JSON integer: the commands' numbers are never digit strings (unlike the HTTP
    readers'), and ``true`` is no number. The range is the field readers' to check."""
    return isinstance(value, int) and not isinstance(value, bool)


_HANDLERS = {
    "ping": _Commands.ping,
    "subscribe": _Commands.subscribe,
    "unsubscribe": _Commands.unsubscribe,
    "getTxHash": _Commands.get_tx_hash,
    "transactionACK": _Commands.transaction_ack,
}

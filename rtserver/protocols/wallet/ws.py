"""The wallet socket ``GET /ws?blockchainId=`` (../shared/spec/wallet-realtime-ws.txt).

The upgrade is always accepted; the client then sends ``{"type": "auth", "token",
"clientName"}``. A JWT verified with ``[jwt]`` (``rtserver.user_auth``) whose user has a
Safe on the chosen chain (``blockchainId``, else ``wallet.default_chain_id``) gets the
initial sequence, in this order: ``auth_success``, ``balance_data``,
``transaction_data``, ``chainid_data``, ``recovery_data``, ``user_data``; then the
user's live events of that chain. Any failure (no, bad or expired token, unknown chain,
no Safe there) gets ``auth_error`` and a 1008 close; so does a socket that sends no auth
message within ``wallet.auth_timeout``. Before auth only ``auth`` is accepted (anything
else gets an ``error``); after it, ``get_balance`` and ``get_transactions``.

Guarantees: the initial sequence and the live events neither miss nor repeat an event:
the socket subscribes to the user's topic (live events held) before it reads the state,
the state is read with the topic's last offset in one transaction, and the held events
up to that offset are dropped (:meth:`Hub.finish_recovery` with ``through``). Bad input
changes nothing and is answered; a frame over ``websocket.max_frame_bytes`` closes
with 1009 (the runtime).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from datetime import UTC, date, datetime, timedelta
from typing import Any

import trio

from rtserver.core import Core
from rtserver.delivery import Delivery, Frame, Session, run_session
from rtserver.exceptions import AuthenticationError, ChainError, TokenExpiredError
from rtserver.http import WebSocketConnection, WebSocketRoute
from rtserver.protocols.wallet import _wire
from rtserver.protocols.wallet._wallet import Wallet, wallet_topic
from rtserver.store.users import UserRef
from rtserver.store.wallets import Safe
from rtserver.user_auth import JwtVerifier

log = logging.getLogger("rtserver.wallet")

#: Longest ``requestId`` echoed, and ``clientName`` kept.
_MAX_LABEL = 256


def error_shape(status: int, message: str, request_id: str) -> Any:
    """Rejected upgrades and the HTTP fallback's errors (a NestJS-style body, the shape
    of the backend the document describes)."""
    return {"statusCode": status, "message": message}


class WalletSocket:
    """The wallet socket's handshake and per-connection protocol."""

    def __init__(
        self, core: Core, delivery: Delivery, wallet: Wallet, verifier: JwtVerifier
    ) -> None:
        self._core = core
        self._delivery = delivery
        self._wallet = wallet
        self._verifier = verifier
        #: The sockets not authenticated yet with their deadlines, oldest first (the
        #: timeout is the same for all): one service refuses the late ones
        #: (:meth:`run_auth_timeouts`) instead of a task and a nursery per socket.
        self._awaiting_auth: deque[tuple[float, _Commands]] = deque()
        #: While the service waits for a socket (none is awaiting auth): its wake-up.
        self._auth_awaited: trio.Event | None = None

    def route(self) -> WebSocketRoute:
        return WebSocketRoute(_wire.WS_PATH, self.serve, error_shape)

    def chain_of(self, given: str) -> int | None:
        """The chain a ``blockchainId`` names (empty: the default); None if unknown."""
        if not given:
            return self._wallet.default_chain_id or None
        if not given.isdigit() or len(given) > 18:
            return None
        chain_id = int(given)
        return chain_id if chain_id in self._wallet.chains else None

    def unsupported(self, given: str) -> str:
        ids = ", ".join(str(c) for c in self._wallet.chains) or "none"
        return f"Unsupported blockchainId {given[:40]!r}; supported: {ids}"

    async def authenticate(self, token: object) -> UserRef:
        """The user of a JWT; AuthenticationError with the document's message."""
        if not isinstance(token, str) or not token:
            raise AuthenticationError(_wire.TOKEN_REQUIRED)
        try:
            user = self._verifier.verify(token)
        except TokenExpiredError:
            raise AuthenticationError(_wire.EXPIRED) from None
        except AuthenticationError as exc:
            log.info("wallet auth refused: %s", exc)
            raise AuthenticationError(_wire.INVALID_TOKEN) from None
        if self._core.is_revoked(user.app_id):
            raise AuthenticationError(_wire.INVALID_TOKEN)
        return user

    async def serve(self, connection: WebSocketConnection) -> None:
        request = connection.request
        assert request is not None
        if self._core.connections.closing.is_set():
            await connection.reject(503, "server shutting down")
            return
        given = request.arg("blockchainId")
        del request  # this frame lives as long as the connection
        chain_id = self.chain_of(given)
        hub = self._delivery.hub
        session = hub.attach(
            self._core.connections.new_id("wa"),
            app_id=self._core.config.jwt.app_id or None,
            format=_wire.wire_format(chain_id or 0),
        )
        await connection.accept()
        commands = _Commands(self, chain_id, given)
        deadline = self._core.clock.monotonic() + self._wallet.config.auth_timeout
        self._awaiting_auth.append((deadline, commands))
        if self._auth_awaited is not None:
            self._auth_awaited.set()
        await run_session(self._core, hub, "wallet", connection, session, commands)

    async def run_auth_timeouts(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: close with 1008 (after an ``auth_error``) every socket that sent no
        valid auth message within ``wallet.auth_timeout`` of its opening."""
        awaiting = self._awaiting_auth
        task_status.started()
        while True:
            if not awaiting:
                self._auth_awaited = trio.Event()
                await self._auth_awaited.wait()
                self._auth_awaited = None
                continue
            deadline, commands = awaiting[0]
            left = deadline - self._core.clock.monotonic()
            if left > 0:
                await trio.sleep(left)
                continue
            awaiting.popleft()
            commands.auth_timed_out()


class _Commands:
    """One connection's messages (see the module docstring)."""

    def __init__(self, socket: WalletSocket, chain_id: int | None, given: str) -> None:
        self._socket = socket
        self._wallet = socket._wallet
        self._clock = socket._core.clock
        self._chain_id = chain_id
        self._given_chain = given
        self._session: Session | None = None
        self._user: UserRef | None = None
        self._safe: Safe | None = None
        self.client_name = ""
        self.authenticated = False

    # -- SessionHandler -----------------------------------------------------------------

    async def opened(self, session: Session) -> None:
        self._session = session

    def closed(self) -> None:
        """Nothing to release: the runtime detaches the session from every topic."""

    async def received(self, message: str | bytes) -> Frame | None:
        """Answer one message. A fault of ours ends the socket with the document's 1011
        (the session runtime's close for a protocol that failed)."""
        now_ms = self._clock.time_ms()
        if isinstance(message, bytes):
            return Frame(_wire.error("Binary messages are not supported", "message", now_ms))
        try:
            command = json.loads(message)
        except ValueError:
            return Frame(_wire.error("Invalid JSON", "message", now_ms))
        kind = command.get("type") if isinstance(command, dict) else None
        if not isinstance(kind, str):
            return Frame(_wire.error('Invalid message: expected {"type": ...}', "message", now_ms))
        if kind == "auth":
            if self.authenticated:
                return Frame(_wire.error("Already authenticated", "auth", now_ms))
            await self._auth(command)
            return None
        if not self.authenticated:
            return Frame(
                _wire.error("Not authenticated: send an auth message first", "auth", now_ms)
            )
        if kind == "get_balance":
            return Frame(await self._balance_message(_request_id(command)))
        if kind == "get_transactions":
            return Frame(await self._transactions_message(command))
        shown = kind if len(kind) <= 64 else kind[:64] + "…"
        return Frame(_wire.error(f"Unknown message type: {shown}", "message", now_ms))

    # -- auth and the initial sequence ---------------------------------------------------

    def auth_timed_out(self) -> None:
        """The auth timeout passed: close with 1008 unless authenticated (or closed)."""
        self._refuse(_wire.AUTH_TIMEOUT)

    def _refuse(self, text: str) -> None:
        session = self._session
        if session is None or session.closed or self.authenticated:
            return
        session.send(Frame(_wire.auth_error(text, self._clock.time_ms())))
        session.fail(_wire.CLOSE_POLICY, text[:120], flush=True)

    async def _auth(self, command: dict[str, Any]) -> None:
        session = self._session
        assert session is not None
        try:
            user = await self._socket.authenticate(command.get("token"))
        except AuthenticationError as exc:
            self._refuse(str(exc))
            return
        chain_id = self._chain_id
        if chain_id is None:
            self._refuse(self._socket.unsupported(self._given_chain))
            return
        name = command.get("clientName")
        self.client_name = name[:_MAX_LABEL] if isinstance(name, str) else ""
        wallet = self._wallet
        hub = self._socket._delivery.hub
        topic = wallet_topic(user)
        # Subscribed before the state is read: live events wait until it is sent.
        hub.subscribe(session, topic, recovering=True)
        snapshot = await wallet.snapshot(user, chain_id, wallet.config.transactions_default)
        safe = None if snapshot.user is None else snapshot.user.safe_on(chain_id)
        if snapshot.user is None or safe is None:
            hub.unsubscribe(session, topic)
            self._refuse(f"No Safe wallet found for this user on chain {chain_id}")
            return
        self._user, self._safe = user, safe
        hub.identify(session, user.key)  # the user's sockets, for closes by user
        self.authenticated = True
        log.info(
            "wallet socket %s: user %s on chain %d (%s)",
            session.conn_id,
            user.key,
            chain_id,
            self.client_name or "no clientName",
        )
        now_ms = self._clock.time_ms()
        data = {"safeAddress": _wire.checksum(safe.address), "message": _wire.CONNECTED}
        session.send(Frame(_wire.message("auth_success", data, now_ms)))
        session.send(Frame(await self._balance_message(None)))
        now_ms = self._clock.time_ms()
        items = wallet.items(snapshot.records, safe.address, wallet.config.transactions_default)
        session.send(
            Frame(_wire.message("transaction_data", _wire.transaction_data(safe, items), now_ms))
        )
        chains = _wire.chainid_data(wallet.default_chain_id, list(wallet.chains))
        session.send(Frame(_wire.message("chainid_data", chains, now_ms)))
        session.send(
            Frame(_wire.message("recovery_data", _wire.recovery_data(safe, now_ms), now_ms))
        )
        session.send(Frame(_wire.message("user_data", _wire.user_data(snapshot.user), now_ms)))
        hub.finish_recovery(session, topic, [], through=snapshot.through)

    # -- requests ----------------------------------------------------------------------

    async def _balance_message(self, request_id: Any) -> str:
        safe = self._safe
        assert safe is not None
        try:
            balances = await self._wallet.balances.current(safe.chain_id, safe.address)
        except ChainError as exc:
            log.warning("balances of %s on chain %d: %s", safe.address, safe.chain_id, exc)
            return _wire.error("Failed to retrieve balance", "balance", self._clock.time_ms())
        data = _wire.balance_data(safe, self._wallet.assets(safe.chain_id), balances, request_id)
        return _wire.message("balance_data", data, self._clock.time_ms())

    async def _transactions_message(self, command: dict[str, Any]) -> str:
        safe = self._safe
        assert safe is not None
        try:
            limit, since, until = transaction_filter(
                command.get("params"),
                self._wallet.config.transactions_default,
                self._wallet.config.transactions_max,
            )
        except ValueError as exc:
            return _wire.error(str(exc), "transactions", self._clock.time_ms())
        items = await self._wallet.transactions(safe, limit, since, until)
        data = _wire.transaction_data(safe, items, _request_id(command))
        return _wire.message("transaction_data", data, self._clock.time_ms())


def _request_id(command: dict[str, Any]) -> Any:
    """The ``requestId`` to echo: a string (cut to 256 characters) or a number."""
    value = command.get("requestId")
    if isinstance(value, str):
        return value[:_MAX_LABEL]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def transaction_filter(
    params: object, default: int, maximum: int
) -> tuple[int, int | None, int | None]:
    """``limit`` and the ``startDate``/``endDate`` range (Unix seconds, inclusive) of
    ``get_transactions``' params; ValueError saying what is wrong."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError("params: an object {limit, startDate, endDate}")
    limit = params.get("limit", default)
    if isinstance(limit, str) and limit.isdigit():
        limit = int(limit)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise ValueError(f"params.limit: a number from 1 to {maximum}")
    since = _date(params.get("startDate"), "startDate", end=False)
    until = _date(params.get("endDate"), "endDate", end=True)
    if since is not None and until is not None and since > until:
        raise ValueError("params.startDate: after endDate")
    return limit, since, until


def _date(value: object, name: str, *, end: bool) -> int | None:
    """An ISO date or date-time as Unix seconds; a bare date's end is its last second."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(f"params.{name}: an ISO 8601 date, like 2025-01-31")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if end:
                moment += timedelta(days=1, seconds=-1)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"params.{name}: an ISO 8601 date, like 2025-01-31") from None
    return int(moment.timestamp())

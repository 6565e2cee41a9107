"""The channel socket ``GET /api/v1/ws?token=`` (../shared/spec/channel-realtime-ws.txt).

Handshake: the ``Origin`` must be allowed (``channels.allowed_origins``; empty: any) and
the token current (an access token rtserver issued, or a JWT when ``channels.jwt``);
otherwise the upgrade is refused with 403/401 and the document's JSON error. Then the
user's older sockets are closed (4000, "replaced by a newer connection") and this one is
subscribed to ``settings``. Commands: ``subscribe``, ``unsubscribe``, ``ping``, each
answered (``subscribed``, ``unsubscribed``, ``pong``, or ``error``; the extensions of
docs/channels.md). Catch-up: ``subscribe`` may carry ``"since": {"epoch", "offset"}``,
and the handshake ``settings_since=<epoch>:<offset>``; the ``subscribed`` answer says
whether recovery was complete, then the missed events follow, then live ones.
"""

from __future__ import annotations

import json
from functools import partial

from rtserver.core import Core
from rtserver.delivery import Delivery, Frame, Session, StreamPosition, run_session
from rtserver.exceptions import AuthenticationError, NotFoundError
from rtserver.http import WebSocketConnection, WebSocketRoute
from rtserver.protocols.channels._channels import Channels
from rtserver.protocols.channels._wire import (
    CLOSE_REPLACED,
    FORCE_LOGOUT_CHANNEL,
    FORMAT,
    INVALID_TOKEN,
    SETTINGS_CHANNEL,
    WS_PATH,
    error,
    error_shape,
    reply,
)
from rtserver.store import apps, users
from rtserver.store.users import ACCESS_TOKEN_PREFIX, UserRef, validate_user_id
from rtserver.user_auth import MAX_TOKEN_LENGTH, JwtVerifier

#: Longest epoch accepted in a position (ours are 8 hex digits).
_MAX_EPOCH = 64


def parse_position(value: object) -> StreamPosition:
    """A client's ``{"epoch": str, "offset": int ≥ 0}``; ValueError saying what is wrong."""
    if not isinstance(value, dict):
        raise ValueError('since: an object {"epoch": "...", "offset": N}')
    epoch, offset = value.get("epoch", ""), value.get("offset")
    if not isinstance(epoch, str) or len(epoch) > _MAX_EPOCH:
        raise ValueError("since.epoch: a string")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**63:
        raise ValueError("since.offset: an integer ≥ 0")
    return StreamPosition(epoch, offset)


def _position_arg(text: str) -> StreamPosition:
    epoch, colon, offset = text.rpartition(":")
    if not colon or not offset.isdigit():
        raise ValueError("settings_since: <epoch>:<offset>")
    return parse_position({"epoch": epoch, "offset": int(offset)})


class ChannelSocket:
    """The handshake and the per-connection commands of the channel socket."""

    def __init__(
        self, core: Core, delivery: Delivery, channels: Channels, verifier: JwtVerifier
    ) -> None:
        self._core = core
        self._delivery = delivery
        self._channels = channels
        self._verifier = verifier

    def route(self) -> WebSocketRoute:
        return WebSocketRoute(WS_PATH, self.serve, error_shape)

    def debug_route(self) -> WebSocketRoute:
        """``/api/v1/ws/test?app_id=&user_id=``: a socket for any user, no token (debug)."""
        return WebSocketRoute(WS_PATH + "/test", self.serve_test_user, error_shape)

    async def authenticate(self, token: str) -> UserRef | None:
        """The user of a current token, or None (missing, unknown, expired, revoked)."""
        cfg = self._channels.config
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        if token.startswith(ACCESS_TOKEN_PREFIX):
            if not cfg.access_tokens:
                return None
            now = self._core.clock.time()
            return await self._core.store.read(partial(users.token_user, now=now), token)
        if not cfg.jwt:
            return None
        try:
            user = self._verifier.verify(token)
        except AuthenticationError:
            return None
        return None if self._core.is_revoked(user.app_id) else user

    async def serve(self, connection: WebSocketConnection) -> None:
        request = connection.request
        assert request is not None
        allowed = self._channels.config.allowed_origins
        if allowed and request.header("origin") not in allowed:
            await connection.reject(403, "Origin not allowed")
            return
        token = request.arg("token")
        # This frame lives as long as the connection: it keeps no part of the request.
        del request
        user = await self.authenticate(token)
        del token
        if user is None:
            await connection.reject(401, INVALID_TOKEN)
            return
        await self._run(connection, user)

    async def serve_test_user(self, connection: WebSocketConnection) -> None:
        request = connection.request
        assert request is not None
        try:
            user_id = validate_user_id(request.arg("user_id"))
        except Exception as exc:
            await connection.reject(400, str(exc))
            return
        app_id = request.arg("app_id")
        del request  # this frame lives as long as the connection
        try:
            app = await self._core.store.read(apps.get_app, app_id)
        except NotFoundError:
            app = None
        if app is None or not app.active:
            await connection.reject(404, f"no active app {app_id!r}")
            return
        await self._run(connection, UserRef(app_id, user_id))

    async def _run(self, connection: WebSocketConnection, user: UserRef) -> None:
        request = connection.request
        assert request is not None
        since: StreamPosition | None = None
        settings_since = request.arg("settings_since")
        del request  # this frame lives as long as the connection
        if settings_since:
            try:
                since = _position_arg(settings_since)
            except ValueError as exc:
                await connection.reject(400, str(exc))
                return
        del settings_since
        if self._core.connections.closing.is_set():
            await connection.reject(503, "server shutting down")
            return
        hub = self._delivery.hub
        # One socket per user: the older ones close, and this one takes their place in
        # the same step (no await between), so two racing connects leave one.
        hub.close_user(user.key, CLOSE_REPLACED, "replaced by a newer connection")
        session = hub.attach(
            self._core.connections.new_id("ch"), user_id=user.key, app_id=user.app_id, format=FORMAT
        )
        settings = self._channels.topic(user, SETTINGS_CHANNEL)
        hub.subscribe(session, settings, recovering=since is not None)
        # A forced logout must reach the socket whether or not the client subscribed.
        hub.subscribe(session, self._channels.topic(user, FORCE_LOGOUT_CHANNEL))
        await connection.accept()
        commands = _Commands(self._delivery, self._channels, user, since)
        await run_session(self._core, hub, "channels", connection, session, commands)


class _Commands:
    """One connection's commands (see the module docstring)."""

    def __init__(
        self,
        delivery: Delivery,
        channels: Channels,
        user: UserRef,
        settings_since: StreamPosition | None,
    ) -> None:
        self._delivery = delivery
        self._channels = channels
        self._user = user
        self._settings_since = settings_since
        self._session: Session | None = None

    async def opened(self, session: Session) -> None:
        self._session = session
        if self._settings_since is not None:
            await self._recover(SETTINGS_CHANNEL, self._settings_since)

    async def received(self, message: str | bytes) -> Frame | None:
        if isinstance(message, bytes):
            return Frame(error("binary messages are not accepted; send JSON text"))
        try:
            command = json.loads(message)
        except ValueError:
            return Frame(error("malformed JSON"))
        if not isinstance(command, dict):
            return Frame(error('expected a JSON object {"event": ...}'))
        event = command.get("event")
        if event == "ping":
            return Frame(reply("pong", None, {}))
        if event not in ("subscribe", "unsubscribe"):
            name = event if isinstance(event, str) and len(event) <= 64 else "?"
            return Frame(error(f"unknown event {name!r}: use subscribe, unsubscribe or ping"))
        channel = command.get("channel")
        if not isinstance(channel, str) or not self._channels.is_channel(channel):
            shown = channel if isinstance(channel, str) and len(channel) <= 100 else None
            return Frame(error(f"unknown channel {shown!r}", shown, "unknown_channel"))
        session = self._session
        assert session is not None
        hub = self._delivery.hub
        topic = self._channels.topic(self._user, channel)
        if event == "unsubscribe":
            hub.unsubscribe(session, topic)
            return Frame(reply("unsubscribed", channel, {}))
        since: StreamPosition | None = None
        if "since" in command:
            try:
                since = parse_position(command["since"])
            except ValueError as exc:
                return Frame(error(str(exc), channel))
        if topic in session.topics:  # already subscribed: nothing to recover or change
            return Frame(reply("subscribed", channel, {}))
        if since is None:
            hub.subscribe(session, topic)
            return Frame(reply("subscribed", channel, {}))
        hub.subscribe(session, topic, recovering=True)
        await self._recover(channel, since)
        return None

    async def _recover(self, channel: str, since: StreamPosition) -> None:
        """Answer ``subscribed`` with the recovery's outcome, then queue what was missed
        and the live events held meanwhile (the topic is subscribed, recovering)."""
        session = self._session
        assert session is not None
        topic = self._channels.topic(self._user, channel)
        recovery = await self._delivery.streams.recover(topic, since)
        data = {
            "recovered": recovery.complete,
            "epoch": recovery.position.epoch,
            "offset": recovery.position.offset,
            "missed": len(recovery.messages),
        }
        session.send(Frame(reply("subscribed", channel, data)))
        self._delivery.hub.finish_recovery(session, topic, recovery.messages)

    def closed(self) -> None:
        """Nothing to release: the runtime detaches the session from every topic."""

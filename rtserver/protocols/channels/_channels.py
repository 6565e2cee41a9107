"""Channels of an app: their topics, durable publishing, forced logout, token revocation.

A per-user channel of a user is the history topic ``user:<app_id>:<user_id>/<channel>``;
a broadcast channel of an app is ``channel:<app_id>/<name>``: apps never share a topic.
Every publish is one write transaction that appends the event to each target's topic
(rendered once, with its offset) and is fanned out after the commit.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

from rtserver.config import ChannelsConfig
from rtserver.core import Core
from rtserver.delivery import Delivery, StreamBatch, StreamPosition, channel_topic, user_topic
from rtserver.exceptions import InvalidInputError
from rtserver.protocols.channels._wire import (
    CLOSE_FORCED_LOGOUT,
    FORCE_LOGOUT_CHANNEL,
    FORCE_LOGOUT_EVENT,
    FORMAT,
    event_frame,
    force_logout_data,
)
from rtserver.store import users
from rtserver.store.users import UserRef

log = logging.getLogger("rtserver.channels")

#: Longest event name accepted.
_MAX_EVENT = 200


@dataclass(frozen=True)
class Published:
    """Where one publish landed: the user (None for a broadcast) and the position."""

    user_id: str | None
    position: StreamPosition

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "offset": self.position.offset,
            "epoch": self.position.epoch,
        }


class Channels:
    """The channel protocol's state on the core: which channels exist, and publishing."""

    def __init__(self, core: Core, delivery: Delivery) -> None:
        self._core = core
        self._delivery = delivery
        self.config: ChannelsConfig = core.config.channels
        self.user_channels = self.config.all_user_channels
        self.broadcast_channels = self.config.all_broadcast_channels
        #: Revocations this process made and published (the CLI watch skips them).
        self._revoked_here: set[tuple[str, int]] = set()

    def is_channel(self, name: str) -> bool:
        return name in self.user_channels or name in self.broadcast_channels

    def topic(self, user: UserRef, channel: str) -> str:
        """The topic a user reads ``channel`` from (its own, or its app's broadcast)."""
        if channel in self.broadcast_channels:
            return channel_topic(f"{user.app_id}/{channel}")
        return user_topic(f"{user.key}/{channel}")

    @staticmethod
    def channel_of(topic: str) -> str:
        """The channel a topic of :meth:`topic` carries."""
        return topic.rpartition("/")[2]

    async def publish(
        self,
        app_id: str,
        channel: str,
        event: str,
        data: Any,
        user_ids: Sequence[str],
    ) -> list[Published]:
        """Publish ``event`` to ``channel``: to each of ``user_ids`` (a per-user channel)
        or to the whole app (a broadcast, no user ids). InvalidInputError, and nothing
        written, for an unknown channel, a bad event or a wrong list of users.

        Publishing to ``mobile.force.logout`` also closes the users' sockets once the
        event is written to them.
        """
        if not isinstance(event, str) or not 0 < len(event) <= _MAX_EVENT:
            raise InvalidInputError(f"event: a string of 1 to {_MAX_EVENT} characters")
        if channel in self.broadcast_channels:
            if user_ids:
                raise InvalidInputError(f"{channel!r} is a broadcast channel: give no user ids")
        elif channel in self.user_channels:
            if not user_ids:
                raise InvalidInputError(f"{channel!r} is a per-user channel: give user ids")
            if len(user_ids) > self.config.max_users_per_publish:
                raise InvalidInputError(
                    f"at most {self.config.max_users_per_publish} users per publish"
                )
        else:
            raise InvalidInputError(f"unknown channel {channel!r}")
        data_json = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        targets = [UserRef(app_id, u) for u in dict.fromkeys(user_ids)]

        def job(conn: sqlite3.Connection, batch: StreamBatch) -> list[Published]:
            if not targets:
                topic = channel_topic(f"{app_id}/{channel}")
                message = batch.append(topic, _render(event, channel, data_json))
                return [Published(None, StreamPosition(message.epoch, message.offset))]
            out = []
            for user in targets:
                message = batch.append(
                    self.topic(user, channel), _render(event, channel, data_json)
                )
                out.append(Published(user.user_id, StreamPosition(message.epoch, message.offset)))
            return out

        published = await self._delivery.streams.write(job)
        if channel == FORCE_LOGOUT_CHANNEL:
            for user in targets:
                self.close_user(user)
        return published

    async def revoke_tokens(self, user: UserRef) -> int:
        """Revoke the user's access tokens, tell its sockets (``mobile.force.logout``)
        and close them; return how many tokens were current."""
        now_ms = self._core.clock.time_ms()
        data_json = json.dumps(force_logout_data(user.user_id), separators=(",", ":"))

        def job(conn: sqlite3.Connection, batch: StreamBatch) -> int:
            revoked = users.revoke_tokens(conn, user.app_id, user.user_id, now_ms=now_ms)
            batch.append(
                self.topic(user, FORCE_LOGOUT_CHANNEL),
                _render(FORCE_LOGOUT_EVENT, FORCE_LOGOUT_CHANNEL, data_json),
            )
            return revoked

        mark = (user.key, now_ms)
        self._revoked_here.add(mark)  # before the commit: the watch may read it at once
        try:
            revoked = await self._delivery.streams.write(job)
        except BaseException:
            self._revoked_here.discard(mark)
            raise
        if revoked == 0:  # nothing revoked: the watch will not see it
            self._revoked_here.discard(mark)
        self.close_user(user)
        return revoked

    def close_user(self, user: UserRef) -> int:
        """Close the user's sockets on this node, after what was already queued to them."""
        return self._delivery.hub.close_user(
            user.key, CLOSE_FORCED_LOGOUT, "forced logout", flush=True
        )

    async def run_revocation_watch(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: apply token revocations made by the CLI (another process): the force
        logout event, and the sockets closed. The admin API applies its own at once."""
        core = self._core
        since = core.clock.time_ms()
        task_status.started()
        while True:
            await trio.sleep(self.config.revocation_poll)
            for user, at in await core.store.read(users.revoked_since, since):
                since = max(since, at)
                if (user.key, at) in self._revoked_here:
                    self._revoked_here.discard((user.key, at))
                    continue
                try:
                    await self.publish(
                        user.app_id,
                        FORCE_LOGOUT_CHANNEL,
                        FORCE_LOGOUT_EVENT,
                        force_logout_data(user.user_id),
                        [user.user_id],
                    )
                except Exception:  # one user's failure must not stop the watch
                    log.exception("could not log out user %s after a revocation", user.key)


def _render(event: str, channel: str, data_json: str) -> Any:
    return lambda at: {FORMAT: event_frame(event, channel, data_json, at)}

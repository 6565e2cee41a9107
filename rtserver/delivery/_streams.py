"""Durable streams for every protocol: retention per topic family, publishing, recovery.

Three retention kinds, chosen by a topic's family (:mod:`rtserver.delivery._topics`):

* **ACK streams** (``app:``): the outbox. A message is pending until the app ACKs it and
  is never deleted unACKed; retried live and resent on reconnect (``_outbox.py``,
  ``_hub.py``). Not written through this module.
* **History streams** (``user:``, ``channel:``): the last ``streams.history_size``
  messages of the topic, each for ``streams.history_ttl`` seconds, so that a client
  that reconnects resumes from its last offset.
* **State topics** (``payment:``): only the latest message, the current state; a late
  subscriber gets it on subscribe.

A message is appended in the same write transaction as the state change it announces
(:meth:`DurableStreams.write`, or :meth:`DurableStreams.batch` inside a match sink's
stage), with the topic's next offset and its epoch (``store/streams.py``), and is
published to the broker after that transaction commits, never before.
"""

from __future__ import annotations

import enum
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import trio

from rtserver.clock import Clock
from rtserver.config import StreamsConfig
from rtserver.delivery._broker import Broker
from rtserver.delivery._topics import APP, CHANNEL, PAYMENT, USER, family
from rtserver.store import Store, streams
from rtserver.store.streams import FrameRender, StreamMessage, StreamPosition

T = TypeVar("T")

log = logging.getLogger("rtserver.delivery")


class RetentionKind(enum.Enum):
    ACK = "ack"
    HISTORY = "history"
    STATE = "state"


#: The retention of each topic family.
RETENTION_KINDS: dict[str, RetentionKind] = {
    APP: RetentionKind.ACK,
    USER: RetentionKind.HISTORY,
    CHANNEL: RetentionKind.HISTORY,
    PAYMENT: RetentionKind.STATE,
}


def retention_kind(topic: str) -> RetentionKind:
    """The retention of ``topic``'s family; ValueError for a string that is no topic."""
    return RETENTION_KINDS[family(topic)]


@dataclass(frozen=True)
class Recovery:
    """What a subscriber missed since its position, and whether that is all of it.

    ``complete`` is False when some of what it missed is no longer retained (its offset
    fell out of the history, or more than ``streams.recovery_max`` messages), or when its
    position belongs to another epoch of the stream (the stream's record was lost): the
    client should then reload its state by other means. ``position`` is the stream's
    last position when it was read (epoch ``""``, offset 0: nothing published yet).
    """

    messages: list[StreamMessage]
    complete: bool
    position: StreamPosition


_EMPTY = StreamPosition("", 0)


class StreamBatch:
    """The messages one write transaction appends; published after it commits."""

    def __init__(self, conn: sqlite3.Connection, config: StreamsConfig, now_ms: int) -> None:
        self._conn = conn
        self._keep = config.history_size
        self._now_ms = now_ms
        self.messages: list[StreamMessage] = []

    def append(self, topic: str, render: FrameRender) -> StreamMessage:
        """Append a message to ``topic`` (a history or state topic) in this transaction.

        ``render`` gets the message's position and returns its frames, one per wire
        format: the publisher renders once per format, the hub sends those bytes as they
        are to every subscriber of that format.
        """
        kind = retention_kind(topic)
        if kind is RetentionKind.ACK:
            raise ValueError(f"{topic!r} is an ACK stream: its messages go through the outbox")
        keep = 1 if kind is RetentionKind.STATE else self._keep
        message = streams.append(self._conn, topic, render, keep_last=keep, now_ms=self._now_ms)
        self.messages.append(message)
        return message


class DurableStreams:
    """History and state topics: append in a transaction, publish after commit, recover."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        clock: Clock,
        config: StreamsConfig,
        backlog: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``backlog``: awaited after each :meth:`write` commits (the hub's
        ``wait_backlog``: a writer is answered once its messages are written)."""
        self._store = store
        self._broker = broker
        self._clock = clock
        self._config = config
        self._backlog = backlog

    def batch(self, conn: sqlite3.Connection) -> StreamBatch:
        """A batch for the write transaction on ``conn`` (writer thread); hand it to
        :meth:`published` after that transaction commits."""
        return StreamBatch(conn, self._config, self._clock.time_ms())

    def published(self, batch: StreamBatch) -> None:
        """After the commit of ``batch``'s transaction (its ``after_commit``): to the broker."""
        if batch.messages:
            self._broker.publish_stream(batch.messages)

    async def write(self, job: Callable[[sqlite3.Connection, StreamBatch], T]) -> T:
        """Run ``job`` as one write transaction; the messages it appends to its batch are
        committed with whatever else it changed, and published after the commit."""
        batch: StreamBatch | None = None

        def run(conn: sqlite3.Connection) -> T:
            nonlocal batch
            batch = self.batch(conn)
            return job(conn, batch)

        def committed(_: object) -> None:
            if batch is not None:
                self.published(batch)

        result = await self._store.write(run, after_commit=committed)
        if self._backlog is not None:
            await self._backlog()
        return result

    async def publish(self, topic: str, render: FrameRender) -> StreamMessage:
        """Append one message to ``topic`` in a transaction of its own; publish it."""
        return await self.write(lambda _conn, batch: batch.append(topic, render))

    async def recover(self, topic: str, since: StreamPosition | None) -> Recovery:
        """What a subscriber at ``since`` missed of ``topic`` (see :class:`Recovery`).

        ``since`` None: a new subscriber, which wants only what comes from now on (a
        state topic still gives it the current state).
        """
        kind = retention_kind(topic)
        if kind is RetentionKind.ACK:
            raise ValueError(f"{topic!r} is an ACK stream: its subscribers get a resend")
        return await self._store.read(
            partial(_recover, kind is RetentionKind.STATE, self._config.recovery_max),
            topic,
            since,
        )

    async def run_compaction(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: delete history messages older than ``streams.history_ttl``."""
        task_status.started()
        cfg = self._config
        prefixes = [f + ":" for f, k in RETENTION_KINDS.items() if k is RetentionKind.HISTORY]
        while True:
            before = self._clock.time_ms() - int(cfg.history_ttl * 1000)
            deleted = 0
            for prefix in prefixes:
                try:
                    deleted += await self._store.write(
                        partial(streams.compact, prefix=prefix, older_than_ms=before)
                    )
                except sqlite3.Error:
                    log.exception("history compaction of %s* failed", prefix)
            if deleted < 10_000:  # a full chunk: more to delete, go on at once
                await trio.sleep(cfg.compact_interval)


def _recover(
    state: bool,
    recovery_max: int,
    conn: sqlite3.Connection,
    topic: str,
    since: StreamPosition | None,
) -> Recovery:
    top = streams.top(conn, topic)
    if top is None:  # nothing ever published: complete unless the client saw something
        return Recovery([], since is None or since.offset == 0, _EMPTY)
    same_life = since is not None and (since.offset == 0 or since.epoch == top.epoch)
    if state:  # the current state, unless the subscriber has it already
        if same_life and since is not None and since.offset >= top.offset:
            return Recovery([], since.offset == top.offset, top)
        return Recovery(streams.messages_after(conn, topic, top.offset - 1, 1), True, top)
    if since is None:
        return Recovery([], True, top)
    if not same_life or since.offset > top.offset:
        # Its offsets count another life of the stream: all that is retained, flagged.
        return Recovery(streams.messages_after(conn, topic, 0, recovery_max), False, top)
    if since.offset == top.offset:
        return Recovery([], True, top)
    messages = streams.messages_after(conn, topic, since.offset, recovery_max)
    complete = (
        bool(messages)
        and messages[0].offset == since.offset + 1
        and messages[-1].offset == top.offset
    )
    return Recovery(messages, complete, top)


__all__ = [
    "RETENTION_KINDS",
    "DurableStreams",
    "Recovery",
    "RetentionKind",
    "StreamBatch",
    "retention_kind",
]

"""Durable streams: per-topic offsets and epochs, the three retention kinds, recovery with a
completeness flag, publishing only after commit, and the hub's per-format fan-out.

A real store on disk; time from the autojump clock where it matters (``clock`` fixture).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from rtserver.clock import Clock
from rtserver.config import StreamsConfig
from rtserver.delivery import (
    DurableStreams,
    Hub,
    InProcessBroker,
    RetentionKind,
    StreamBatch,
    StreamMessage,
    StreamPosition,
    app_topic,
    channel_topic,
    payment_topic,
    retention_kind,
    user_topic,
)
from rtserver.store import open_store

from conftest import make_config


class _Received:
    """A node's receiver: records the stream batches the broker hands it."""

    def __init__(self) -> None:
        self.batches: list[Sequence[StreamMessage]] = []

    def publish_stream(self, messages: Sequence[StreamMessage]) -> None:
        self.batches.append(messages)

    def publish(self, entries: object) -> None:
        raise AssertionError("no outbox entry here")

    def publish_transient(self, conn_id: str, entry: object) -> bool:
        raise AssertionError("no outbox entry here")

    def acked(self, topic: str, message_ids: object) -> None:
        raise AssertionError("no ACK here")


@asynccontextmanager
async def _streams(
    tmp_path: Path, clock: Clock, **config: object
) -> AsyncIterator[tuple[DurableStreams, _Received]]:
    cfg = make_config(tmp_path)
    cfg = cfg.replace(streams=replace(StreamsConfig(), **config))
    broker, received = InProcessBroker(), _Received()
    broker.subscribe(received)  # type: ignore[arg-type]
    async with open_store(cfg) as store:
        yield DurableStreams(store, broker, clock, cfg.streams), received


def _text(n: int) -> object:
    return lambda at: {"fmt": f"{at.offset}:{n}"}


def _offsets(messages: Sequence[StreamMessage]) -> list[int]:
    return [m.offset for m in messages]


async def test_retention_kinds_by_family() -> None:
    assert retention_kind(app_topic("a")) is RetentionKind.ACK
    assert retention_kind(user_topic("u")) is RetentionKind.HISTORY
    assert retention_kind(channel_topic("settings")) is RetentionKind.HISTORY
    assert retention_kind(payment_topic("p")) is RetentionKind.STATE
    with pytest.raises(ValueError):
        retention_kind("nofamily")


async def test_history_offsets_epochs_and_recovery_completeness(
    tmp_path: Path, clock: Clock
) -> None:
    async with _streams(tmp_path, clock, history_size=3) as (streams, received):
        topic = channel_topic("news")
        published = [await streams.publish(topic, _text(n)) for n in range(5)]  # type: ignore[arg-type]
        assert _offsets(published) == [1, 2, 3, 4, 5]
        epoch = published[0].epoch
        assert epoch and {m.epoch for m in published} == {epoch}
        assert published[2].frames == {"fmt": "3:2"}  # the render saw its own offset
        assert [list(b) for b in received.batches] == [[m] for m in published]
        # Another topic counts on its own, in an epoch of its own.
        other = await streams.publish(user_topic("u1"), _text(0))  # type: ignore[arg-type]
        assert other.offset == 1 and other.epoch != epoch

        async def recover(offset: int, at: str = epoch) -> tuple[list[int], bool]:
            got = await streams.recover(topic, StreamPosition(at, offset))
            assert got.position == StreamPosition(epoch, 5)
            return _offsets(got.messages), got.complete

        assert await recover(2) == ([3, 4, 5], True)  # exactly what it missed
        assert await recover(4) == ([5], True)
        assert await recover(5) == ([], True)  # up to date
        assert await recover(1) == ([3, 4, 5], False)  # offset 2 fell out of the history
        assert await recover(0) == ([3, 4, 5], False)  # a fresh client, history trimmed
        assert await recover(9) == ([3, 4, 5], False)  # ahead of the stream: not its life
        assert await recover(2, at="another") == ([3, 4, 5], False)  # another epoch
        fresh = await streams.recover(topic, None)  # no position: from now on only
        assert fresh.messages == [] and fresh.complete
        never = await streams.recover(channel_topic("silent"), StreamPosition("", 0))
        assert never.complete and never.position == StreamPosition("", 0)
        lost = await streams.recover(channel_topic("silent"), StreamPosition("e", 3))
        assert not lost.complete


async def test_recovery_beyond_its_limit_is_incomplete(tmp_path: Path, clock: Clock) -> None:
    async with _streams(tmp_path, clock, recovery_max=2) as (streams, _):
        topic = user_topic("u")
        for n in range(5):
            first = await streams.publish(topic, _text(n))  # type: ignore[arg-type]
        got = await streams.recover(topic, StreamPosition(first.epoch, 0))
        assert _offsets(got.messages) == [1, 2] and not got.complete  # the oldest that fit


async def test_a_state_topic_keeps_only_the_current_state(tmp_path: Path, clock: Clock) -> None:
    async with _streams(tmp_path, clock) as (streams, _):
        topic = payment_topic("p1")
        for n in range(3):
            last = await streams.publish(topic, _text(n))  # type: ignore[arg-type]
        stored = await streams._store.read(
            lambda conn: conn.execute("SELECT COUNT(*) FROM stream_messages").fetchone()[0]
        )
        assert stored == 1
        late = await streams.recover(topic, None)  # a late subscriber gets the state
        assert _offsets(late.messages) == [3] and late.complete
        assert late.messages[0].frames == {"fmt": "3:2"}
        current = await streams.recover(topic, StreamPosition(last.epoch, 3))
        assert current.messages == [] and current.complete
        behind = await streams.recover(topic, StreamPosition(last.epoch, 1))
        assert _offsets(behind.messages) == [3] and behind.complete  # the state is all


async def test_an_ack_stream_is_not_written_as_a_stream(tmp_path: Path, clock: Clock) -> None:
    async with _streams(tmp_path, clock) as (streams, _):
        with pytest.raises(ValueError, match="outbox"):
            await streams.publish(app_topic("a"), _text(0))  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await streams.recover(app_topic("a"), None)


async def test_messages_commit_with_their_state_change_and_publish_after(
    tmp_path: Path, clock: Clock
) -> None:
    async with _streams(tmp_path, clock) as (streams, received):
        await streams._store.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))
        topic = user_topic("u")

        def failing(conn: sqlite3.Connection, batch: StreamBatch) -> None:
            conn.execute("INSERT INTO t VALUES (1)")
            batch.append(topic, lambda at: {"fmt": "lost"})
            raise RuntimeError("the state change fails")

        with pytest.raises(RuntimeError):
            await streams.write(failing)
        assert received.batches == []  # nothing published
        gone = await streams.recover(topic, StreamPosition("", 0))
        assert gone.messages == [] and gone.position.offset == 0  # nor stored, nor counted

        def change(conn: sqlite3.Connection, batch: StreamBatch) -> int:
            conn.execute("INSERT INTO t VALUES (2)")
            batch.append(topic, lambda at: {"fmt": "a"})
            return batch.append(topic, lambda at: {"fmt": "b"}).offset

        assert await streams.write(change) == 2
        assert [_offsets(b) for b in received.batches] == [[1, 2]]  # one batch per commit
        rows = await streams._store.read(lambda conn: conn.execute("SELECT v FROM t").fetchall())
        assert [tuple(row) for row in rows] == [(2,)]


async def test_history_expires_by_age(
    tmp_path: Path, moving_mock_clock: trio.testing.MockClock, clock: Clock
) -> None:
    # Time jumps while nothing runs: the store's threads keep real time (an autojump
    # clock would jump while a thread works).
    async with _streams(tmp_path, clock, history_ttl=60.0) as (streams, _):
        topic = channel_topic("news")
        first = await streams.publish(topic, _text(0))  # type: ignore[arg-type]
        moving_mock_clock.jump(30)
        second = await streams.publish(topic, _text(1))  # type: ignore[arg-type]
        moving_mock_clock.jump(45)  # the first is 75 s old, the second 45 s
        async with trio.open_nursery() as nursery:
            await nursery.start(streams.run_compaction)  # a first pass at once
            with trio.fail_after(10):
                while len((await streams.recover(topic, StreamPosition("", 0))).messages) > 1:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        got = await streams.recover(topic, StreamPosition(first.epoch, 0))
        assert _offsets(got.messages) == [second.offset] and not got.complete
        since_first = await streams.recover(topic, StreamPosition(first.epoch, 1))
        assert since_first.complete  # nothing it missed has expired


def _hub(clock: Clock) -> Hub:
    return Hub(clock=clock, queue_max=100, retry_interval=1.0, retry_max_interval=4.0)


def _message(topic: str, offset: int, **frames: str) -> StreamMessage:
    return StreamMessage(topic, "e", offset, frames, 0)


def _texts(session: object) -> list[str]:
    return [f.text for f in session._queue]  # type: ignore[attr-defined]


async def test_the_hub_sends_each_format_its_frame_built_once(clock: Clock) -> None:
    hub = _hub(clock)
    topic = user_topic("u")
    a1, a2 = (
        hub.attach("a1", topics=(topic,), format="a"),
        hub.attach("a2", topics=(topic,), format="a"),
    )
    b, c = (
        hub.attach("b", topics=(topic,), format="b"),
        hub.attach("c", topics=(topic,), format="c"),
    )
    for s in (a1, a2, b, c):
        hub.finish_resend(s, [])
    hub.publish_stream([_message(topic, 1, a="A1", b="B1"), _message(topic, 1, a="dup")])
    assert _texts(a1) == _texts(a2) == ["A1"] and _texts(b) == ["B1"]
    assert _texts(c) == []  # no frame of its format: nothing
    assert a1._queue[0] is a2._queue[0]  # type: ignore[attr-defined]


async def test_recovery_and_live_messages_meet_without_gap_or_duplicate(clock: Clock) -> None:
    hub = _hub(clock)
    topic = channel_topic("news")
    session = hub.attach("s", format="f")
    hub.finish_resend(session, [])
    hub.subscribe(session, topic, recovering=True)
    # Committed while the recovery was being read: 3 is in both, 4 only live.
    hub.publish_stream([_message(topic, 3, f="3"), _message(topic, 4, f="4")])
    assert _texts(session) == []  # held until the recovery is queued
    queued = hub.finish_recovery(
        session, topic, [_message(topic, 2, f="2"), _message(topic, 3, f="3")]
    )
    assert queued == 3 and _texts(session) == ["2", "3", "4"]
    hub.publish_stream([_message(topic, 4, f="4"), _message(topic, 5, f="5")])
    assert _texts(session) == ["2", "3", "4", "5"]
    hub.unsubscribe(session, topic)
    hub.publish_stream([_message(topic, 6, f="6")])
    assert _texts(session)[-1] == "5"
    assert hub.finish_recovery(session, topic, []) == 0  # it left: nothing
    late = hub.attach("late", topics=(topic,), format="f")
    hub.finish_resend(late, [])
    hub.publish_stream([_message(topic, 7, f="7")])
    assert _texts(late) == ["7"]


async def test_a_state_read_by_the_protocol_drops_the_live_messages_it_covers(
    clock: Clock,
) -> None:
    hub = _hub(clock)
    topic = payment_topic("p")
    session = hub.attach("s", format="f")
    hub.finish_resend(session, [])
    hub.subscribe(session, topic, recovering=True)
    hub.publish_stream([_message(topic, 2, f="settled"), _message(topic, 3, f="expired")])
    # The protocol read the state at offset 2 and sent it in its own words.
    assert hub.finish_recovery(session, topic, [], through=2) == 1
    assert _texts(session) == ["expired"]


async def test_a_session_identified_after_attach_joins_the_user_index(clock: Clock) -> None:
    hub = _hub(clock)
    early, late = hub.attach("a", user_id="app:u"), hub.attach("b")
    hub.identify(late, "app:u")  # the user became known from the first message
    hub.identify(late, "app:other")  # a session has one user: no-op
    assert hub.sessions_of_user("app:u") == [early, late]
    assert hub.close_user("app:u", 4001, "forced logout") == 2
    assert late.closed and late.close_code == 4001
    hub.identify(late, "app:u")  # detached: no-op
    assert hub.sessions_of_user("app:u") == []

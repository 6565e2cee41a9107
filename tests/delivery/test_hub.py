"""The hub in memory: bursts, slow sessions, resend hand-over, ACKs and retries.

Retries, windows and expiries run on the autojump clock: the hub reads the time from the
injected :class:`Clock` (``clock`` fixture), which follows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.lowlevel
import trio.testing

from rtserver.clock import Clock
from rtserver.delivery import (
    TRY_AGAIN_LATER,
    BrokerReceiver,
    Frame,
    Hub,
    InProcessBroker,
    PayloadRenderers,
    Session,
    app_topic,
    channel_topic,
    family,
    payment_topic,
    user_topic,
)
from rtserver.delivery._outbox import OutboxSink, Staged
from rtserver.store.outbox import OutboxEntry
from rtserver.store.streams import StreamMessage

RETRY_INTERVAL = 1.0
RETRY_MAX_INTERVAL = 4.0


def _entry(clock: Clock, n: int, app_id: str = "app", payload: str = "{}") -> OutboxEntry:
    """Entry ``n``, created now (as the outbox sink stamps it)."""
    return OutboxEntry(n, f"m{n}", app_id, "ethereum", 1, f"0x{n}", payload, clock.time_ms())


def _hub(clock: Clock, queue_max: int = 10, inflight_max: int = 1000) -> Hub:
    return Hub(
        clock=clock,
        queue_max=queue_max,
        inflight_max=inflight_max,
        retry_interval=RETRY_INTERVAL,
        retry_max_interval=RETRY_MAX_INTERVAL,
    )


def _attach(hub: Hub, conn_id: str, app_id: str = "app", window_ms: int = 60_000) -> Session:
    """A connection of ``app_id`` as the address-monitoring stream attaches it."""
    return hub.attach(
        conn_id, topics=(app_topic(app_id),), app_id=app_id, window_ms=window_ms, resending=True
    )


def _queued(session: object) -> list[str | None]:
    return [f.message_id for f in session._queue]  # type: ignore[attr-defined]


async def test_a_big_batch_is_not_a_slow_client_but_a_backlog_is(clock: Clock) -> None:
    hub = _hub(clock, queue_max=10)
    session = _attach(hub, "c1")
    hub.finish_resend(session, [])
    hub.publish([_entry(clock, n) for n in range(500)])  # one block with 500 matches
    assert not session.closed and len(_queued(session)) == 500
    hub.publish([_entry(clock, 500)])  # the 500 are still unwritten: the client is behind
    assert session.closed and session.close_code == TRY_AGAIN_LATER
    assert hub.sessions(app_topic("app")) == []


async def test_same_frame_object_to_every_session_and_other_apps_untouched(clock: Clock) -> None:
    hub = _hub(clock)
    a, b = _attach(hub, "a"), _attach(hub, "b")
    other = _attach(hub, "o", "other")
    for s in (a, b, other):
        hub.finish_resend(s, [])
    hub.publish([_entry(clock, 1)])
    assert a._queue[0] is b._queue[0]  # serialised once, shared
    assert not other._queue


async def test_resend_then_live_without_duplicates(clock: Clock) -> None:
    hub = _hub(clock)
    session = _attach(hub, "c")
    hub.publish([_entry(clock, 2), _entry(clock, 3)])  # published while the resend reads the outbox
    assert not session._queue
    hub.finish_resend(session, [_entry(clock, 1), _entry(clock, 2)])  # the read saw 1 and 2
    assert _queued(session) == ["m1", "m2", "m3"]


async def test_ack_stops_retries_on_every_session(
    autojump_clock: trio.testing.MockClock, clock: Clock
) -> None:
    hub = _hub(clock)
    a, b = _attach(hub, "a"), _attach(hub, "b")
    for s in (a, b):
        hub.finish_resend(s, [])
    hub.publish([_entry(clock, 1), _entry(clock, 2)])
    for s in (a, b):
        s._queue.clear()
    hub.acked(app_topic("app"), ["m1"])
    await trio.sleep(RETRY_INTERVAL)
    assert hub.retry_due() == ["m2"]  # once per app, pushed to both sessions
    assert _queued(a) == _queued(b) == ["m2"]


async def test_a_retry_is_due_after_the_retry_interval_then_backs_off(
    autojump_clock: trio.testing.MockClock, clock: Clock
) -> None:
    hub = _hub(clock, queue_max=1000)
    session = _attach(hub, "c")
    hub.finish_resend(session, [])
    hub.publish([_entry(clock, 1)])
    session._queue.clear()
    # Due after 1 s, then 2 s later, then every 4 s (the cap).
    for interval in (1.0, 2.0, 4.0, 4.0):
        await trio.sleep(interval - 0.25)
        assert hub.retry_due() == []
        await trio.sleep(0.25)
        assert hub.retry_due() == ["m1"]
        assert _queued(session) == ["m1"]
        session._queue.clear()


async def test_the_retry_service_pushes_due_messages_again(
    autojump_clock: trio.testing.MockClock, clock: Clock
) -> None:
    hub = _hub(clock, queue_max=1000)
    session = _attach(hub, "c")
    hub.finish_resend(session, [])
    retried: list[list[str]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_retries, retried.append)
        hub.publish([_entry(clock, 1), _entry(clock, 2)])
        await trio.sleep(RETRY_INTERVAL + 0.5)
        assert retried == [["m1", "m2"]]
        hub.acked(app_topic("app"), ["m1"])
        await trio.sleep(2.0)  # the second retry, 2 s after the first: only m2 is unACKed
        assert retried == [["m1", "m2"], ["m2"]]
        nursery.cancel_scope.cancel()
    assert _queued(session) == ["m1", "m2", "m1", "m2", "m2"]


async def test_retry_bookkeeping_is_per_app_and_bounded(clock: Clock) -> None:
    hub = _hub(clock, queue_max=1000, inflight_max=3)
    a, b = _attach(hub, "a"), _attach(hub, "b")
    for s in (a, b):
        hub.finish_resend(s, [])
    hub.publish([_entry(clock, n) for n in range(5)])
    # One entry per message for the app, whatever its number of sessions; the oldest
    # left live retries (they stay pending for the next reconnect).
    assert list(hub._unacked[app_topic("app")]) == ["m2", "m3", "m4"]
    hub.detach(a)
    hub.detach(b)
    assert app_topic("app") not in hub._unacked  # nobody left to retry to


async def test_retries_go_only_where_the_window_covers_the_message(
    autojump_clock: trio.testing.MockClock, clock: Clock
) -> None:
    hub = _hub(clock, queue_max=1000)
    wide, narrow = _attach(hub, "w"), _attach(hub, "n", window_ms=1_000)
    for s in (wide, narrow):
        hub.finish_resend(s, [])
    hub.publish([_entry(clock, 1)])
    for s in (wide, narrow):
        s._queue.clear()
    await trio.sleep(10)  # 10 s old: inside the wide window only
    assert hub.retry_due() == ["m1"]
    assert _queued(wide) == ["m1"] and _queued(narrow) == []


async def test_a_message_older_than_every_window_leaves_the_retries(
    autojump_clock: trio.testing.MockClock, clock: Clock
) -> None:
    hub = _hub(clock, queue_max=1000)
    session = _attach(hub, "c", window_ms=5_000)
    hub.finish_resend(session, [])
    hub.publish([_entry(clock, 1)])
    await trio.sleep(RETRY_INTERVAL)
    assert hub.retry_due() == ["m1"]
    await trio.sleep(4.5)  # due again, but 5.5 s old: outside the 5 s window
    assert hub.retry_due() == []
    assert hub._unacked[app_topic("app")] == {}  # expired: a reconnect resends it from the outbox


# -- topics -----------------------------------------------------------------------------


def test_topic_names_and_families() -> None:
    assert app_topic("a1") == "app:a1" and user_topic("u1") == "user:u1"
    assert payment_topic("tx1") == "payment:tx1" and channel_topic("settings") == "channel:settings"
    assert family(channel_topic("a:b")) == "channel"  # an id may contain ':'
    for not_a_topic in ("a1", "room:1", ""):
        with pytest.raises(ValueError):
            family(not_a_topic)


async def test_a_session_on_two_topics_gets_both_until_it_unsubscribes(clock: Clock) -> None:
    hub = _hub(clock)
    both = hub.attach("c", topics=(app_topic("a"), app_topic("b")), window_ms=60_000)
    only_b = hub.attach("d", topics=(app_topic("b"),), window_ms=60_000)
    for s in (both, only_b):
        hub.finish_resend(s, [])
    hub.publish([_entry(clock, 1, "a"), _entry(clock, 2, "b"), _entry(clock, 3, "c")])
    assert _queued(both) == ["m1", "m2"] and _queued(only_b) == ["m2"]
    hub.unsubscribe(both, app_topic("a"))
    hub.unsubscribe(both, app_topic("a"))  # idempotent
    hub.publish([_entry(clock, 4, "a"), _entry(clock, 5, "b")])
    assert _queued(both) == ["m1", "m2", "m5"]
    assert hub.sessions(app_topic("a")) == [] and hub.sessions(app_topic("b")) == [both, only_b]
    hub.subscribe(both, app_topic("c"))
    hub.subscribe(both, app_topic("c"))  # idempotent: one delivery, not two
    hub.publish([_entry(clock, 6, "c")])
    assert _queued(both) == ["m1", "m2", "m5", "m6"]


async def test_detach_clears_every_index(clock: Clock) -> None:
    hub = _hub(clock)
    session = hub.attach("c", topics=(app_topic("a"), user_topic("u")), user_id="u")
    other = hub.attach("d", topics=(app_topic("a"),), user_id="u")
    hub.finish_resend(session, [])
    hub.publish([_entry(clock, 1, "a")])
    hub.detach(session)
    hub.detach(session)  # idempotent
    assert session.topics == set()
    assert hub.sessions(app_topic("a")) == [other] and hub.sessions(user_topic("u")) == []
    assert hub.sessions_of_user("u") == [other]
    assert not hub.publish_to_connection("c", Frame("x"))
    hub.subscribe(session, app_topic("b"))  # a detached session cannot come back
    assert hub.sessions(app_topic("b")) == []
    hub.detach(other)
    assert hub._by_topic == {} and hub._by_conn == {} and hub._by_user == {}
    assert hub._unacked == {}


async def test_close_user_closes_and_detaches_every_session_of_the_user(clock: Clock) -> None:
    hub = _hub(clock)
    phone = hub.attach("p", topics=(user_topic("u"),), user_id="u")
    laptop = hub.attach("l", topics=(user_topic("u"),), user_id="u")
    stranger = hub.attach("s", topics=(user_topic("v"),), user_id="v")
    closed: list[str] = []
    for s in (phone, laptop, stranger):
        s.on_close = lambda s=s: closed.append(s.conn_id)
    assert hub.sessions_of_user("u") == [phone, laptop]
    assert hub.close_user("u", 4001, "logged out") == 2
    assert closed == ["p", "l"] and (phone.close_code, phone.close_reason) == (4001, "logged out")
    assert hub.sessions_of_user("u") == [] and hub.sessions(user_topic("u")) == []
    assert hub.sessions_of_user("v") == [stranger] and not stranger.closed
    assert hub.close_user("u", 4001, "logged out") == 0


async def test_retries_are_per_topic(autojump_clock: trio.testing.MockClock, clock: Clock) -> None:
    hub = _hub(clock, queue_max=1000)
    a = _attach(hub, "a", "app-a")
    b = _attach(hub, "b", "app-b")
    both = hub.attach("ab", topics=(app_topic("app-a"), app_topic("app-b")), window_ms=60_000)
    for s in (a, b, both):
        hub.finish_resend(s, [])
    hub.publish([_entry(clock, 1, "app-a"), _entry(clock, 2, "app-b")])
    for s in (a, b, both):
        s._queue.clear()
    # An ACK on one topic stops that topic's retries only, even for the same message id.
    hub.acked(app_topic("app-b"), ["m1", "m2"])
    await trio.sleep(RETRY_INTERVAL)
    assert hub.retry_due() == ["m1"]
    assert _queued(a) == ["m1"] and _queued(b) == [] and _queued(both) == ["m1"]
    # The last session of a topic leaving drops its bookkeeping; the others keep theirs.
    hub.unsubscribe(both, app_topic("app-a"))
    assert app_topic("app-a") in hub._unacked
    hub.detach(a)
    assert app_topic("app-a") not in hub._unacked and app_topic("app-b") in hub._unacked


async def test_resent_entries_are_retried_on_their_topic(
    autojump_clock: trio.testing.MockClock, clock: Clock
) -> None:
    hub = _hub(clock, queue_max=1000)
    session = _attach(hub, "c", "app")
    hub.finish_resend(session, [_entry(clock, 1, "app"), _entry(clock, 2, "elsewhere")])
    assert list(hub._unacked) == [app_topic("app")]  # not a topic the session is on
    session._queue.clear()
    await trio.sleep(RETRY_INTERVAL)
    assert hub.retry_due() == ["m1"]


# -- the broker ---------------------------------------------------------------------------


class _Recorder:
    """Records every call it gets, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def publish(self, entries: Sequence[OutboxEntry]) -> None:
        self.calls.append(("publish", entries))

    def publish_stream(self, messages: Sequence[StreamMessage]) -> None:
        self.calls.append(("stream", messages))

    def acked(self, topic: str, message_ids: Sequence[str]) -> None:
        self.calls.append(("acked", topic, list(message_ids)))


class _RecordingReceiver(_Recorder):
    """A node's hub, as the broker sees it."""

    def publish_transient(self, conn_id: str, entry: OutboxEntry) -> bool:
        self.calls.append(("transient", conn_id, entry))
        return True


class _RecordingBroker(_Recorder):
    """A broker that records what is published to it."""

    def publish_transient(self, conn_id: str, entry: OutboxEntry) -> None:
        self.calls.append(("transient", conn_id, entry))

    def subscribe(self, receiver: BrokerReceiver) -> None:
        self.calls.append(("subscribe", receiver))

    def interest(self, topic: str, interested: bool) -> None:
        self.calls.append(("interest", topic, interested))


async def test_the_in_process_broker_forwards_batches_in_order_without_copies(
    clock: Clock,
) -> None:
    broker = InProcessBroker()
    first, second = _RecordingReceiver(), _RecordingReceiver()
    broker.subscribe(first)
    batches = [[_entry(clock, 1), _entry(clock, 2)], [_entry(clock, 3)], [_entry(clock, 4)]]
    broker.publish(batches[0])
    broker.subscribe(second)  # gets what is published from now on
    for batch in batches[1:]:
        broker.publish(batch)
    transient = _entry(clock, 5, app_id="")
    broker.publish_transient("c1", transient)
    broker.acked(app_topic("app"), ["m1"])
    broker.interest(app_topic("app"), True)  # a hint: nothing to do in-process
    assert [c[1] for c in first.calls[:3]] == batches
    assert all(c[1] is b for c, b in zip(first.calls[:3], batches, strict=True))  # not copies
    assert first.calls[3:] == [("transient", "c1", transient), ("acked", "app:app", ["m1"])]
    assert second.calls == first.calls[1:]


async def test_committed_batches_reach_the_hub_through_the_broker_in_order(clock: Clock) -> None:
    hub = _hub(clock, queue_max=100)
    broker = InProcessBroker()
    broker.subscribe(hub)
    session = _attach(hub, "c")
    hub.finish_resend(session, [])
    broker.publish([_entry(clock, 1), _entry(clock, 2)])
    broker.publish([_entry(clock, 3)])
    broker.publish_transient("c", _entry(clock, 4, app_id=""))
    broker.publish_transient("gone", _entry(clock, 5, app_id=""))  # no such connection: dropped
    assert _queued(session) == ["m1", "m2", "m3", "m4"]
    broker.acked(app_topic("app"), ["m1", "m2"])
    assert list(hub._unacked[app_topic("app")]) == ["m3"]  # transients are never retried


async def test_the_outbox_sink_publishes_through_the_broker(clock: Clock) -> None:
    broker, woken = _RecordingBroker(), []
    sink = OutboxSink(
        broker,
        PayloadRenderers(push_frame=lambda *_: (lambda *_: "{", "}"), webhook_item=lambda _: {}),
        lambda: woken.append(True),
        clock,
    )
    entries, transient = [_entry(clock, 1), _entry(clock, 2)], _entry(clock, 3, app_id="")
    sink.publish(Staged(entries=entries, transient=[("c1", transient)], webhook_items=1))
    sink.publish(Staged())  # an empty commit publishes nothing
    assert broker.calls == [("publish", entries), ("transient", "c1", transient)]
    assert broker.calls[0][1] is entries and woken == [True]


async def test_the_hub_tells_its_broker_when_a_topic_gains_or_loses_its_sessions(
    clock: Clock,
) -> None:
    hints: list[tuple[str, bool]] = []
    hub = Hub(
        clock=clock,
        queue_max=10,
        retry_interval=RETRY_INTERVAL,
        retry_max_interval=RETRY_MAX_INTERVAL,
        on_interest=lambda topic, interested: hints.append((topic, interested)),
    )
    a = hub.attach("a", topics=(app_topic("x"), channel_topic("news")))
    b = hub.attach("b", topics=(app_topic("x"),))
    assert hints == [("app:x", True), ("channel:news", True)]
    hub.unsubscribe(a, channel_topic("news"))
    hub.detach(a)
    assert hints[2:] == [("channel:news", False)]  # b still holds app:x
    hub.detach(b)
    assert hints[3:] == [("app:x", False)]


class _Socket:
    """A transport whose socket takes ``room`` bytes without waiting."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.data = b""
        self.writes = 0

    def write_now(self, data: bytes) -> int:
        taken = data[: self.room]
        self.room -= len(taken)
        self.data += taken
        return len(taken)

    async def write(self, frames: list[Frame]) -> None:
        self.writes += 1
        await trio.lowlevel.checkpoint()  # a real socket waits until it can take them
        self.data += b"".join(f.wire for f in frames)


class _BrokenSocket(_Socket):
    async def write(self, frames: list[Frame]) -> None:
        raise trio.BrokenResourceError("peer reset")


async def test_direct_writes_keep_order_when_the_socket_fills(clock: Clock) -> None:
    hub = _hub(clock, queue_max=100)
    session = _attach(hub, "c")
    hub.finish_resend(session, [])
    socket = _Socket(room=len(Frame("x" * 10).wire) + 5)  # one frame and a bit
    sent: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 0)
        session.bind(socket, sent.append)
        hub.publish([_entry(clock, n, payload="x" * 10) for n in range(3)])
        # The socket took one frame and part of the next; the rest waits for a drain task.
        assert len(session._queue) == 2
        await trio.testing.wait_all_tasks_blocked()
        assert socket.data == b"".join(Frame("x" * 10).wire for _ in range(3))
        assert sum(sent) == 3 and socket.writes == 1
        # Drained: the next hand-over goes out directly again, with no task.
        socket.room = 10**6
        hub.publish([_entry(clock, 9, payload="y")])
        assert not session._queue and socket.writes == 1
        nursery.cancel_scope.cancel()


async def test_a_broken_socket_fails_the_session_not_the_hub(clock: Clock) -> None:
    hub = _hub(clock, queue_max=100)
    session = _attach(hub, "c")
    hub.finish_resend(session, [])
    closed: list[int] = []
    session.on_close = lambda: closed.append(session.close_code)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 0)
        session.bind(_BrokenSocket(room=0), lambda n: None)
        hub.publish([_entry(clock, 1)])
        await trio.testing.wait_all_tasks_blocked()
        assert closed == [1006] and session.closed
        await session.wait_drained()  # returns: no write in progress
        nursery.cancel_scope.cancel()


async def test_a_session_that_fails_before_its_drain_starts_ends_quietly(clock: Clock) -> None:
    """The peer resets the socket while a drain task is queued (seen with clients that
    read 200 bytes of the handshake answer, then reset): the drain must end that
    session only, never fail the hub's writers (which would stop the server)."""
    hub = _hub(clock, queue_max=100)
    session = _attach(hub, "c")
    hub.finish_resend(session, [])
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 0)
        session.bind(_Socket(room=0), lambda n: None)  # the direct write takes nothing
        session.send(Frame("connected"))  # so a drain task is spawned, not yet started
        session.fail(1006, "connection ended")  # the reader saw the reset first
        await trio.testing.wait_all_tasks_blocked()
        await session.wait_drained()
        # The writers service still runs: a second session is served by it.
        other = _attach(hub, "d")
        hub.finish_resend(other, [])
        socket = _Socket(room=0)
        other.bind(socket, lambda n: None)
        other.send(Frame("hello"))
        await trio.testing.wait_all_tasks_blocked()
        assert socket.data == Frame("hello").wire
        nursery.cancel_scope.cancel()


async def test_the_hub_pings_idle_connections(
    autojump_clock: trio.testing.MockClock, clock: Clock
) -> None:
    hub = _hub(clock)
    session = _attach(hub, "c")
    hub.finish_resend(session, [])
    socket = _Socket(room=10**6)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 30.0)
        session.bind(socket, lambda n: None)
        await trio.sleep(65)
        assert socket.data == b"\x89\x00" * 2
        nursery.cancel_scope.cancel()


async def test_replies_sent_inside_coalesce_go_out_in_one_write(clock: Clock) -> None:
    hub = _hub(clock)
    session = _attach(hub, "c")
    hub.finish_resend(session, [])
    calls: list[bytes] = []

    class _Counting(_Socket):
        def write_now(self, data: bytes) -> int:
            calls.append(data)
            return super().write_now(data)

    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 0)
        session.bind(_Counting(room=10**6), lambda n: None)
        with hub.coalesce():
            for n in range(3):
                session.send(Frame(f"reply {n}"))
            assert not calls  # held until the block ends
        assert calls == [b"".join(Frame(f"reply {n}").wire for n in range(3))]
        nursery.cancel_scope.cancel()


def _bind_all(hub: Hub, sockets: Sequence[_Socket]) -> None:
    """One session of app ``app`` per socket, its resend done, bound to it."""
    for i, socket in enumerate(sockets):
        session = _attach(hub, f"c{i}")
        hub.finish_resend(session, [])
        session.bind(socket, lambda n: None)


async def test_a_large_fan_out_is_written_in_slices_and_later_messages_join_it(
    clock: Clock,
) -> None:
    """Beyond FLUSH_INLINE sessions, publish only queues: the flusher writes the sessions
    a slice at a time, and a message published while it walks reaches every session not
    yet written in the same write as the first one (and the others right after)."""
    from rtserver.delivery._hub import FLUSH_INLINE, FLUSH_SLICE

    n = FLUSH_INLINE + 3 * FLUSH_SLICE
    hub = _hub(clock, queue_max=100)
    calls: list[list[bytes]] = [[] for _ in range(n)]

    class _Recording(_Socket):
        def __init__(self, index: int) -> None:
            super().__init__(room=10**6)
            self.index = index

        def write_now(self, data: bytes) -> int:
            calls[self.index].append(data)
            return super().write_now(data)

    sockets = [_Recording(i) for i in range(n)]
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 0)
        _bind_all(hub, sockets)
        hub.publish([_entry(clock, 1, payload="a")])
        assert not any(calls), "publish returned before writing a large fan-out"
        while not any(calls):  # the flusher writes its first slice, then yields
            await trio.lowlevel.checkpoint()
        written = sum(1 for c in calls if c)
        assert written < n
        hub.publish([_entry(clock, 2, payload="b")])
        await trio.testing.wait_all_tasks_blocked()
        a, b = Frame("a").wire, Frame("b").wire
        for i, socket in enumerate(sockets):
            assert socket.data == a + b, i  # every session got both, in order
            # Written before the second message: two writes; after: one, carrying both.
            assert calls[i] == ([a, b] if i < written else [a + b]), i
        nursery.cancel_scope.cancel()


async def test_a_client_message_waits_for_the_walk_in_progress(clock: Clock) -> None:
    """wait_walk returns at once (no checkpoint) with no walk running; during a walk it
    returns once every session of the walk is written, not between its slices."""
    from rtserver.delivery._hub import FLUSH_INLINE

    hub = _hub(clock, queue_max=100)
    sockets = [_Socket(room=10**6) for _ in range(FLUSH_INLINE * 4)]
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 0)
        _bind_all(hub, sockets)
        with trio.CancelScope() as idle:
            idle.cancel()  # a checkpoint would raise Cancelled
            await hub.wait_walk()
        assert not idle.cancelled_caught
        hub.publish([_entry(clock, 1, payload="a")])
        while not any(s.data for s in sockets):  # the walk wrote its first slice
            await trio.lowlevel.checkpoint()
        assert not all(s.data for s in sockets)
        await hub.wait_walk()
        assert all(s.data == Frame("a").wire for s in sockets)
        nursery.cancel_scope.cancel()


async def test_a_walk_that_follows_another_is_not_waited_for(clock: Clock) -> None:
    """Only a burst's first walk holds client messages: the next walk of a backlog
    (sessions written before a newer message came) does not, or a steady stream would
    let each reader handle one message per walk."""
    from rtserver.delivery._hub import FLUSH_INLINE, FLUSH_SLICE

    hub = _hub(clock, queue_max=100)
    # Slices to spare: Trio may run the flusher twice between two looks of this test.
    sockets = [_Socket(room=10**6) for _ in range(FLUSH_INLINE + 8 * FLUSH_SLICE)]
    a, b = Frame("a").wire, Frame("b").wire
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 0)
        _bind_all(hub, sockets)
        hub.publish([_entry(clock, 1, payload="a")])
        # More than a publish writes itself: the next walk writes these again.
        while sum(1 for s in sockets if s.data) <= FLUSH_INLINE + 2 * FLUSH_SLICE:
            await trio.lowlevel.checkpoint()
        early = [s for s in sockets if s.data]
        assert len(early) < len(sockets)
        hub.publish([_entry(clock, 2, payload="b")])
        await hub.wait_walk()  # the burst's walk
        assert all(s.data.startswith(a) for s in sockets)
        while not any(s.data == a + b for s in early):  # the backlog's walk has begun
            await trio.lowlevel.checkpoint()
        assert not all(s.data == a + b for s in early)
        with trio.CancelScope() as scope:
            scope.cancel()  # a checkpoint would raise Cancelled
            await hub.wait_walk()
        assert not scope.cancelled_caught
        await trio.testing.wait_all_tasks_blocked()
        assert all(s.data == a + b for s in sockets)
        nursery.cancel_scope.cancel()


async def test_a_publisher_waits_until_its_message_is_written(clock: Clock) -> None:
    """wait_backlog returns once what was published before it is written to every socket,
    also when the message came while a walk was halfway (then its sessions already written
    wait for the next walk); with nothing to write it returns at once, no checkpoint."""
    from rtserver.delivery._hub import FLUSH_INLINE

    hub = _hub(clock, queue_max=100)
    sockets = [_Socket(room=10**6) for _ in range(FLUSH_INLINE * 4)]
    a, b = Frame("a").wire, Frame("b").wire
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.run_writers, 0)
        _bind_all(hub, sockets)
        with trio.move_on_after(0) as scope:  # nothing published: nothing to wait for
            await hub.wait_backlog()
        assert not scope.cancelled_caught
        hub.publish([_entry(clock, 1, payload="a")])
        assert not any(s.data for s in sockets)  # a walk's work, not the publish's
        await hub.wait_backlog()
        assert all(s.data == a for s in sockets)
        # Halfway through the next message's walk, a third one comes.
        hub.publish([_entry(clock, 2, payload="b")])
        while sum(1 for s in sockets if s.data != a) <= FLUSH_INLINE:
            await trio.lowlevel.checkpoint()
        assert any(s.data == a for s in sockets)
        hub.publish([_entry(clock, 3, payload="c")])
        await hub.wait_backlog()
        assert all(s.data == a + b + Frame("c").wire for s in sockets)
        nursery.cancel_scope.cancel()

"""The hub in memory: bursts, slow sessions, resend hand-over, ACKs and retries."""

from __future__ import annotations

from rtserver.delivery import TRY_AGAIN_LATER, Frame, Hub
from rtserver.store.outbox import OutboxEntry, now_ms


def _entry(n: int, app_id: str = "app") -> OutboxEntry:
    return OutboxEntry(n, f"m{n}", app_id, "ethereum", 1, f"0x{n}", "{}", now_ms())


def _hub(queue_max: int = 10) -> Hub:
    return Hub(
        lambda e: Frame(e.payload, e.message_id, e.created_at_ms),
        queue_max=queue_max,
        retry_interval=1.0,
        retry_max_interval=4.0,
    )


def _queued(session: object) -> list[str | None]:
    return [f.message_id for f in session._queue]  # type: ignore[attr-defined]


async def test_a_big_batch_is_not_a_slow_client_but_a_backlog_is() -> None:
    hub = _hub(queue_max=10)
    session = hub.attach("c1", "app", 60_000)
    hub.finish_resend(session, [])
    hub.publish([_entry(n) for n in range(500)])  # one block with 500 matches
    assert not session.closed and len(_queued(session)) == 500
    hub.publish([_entry(500)])  # the 500 are still unwritten: the client is behind
    assert session.closed and session.close_code == TRY_AGAIN_LATER
    assert hub.sessions("app") == []


async def test_same_frame_object_to_every_session_and_other_apps_untouched() -> None:
    hub = _hub()
    a, b = hub.attach("a", "app", 60_000), hub.attach("b", "app", 60_000)
    other = hub.attach("o", "other", 60_000)
    for s in (a, b, other):
        hub.finish_resend(s, [])
    hub.publish([_entry(1)])
    assert a._queue[0] is b._queue[0]  # serialised once, shared
    assert not other._queue


async def test_resend_then_live_without_duplicates() -> None:
    hub = _hub()
    session = hub.attach("c", "app", 60_000)
    hub.publish([_entry(2), _entry(3)])  # published while the resend reads the outbox
    assert not session._queue
    hub.finish_resend(session, [_entry(1), _entry(2)])  # the read saw 1 and 2
    assert _queued(session) == ["m1", "m2", "m3"]


async def test_ack_stops_retries_on_every_session() -> None:
    hub = _hub()
    a, b = hub.attach("a", "app", 60_000), hub.attach("b", "app", 60_000)
    for s in (a, b):
        hub.finish_resend(s, [])
    hub.publish([_entry(1), _entry(2)])
    for s in (a, b):
        s._queue.clear()
    hub.acked("app", ["m1"])
    far = 10**9
    assert sorted(hub.retry_due(now=far)) == ["m2", "m2"]
    assert _queued(a) == _queued(b) == ["m2"]

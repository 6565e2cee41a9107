"""The admin dashboard's data: one snapshot of what the server is doing, and its live feed.

A snapshot gathers what the server already keeps: the chain watchers' gauges and RPC
error counters, the open connections and messages sent per endpoint (the metrics), each
app's unACKed messages and webhook backlog (two grouped counts in the store), and the
most recent matched transactions (a bounded ring fed by a :class:`MatchSink`). The
service computes one snapshot per ``dashboard.interval`` while someone watches and hands
it to every viewer, so the cost does not grow with the number of open dashboards
(``dashboard.max_viewers`` of them at most). No wire format here: the admin HTTP API
(``rtserver/http/admin_dashboard.py``) serves it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import trio

from rtserver.core import Core
from rtserver.events import TransactionMatch
from rtserver.exceptions import LimitExceededError
from rtserver.store import outbox

log = logging.getLogger("rtserver.dashboard")

#: A snapshot as the admin API sends it (JSON-ready).
Snapshot = dict[str, Any]

#: Shortest time over which a message rate is measured: two snapshots closer than this
#: keep the previous rate instead of dividing a few messages by a few milliseconds.
_MIN_RATE_WINDOW = 0.5


@dataclass(frozen=True)
class RecentEvent:
    """One matched transaction, as the dashboard lists it."""

    seen_at: float
    chain: str
    tx_hash: str
    height: int | None
    sender: str | None
    receiver: str | None
    amount: str | None
    symbol: str | None
    decimals: int | None
    #: Who it was matched for: ``app``, ``connection``, ``pool``, ``user``, ``proposal``.
    matched_for: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "seen_at": self.seen_at,
            "chain": self.chain,
            "tx_hash": self.tx_hash,
            "height": self.height,
            "from": self.sender,
            "to": self.receiver,
            "amount": self.amount,
            "symbol": self.symbol,
            "decimals": self.decimals,
            "matched_for": list(self.matched_for),
        }


class RecentEvents:
    """A match sink that keeps the last ``limit`` matched transactions, newest first.

    It stages nothing durable: the ring is filled after the watcher's commit, so it lists
    only what was really stored and handed to delivery.
    """

    def __init__(self, core: Core, limit: int) -> None:
        self._clock = core.clock
        self._events: deque[RecentEvent] = deque(maxlen=limit)

    def stage(self, conn: sqlite3.Connection, matches: Sequence[TransactionMatch]) -> object:
        owners: dict[tuple[str, int, str], tuple[TransactionMatch, set[str]]] = {}
        for match in matches:
            record = match.record
            key = (record.chain_type, record.chain_id, record.tx_hash)
            owners.setdefault(key, (match, set()))[1].add(_owner_kind(match))
        return list(owners.values())

    def publish(self, staged: object) -> None:
        assert isinstance(staged, list)
        now = self._clock.time()
        for match, kinds in staged:
            record = match.record
            self._events.appendleft(
                RecentEvent(
                    seen_at=now,
                    chain=f"{record.chain_type}:{record.chain_id}",
                    tx_hash=record.tx_hash,
                    height=record.height,
                    sender=record.sender,
                    receiver=record.receiver,
                    amount=record.amount,
                    symbol=record.symbol,
                    decimals=record.decimals,
                    matched_for=tuple(sorted(kinds)),
                )
            )

    def newest(self) -> list[RecentEvent]:
        return list(self._events)


def _owner_kind(match: TransactionMatch) -> str:
    if match.app_id is not None:
        return "app"
    if match.connection_id is not None:
        return "connection"
    if match.pool_address is not None:
        return "pool"
    if match.user_key is not None:
        return "user"
    return "proposal"


def _series(metric: Any) -> dict[tuple[str, ...], float]:
    """A metric's current values by label values (its ``_total`` samples for a counter)."""
    values: dict[tuple[str, ...], float] = {}
    for family in metric.collect():
        for sample in family.samples:
            values[tuple(sample.labels.values())] = float(sample.value)
    return values


class Dashboard:
    """One per server (``Dashboard.of(core)``): snapshots and the viewers' live feed."""

    def __init__(self, core: Core) -> None:
        self._core = core
        self._config = core.config.dashboard
        self.recent = RecentEvents(core, self._config.recent_events)
        self._viewers: set[trio.MemorySendChannel[Snapshot]] = set()
        #: The last message counts per endpoint and when they were read (monotonic).
        self._last_sent: tuple[float, dict[str, float]] | None = None
        self._rates: dict[str, float] = {}
        #: Set when a viewer starts watching: the service is idle while nobody does.
        self._viewer_came = trio.Event()

    @classmethod
    def create(cls, core: Core) -> Dashboard:
        """Build the server's dashboard, found afterwards by :meth:`of`; adds its sink."""
        dashboard = cls(core)
        core.match_sink.add(dashboard.recent)
        core.parts[Dashboard] = dashboard
        return dashboard

    @staticmethod
    def of(core: Core) -> Dashboard | None:
        return core.part(Dashboard)

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    async def snapshot(self) -> Snapshot:
        """What the server is doing now (one grouped store read, the rest in memory)."""
        core = self._core
        pending, backlog = await core.store.read(outbox.delivery_backlogs)
        metrics = core.metrics
        heads = _series(metrics.chain_head)
        processed = _series(metrics.chain_processed)
        lags = _series(metrics.chain_lag)
        rpc_errors: dict[str, float] = {}
        for (failing, _kind), count in _series(metrics.chain_rpc_errors).items():
            rpc_errors[failing] = rpc_errors.get(failing, 0.0) + count
        chains = []
        for chain in core.config.chains:
            label = f"{chain.chain_type}:{chain.chain_id}"
            chains.append(
                {
                    "chain": label,
                    "chain_type": chain.chain_type,
                    "chain_id": chain.chain_id,
                    "head": _block(heads.get((label,))),
                    "processed": _block(processed.get((label,))),
                    "lag": _block(lags.get((label,))),
                    "rpc_errors": int(rpc_errors.get(label, 0)),
                }
            )
        connections = {
            key[0]: int(value) for key, value in _series(metrics.open_connections).items()
        }
        sent = {key[0]: value for key, value in _series(metrics.messages_sent).items()}
        rates = self._message_rates(sent)
        apps = sorted(set(pending) | set(backlog))
        no_backlog = {"queued": 0, "pending": 0, "dead": 0}
        return {
            "time": core.clock.time(),
            "uptime": core.clock.time() - core.started_at,
            "chains": chains,
            "connections": connections,
            "connections_total": sum(connections.values()),
            "messages_sent": {endpoint: int(count) for endpoint, count in sent.items()},
            "messages_per_second": rates,
            "messages_per_second_total": sum(rates.values()),
            "apps": [
                {
                    "app_id": app_id,
                    "pending_messages": pending.get(app_id, 0),
                    "webhooks": backlog.get(app_id, no_backlog),
                }
                for app_id in apps
            ],
            "recent_events": [event.to_json() for event in self.recent.newest()],
            "viewers": len(self._viewers),
        }

    def _message_rates(self, sent: dict[str, float]) -> dict[str, float]:
        """Messages per second by endpoint since the previous reading."""
        now = self._core.clock.monotonic()
        if self._last_sent is not None:
            then, before = self._last_sent
            if now - then < _MIN_RATE_WINDOW:
                return self._rates
            self._rates = {
                endpoint: round(max(count - before.get(endpoint, 0.0), 0.0) / (now - then), 2)
                for endpoint, count in sent.items()
            }
        self._last_sent = (now, sent)
        return self._rates

    def check_room(self) -> None:
        """:class:`LimitExceededError` when no viewer may start now (``max_viewers``
        streaming already, or the server is shutting down)."""
        if self._core.connections.closing.is_set():
            raise LimitExceededError("the server is shutting down")
        if len(self._viewers) >= self._config.max_viewers:
            raise LimitExceededError(
                f"{self._config.max_viewers} dashboards are streaming already"
                " (dashboard.max_viewers)"
            )

    @contextmanager
    def watch(self) -> Iterator[trio.MemoryReceiveChannel[Snapshot]]:
        """A viewer's feed: the next snapshot every ``dashboard.interval`` seconds; it ends
        when the server shuts down. :class:`LimitExceededError` as :meth:`check_room`.

        A viewer still reading the previous snapshot skips the next one (a buffer of
        one): a slow dashboard sees fewer updates and holds no queue."""
        self.check_room()
        send, receive = trio.open_memory_channel[Snapshot](1)
        self._viewers.add(send)
        self._viewer_came.set()
        try:
            yield receive
        finally:
            self._viewers.discard(send)
            send.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Service: while someone watches, a snapshot to every viewer each interval (idle
        otherwise); on shutdown, end the feeds (an open stream would otherwise hold the
        HTTP front's graceful stop)."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._end_feeds_at_shutdown)
            while True:
                if not self._viewers:
                    self._viewer_came = trio.Event()
                    await self._viewer_came.wait()
                # A new viewer got its first snapshot from its stream.
                await trio.sleep(self._config.interval)
                try:
                    snapshot = await self.snapshot()
                except sqlite3.Error:
                    log.exception("could not read the dashboard's backlog counts")
                else:
                    for viewer in list(self._viewers):
                        # Still reading the previous one: it gets the next.
                        with suppress(trio.WouldBlock):
                            viewer.send_nowait(snapshot)

    async def _end_feeds_at_shutdown(self) -> None:
        await self._core.connections.closing.wait()
        for viewer in self._viewers:
            viewer.close()
        self._viewers.clear()  # no snapshot goes to a closed feed; none opens after this


def _block(value: float | None) -> int | None:
    return None if value is None else int(value)


__all__ = ["Dashboard", "RecentEvent", "RecentEvents", "Snapshot"]

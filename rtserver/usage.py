"""Usage accounting: requests and pushed messages per app per UTC day.

Counting happens on every request and push, so it must cost a dict update, not a
database write: counts accumulate in memory and a background service adds them to
``usage_daily`` every few seconds (and once more at shutdown) in one write job.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from typing import Any

import trio

from rtserver.clock import Clock
from rtserver.exceptions import StoreClosedError
from rtserver.store import Store
from rtserver.store import usage as usage_store

log = logging.getLogger("rtserver.usage")

#: Metric names (the ``metric`` column). Requests are counted by the API front-ends,
#: pushes by delivery.
REQUESTS = "requests"
WS_MESSAGES = "ws_messages"
WEBHOOK_ITEMS = "webhook_items"

_Key = tuple[str, str, str]  # (app_id, day, metric)


def utc_day(timestamp: float) -> str:
    """The UTC day of a Unix time, as ``usage_daily`` keys it (``YYYY-MM-DD``)."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


class UsageCounter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._pending: Counter[_Key] = Counter()
        # The current UTC day and its bounds (Unix time): counted once per push on the
        # fan-out path, the day is formatted once per day, not per call.
        self._day = ""
        self._day_from = self._day_until = 0.0

    def count(self, app_id: str, metric: str, n: int = 1) -> None:
        """Add ``n`` to today's ``metric`` of ``app_id`` (in memory until the next flush)."""
        now = self._clock.time()
        if not self._day_from <= now < self._day_until:
            self._day = utc_day(now)
            self._day_from = now - now % 86_400  # Unix days are 86,400 s long
            self._day_until = self._day_from + 86_400
        self._pending[(app_id, self._day, metric)] += n

    async def flush(self, store: Store) -> None:
        """Add the counts gathered so far to the database."""
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        try:
            rows = [(*key, n) for key, n in pending.items()]
            await store.write(lambda conn: usage_store.add_counts(conn, rows))
        except BaseException:
            # Keep what could not be written for the next flush.
            self._pending.update(pending)
            raise

    async def run(
        self,
        store: Store,
        interval: float = 5.0,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Flush every ``interval`` seconds until cancelled, then flush once more."""
        task_status.started()
        try:
            while True:
                await trio.sleep(interval)
                await self.flush(store)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.flush(store)
                except StoreClosedError:  # torn down without a graceful close
                    log.warning("usage counts not saved: the store closed first")


def usage_for_app(
    conn: sqlite3.Connection, app_id: str, days: int = 31, *, now: float
) -> list[dict[str, Any]]:
    """The last ``days`` days before ``now`` (Unix seconds) of ``app_id``'s usage, newest
    first, one object per day."""
    rows = usage_store.counts_since(conn, app_id, utc_day(now - days * 86400))
    by_day: dict[str, dict[str, Any]] = {}
    for day, metric, count in rows:
        by_day.setdefault(day, {"day": day, REQUESTS: 0, WS_MESSAGES: 0, WEBHOOK_ITEMS: 0})[
            metric
        ] = count
    return list(by_day.values())

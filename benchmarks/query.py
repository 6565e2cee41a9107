"""Cursor walks for the query benchmark (scenario 6): an app paging through an address's
history the way the address-monitoring API tells it to, each page asking for the ids
below the last one of the page before (``id``, the spec's cursor).

Each page is timed on its own, so a walk gives one latency per page: a walk that slows
down as it goes deeper into the history (an OFFSET-like cost, an index that stops
serving the order) shows in its p99.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

QUERY_PATH = "/tx/api/v1/transfers/query"


@dataclass
class CursorWalk:
    """Pages of one walk: their latencies (ms) and how many records they held."""

    latencies_ms: list[float] = field(default_factory=list)
    rows: int = 0
    #: True when the walk reached the end of the history before its page budget.
    reached_end: bool = False


def cursor_walk(http: httpx.Client, body: dict[str, Any], pages: int) -> CursorWalk:
    """Walk from the newest page of ``body``'s query for up to ``pages`` pages.

    Stops early at the end of the history (a page shorter than its ``limit``). Fails on
    a page that repeats or goes back to newer records: the cursor must only ever move
    into the past.
    """
    walk = CursorWalk()
    limit = int(body["limit"])
    cursor: int | None = None
    for _ in range(pages):
        page_body = body if cursor is None else {**body, "id": cursor}
        started = time.perf_counter()
        response = http.post(QUERY_PATH, json=page_body)
        walk.latencies_ms.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        data = response.json()["data"]
        walk.rows += len(data)
        ids = [item["id"] for item in data]
        if ids != sorted(ids, reverse=True) or (cursor is not None and ids and ids[0] >= cursor):
            raise AssertionError(f"cursor walk went back: page after id {cursor} gave {ids[:3]}...")
        if len(data) < limit:
            walk.reached_end = True
            break
        cursor = ids[-1]
    return walk


def database_size_mib(files: list[int], transfers: int) -> dict[str, float]:
    """The database's size on disk (every file of it: main, WAL, shared memory) in MiB,
    and per million transfers."""
    mib = sum(files) / 2**20
    return {
        "db_size_mib": round(mib, 1),
        "db_mib_per_million": round(mib / max(transfers, 1) * 1_000_000, 1),
    }

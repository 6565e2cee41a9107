"""The real rtserver with one bench-only component: synthetic chain events on demand.

``python benchmarks/rtserver_bench_server.py serve --bind HOST:PORT --data-dir DIR``
runs ``rtserver.cli.main`` with every default component plus ``bench-injector``, whose
``POST /bench/inject {"address": ..., "count": N, "rate": R, "batch_max": B, "block": K}`` makes N
synthetic transactions touching ``address`` and feeds them through the chain watcher's
path: ``core.watched.match`` on the event loop, then one ``core.store.write`` job per
batch doing ``store_records`` + ``core.match_sink.stage``, and ``match_sink.publish``
after the commit. It answers when every batch committed.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
import tracemalloc
from pathlib import Path

import trio
from quart import Blueprint, Response, request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.synthetic import WATCHED, make_event, pacing
from rtserver.addresses import normalize_address
from rtserver.cli import main
from rtserver.core import Core
from rtserver.events import TransactionMatch
from rtserver.http import json_response
from rtserver.matching import MatchResult
from rtserver.records import TransactionRecord
from rtserver.server import DEFAULT_COMPONENTS, Component
from rtserver.store import apps as app_store
from rtserver.store import watched as watched_store
from rtserver.store.transactions import store_records

#: Write jobs in flight at once (the watcher has one; more lets group commit batch them).
IN_FLIGHT = 8


class Injector:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.sequence = 0

    async def inject_batch(self, address: str, n: int) -> int:
        core = self.core
        matched: list[tuple[TransactionRecord, MatchResult]] = []
        for _ in range(n):
            self.sequence += 1
            record = make_event(self.sequence, address)
            addresses = {normalize_address(record.chain_type, a) for a in record.addresses()}
            matched.append((record, core.watched.match(record.chain_type, addresses)))
        sink = core.match_sink

        def job(conn: sqlite3.Connection) -> tuple[object, int]:
            outcomes = store_records(conn, [record for record, _ in matched], now=core.clock.time())
            matches: list[TransactionMatch] = []
            for outcome, (_, result) in zip(outcomes, matched, strict=True):
                if outcome.is_new_or_changed:
                    matches.extend(result.matches(outcome.record))
            return sink.stage(conn, matches), len(matches)

        _, count = await core.store.write(job, after_commit=lambda result: sink.publish(result[0]))
        return count

    async def inject(
        self, address: str, count: int, rate: float, batch_max: int, block: int | None = None
    ) -> dict[str, float]:
        limiter = trio.CapacityLimiter(IN_FLIGHT)
        matches = 0
        late = 0.0

        async def one(n: int, token: object) -> None:
            nonlocal matches
            try:
                made = await self.inject_batch(address, n)
                matches += made  # after the await: += would read `matches` before it
            finally:
                limiter.release_on_behalf_of(token)

        start = trio.current_time()
        wall = time.monotonic()
        async with trio.open_nursery() as nursery:
            # ``block``: write jobs of exactly ``block`` events, like a chain's blocks.
            steps = (
                pacing(count, rate, block, block / rate)
                if block
                else pacing(count, rate, batch_max, 0.01)
            )
            for offset, n in steps:
                await trio.sleep_until(start + offset)
                late = max(late, trio.current_time() - start - offset)
                token = object()
                await limiter.acquire_on_behalf_of(token)
                nursery.start_soon(one, n, token)
        return {
            "injected": count,
            "matches": matches,
            "seconds": time.monotonic() - wall,
            "max_late_seconds": late,
        }


def _all_tasks(task: trio.lowlevel.Task | None) -> list[trio.lowlevel.Task]:
    if task is None:
        return []
    found = [task]
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            found.extend(_all_tasks(child))
    return found


def injector(core: Core) -> Component:
    blueprint = Blueprint("bench_injector", __name__, url_prefix="/bench")
    inj = Injector(core)

    @blueprint.post("/inject")
    async def inject() -> Response:
        body = await request.get_json(force=True)
        result = await inj.inject(
            body.get("address", WATCHED),
            int(body["count"]),
            float(body["rate"]),
            int(body.get("batch_max", 500)),
            int(body["block"]) if body.get("block") else None,
        )
        return json_response(result)

    @blueprint.post("/apps")
    async def create_apps() -> Response:
        """Setup only: ``{"count": N, "address": A, "chain_type": C}`` creates N apps that
        watch ``A`` in one write job (the storm needs thousands; the address API would
        take a request per app). Answers their API keys."""
        body = await request.get_json(force=True)
        count = int(body["count"])
        chain_type = body.get("chain_type", "ethereum")
        address = normalize_address(chain_type, body.get("address", WATCHED))

        def job(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            made = []
            now = core.clock.time()
            for i in range(count):
                new = app_store.create_app(conn, f"bench-bulk-{i}", now=now)
                watched_store.add_addresses(conn, new.app.app_id, chain_type, [address], now=now)
                made.append((new.app.app_id, new.api_key))
            return made

        def index(made: list[tuple[str, str]]) -> None:
            for app_id, _ in made:
                core.watched.add(app_id, chain_type, address)

        made = await core.store.write(job, after_commit=index)
        return json_response({"api_keys": [key for _, key in made]})

    baseline: list[tracemalloc.Snapshot] = []

    @blueprint.post("/memory/baseline")
    async def memory_baseline() -> Response:
        """With ``BENCH_TRACEMALLOC=1``: remember the Python heap now."""
        if not tracemalloc.is_tracing():
            return json_response({"error": "start with BENCH_TRACEMALLOC=1"}, 400)
        baseline[:] = [tracemalloc.take_snapshot()]
        return json_response({"ok": True})

    @blueprint.get("/memory")
    async def memory() -> Response:
        """Python heap growth since the baseline, by allocating line (top 40)."""
        if not tracemalloc.is_tracing() or not baseline:
            return json_response({"error": "no baseline"}, 400)
        now = tracemalloc.take_snapshot()
        stats = now.compare_to(baseline[0], "lineno")
        total = sum(s.size_diff for s in stats)
        top = [
            {
                "where": str(s.traceback[0]),
                "kib": round(s.size_diff / 1024, 1),
                "count": s.count_diff,
            }
            for s in stats[:40]
        ]
        by_file = [
            {
                "where": str(s.traceback[0]),
                "kib": round(s.size_diff / 1024, 1),
                "count": s.count_diff,
            }
            for s in now.compare_to(baseline[0], "filename")[:25]
        ]
        tasks = len(_all_tasks(trio.lowlevel.current_root_task()))
        return json_response(
            {"total_kib": round(total / 1024, 1), "top": top, "by_file": by_file, "tasks": tasks}
        )

    return Component("bench-injector", blueprints=(blueprint,))


if __name__ == "__main__":
    if os.environ.get("BENCH_TRACEMALLOC") == "1":
        tracemalloc.start(1)
    sys.exit(main(sys.argv[1:], components=(*DEFAULT_COMPONENTS, injector)))

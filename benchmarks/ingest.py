"""Scenario 11, durable ingest: outbox entries committed per second with ``synchronous =
FULL`` when every transfer matches many apps.

1,000 apps watch the same address, one client each (so every committed entry is also
delivered); synthetic transfers go through the chain watcher's path (the bench
injector: match, ``store_records`` and the outbox sink in one write job per block,
several jobs in flight so the writer group-commits them). Each transfer makes one entry
per app. A ramp raises the offered entries/s until the commits fall behind; each step
reports entries committed per second and entries per commit (one WAL ``fsync`` each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.run import LoadGen, Rtserver, Sizes


def store_commits(target: Rtserver) -> int:
    """``rtserver_store_commits_total`` from the server's ``/metrics``."""
    r = target.http.get("/metrics")
    r.raise_for_status()
    for line in r.text.splitlines():
        if line.startswith("rtserver_store_commits_total "):
            return int(float(line.split()[1]))
    raise RuntimeError("no rtserver_store_commits in /metrics")


def ingest_summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Two figures of a ramp: the commit capacity (the most entries committed per second
    in any step: past it the writer is saturated, and the step's rate is what it
    commits), and the best step whose every entry also reached its client within the
    bounds of a fan-out step (``kept_up``)."""
    top = max(steps, key=lambda s: s["entries_per_s"]) if steps else None
    kept = [s for s in steps if s["kept_up"]]
    best = max(kept, key=lambda s: s["entries_per_s"]) if kept else None
    return {
        "committed_entries_per_s": top["entries_per_s"] if top else 0,
        "committed_entries_per_commit": top["entries_per_commit"] if top else None,
        "sustained_entries_per_s": best["entries_per_s"] if best else 0,
        "sustained_entries_per_commit": best["entries_per_commit"] if best else None,
        "sustained_step": best,
    }


def scenario_ingest(lg: LoadGen, sizes: Sizes) -> dict[str, Any]:
    from benchmarks.run import Rtserver, log, make_target, step

    target = make_target("rtserver", "ingest")
    assert isinstance(target, Rtserver)
    apps = sizes.ingest_apps
    try:
        keys = target.make_apps(apps)
        conn = lg.connect(target.ws_url, keys, apps, concurrency=32)
        log(f"ingest: {conn['connected']} clients, one per app, {apps} apps")
        steps = []
        offered = float(sizes.ingest_start)
        for _ in range(sizes.ramp_max_steps):
            commits0 = store_commits(target)
            s = step(target, lg, apps, offered, sizes.step_seconds, block=sizes.ingest_block)
            commits = store_commits(target) - commits0
            inject = s["inject"]
            s["entries_committed"] = int(inject["matches"])
            s["entries_per_s"] = round(inject["matches"] / max(inject["seconds"], 0.001))
            s["commits"] = commits
            s["entries_per_commit"] = round(inject["matches"] / max(commits, 1), 1)
            s.pop("tx_log", None)
            steps.append(s)
            log(
                f"  ingest offered {round(offered)} entries/s: committed {s['entries_per_s']}/s "
                f"in {commits} commits ({s['entries_per_commit']} per fsync), delivered "
                f"{s['delivered_msgs_per_s']}/s p99 {s['latency_ms']['p99']} ms "
                f"{'ok' if s['kept_up'] else 'BEHIND'}"
            )
            if not s["kept_up"]:
                break
            offered *= sizes.ramp_factor
        return {
            "apps": apps,
            "block_transfers": sizes.ingest_block,
            "clients": conn["connected"],
            **ingest_summary(steps),
            "steps": steps,
            "command": target.command,
        }
    finally:
        lg.close()
        target.stop()

"""Scenario 10, fan-out one event at a time: each event a ``POST
/tx/api/v1/transaction/ws/replay`` awaited before the next, one app, every client of the
app receiving every event, rtserver and the ``websockets`` peer side by side.

Unlike the ramp of scenario 1, no two events ever share a socket write: both servers
answer a replay once its frames are written to every socket (rtserver's ``wait_backlog``;
before 84f874c it answered earlier, and the next event then joined the writes of the
previous one at the sockets not yet written), so this is the cost of one delivered frame
when events arrive one by one. The figure of merit is deliveries
per server CPU-second (read from ``/proc``), with the clients' p99 latency (receive time
minus the time the event was made, just before its POST).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks.synthetic import WATCHED, make_event
from rtserver.protocols.address_monitoring._naming import push_data

if TYPE_CHECKING:
    from benchmarks.run import LoadGen, Sizes

REPLAY_PATH = "/tx/api/v1/transaction/ws/replay"

#: ``make_event`` numbers: far from the other scenarios' so hashes never collide.
_FIRST_EVENT = 900_000_000


def replay_body(n: int, address: str = WATCHED) -> bytes:
    """A complete ``WsTransactionMessage`` (what the server itself pushes) for event
    ``n``, stamped with the time it is made."""
    record = make_event(n, address)
    message = {
        "id": str(uuid.uuid4()),
        "time": int(time.time() * 1000),
        "type": "transaction",
        "code": 0,
        "data": push_data(record, [address], False),
        "msg": "success",
    }
    return json.dumps(message, separators=(",", ":")).encode()


def send_serially(base: str, key: str, seconds: float, first: int) -> dict[str, Any]:
    """POST replays one after the other for ``seconds`` on one kept-alive connection;
    each is awaited (and must answer ``code: 0``) before the next is made."""
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=60.0) as client:
        deadline = time.monotonic() + seconds
        n = first
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            r = client.post(REPLAY_PATH, content=replay_body(n), headers=headers)
            latencies.append(time.monotonic() - t0)
            r.raise_for_status()
            body = r.json()
            if body.get("code") != 0:
                raise RuntimeError(f"replay refused: {body}")
            n += 1
    ordered = sorted(latencies)
    return {
        "events": len(latencies),
        "post_p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
        "post_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 2),
    }


def serial_run(kind: str, lg: LoadGen, clients: int, sizes: Sizes, tag: str) -> dict[str, Any]:
    # run.py is the entry; its helpers are imported when a scenario runs.
    from benchmarks.run import Window, connect_idle, drain, log, make_target, quiesce

    target = make_target(kind, tag)
    try:
        keys = target.make_apps(1)
        result = connect_idle(target, lg, clients, keys)
        if "error" in result:
            return result
        # A few events first: the first replay of a process pays for imports and caches.
        send_serially(target.replay_base, keys[0], 0.5, _FIRST_EVENT)
        quiesce(lg)
        lg.reset()
        with Window(target.proc) as window:
            sent = send_serially(
                target.replay_base, keys[0], sizes.serial_seconds, _FIRST_EVENT + 100_000
            )
            expected = sent["events"] * clients
            complete = drain(lg, expected)
        stats = lg.stats()
        stats.pop("tx_log")
        result["measure"] = {
            **sent,
            "expected": expected,
            "complete": complete,
            "deliveries_per_server_cpu_s": round(stats["transactions"] / max(window.cpu_s, 0.01)),
            **window.as_dict(),
            "server_cpu_s": window.cpu_s,
            **stats,
        }
        log(
            f"  {target.name} serial {clients} clients: {sent['events']} events, "
            f"{stats['transactions']}/{expected} delivered, "
            f"{result['measure']['deliveries_per_server_cpu_s']} deliveries/CPU-s, "
            f"p99 {stats['latency_ms']['p99']} ms"
        )
        return result
    finally:
        lg.close()
        target.stop()


def scenario_serial(lg: LoadGen, sizes: Sizes, kinds: Sequence[str]) -> dict[str, Any]:
    """``sizes.reps`` alternating rtserver/peer runs per client count."""
    from benchmarks.run import log

    runs: list[dict[str, Any]] = []
    for clients in sizes.serial_clients:
        for rep in range(sizes.reps):
            order = list(kinds) if rep % 2 == 0 else list(reversed(kinds))
            for kind in order:
                log(f"serial fan-out: {kind}, {clients} clients, rep {rep + 1}/{sizes.reps}")
                try:
                    run = serial_run(kind, lg, clients, sizes, f"serial-{kind}-{clients}-{rep}")
                except Exception as exc:  # one failed run must not lose the others
                    log(f"  failed: {exc!r}")
                    run = {"target": kind, "clients": clients, "error": repr(exc)}
                run["rep"] = rep
                runs.append(run)
    return {"runs": runs, "summary": summarize_serial(runs, sizes)}


def summarize_serial(runs: list[dict[str, Any]], sizes: Sizes) -> list[dict[str, Any]]:
    """Per client count: each server's medians, and rtserver/peer ratios (of the medians,
    and the median of the per-repetition ratios)."""
    from benchmarks.run import median

    rows = []
    for clients in sizes.serial_clients:
        row: dict[str, Any] = {"clients": clients}
        by_server: dict[str, dict[int, dict[str, Any]]] = {}
        for name in ("rtserver", "websockets"):
            mine = [
                r
                for r in runs
                if r.get("target") == name and r["clients"] == clients and "measure" in r
            ]
            by_server[name] = {r["rep"]: r["measure"] for r in mine}
            if not mine:
                continue
            m = [r["measure"] for r in mine]
            row[name] = {
                "runs": len(mine),
                "complete": all(x["complete"] for x in m),
                "events": median([x["events"] for x in m]),
                "deliveries_per_server_cpu_s": median(
                    [x["deliveries_per_server_cpu_s"] for x in m]
                ),
                "p50_ms": median([x["latency_ms"]["p50"] for x in m]),
                "p99_ms": median([x["latency_ms"]["p99"] for x in m]),
                "post_p50_ms": median([x["post_p50_ms"] for x in m]),
                "server_cpu_util": median([x["server_cpu_util"] for x in m]),
                # Of each CPU-second, the share spent in the kernel (socket writes).
                "server_system_share": median(
                    [x["server_cpu_system_s"] / max(x["server_cpu_s"], 0.01) for x in m]
                ),
                "loadgen_max_worker_cpu_util": median(
                    [x["loadgen_max_worker_cpu_util"] for x in m]
                ),
                "kib_per_idle_connection": median([r["idle"]["kib_per_connection"] for r in mine]),
            }
        rt, peer = row.get("rtserver"), row.get("websockets")
        if rt and peer:
            ratios: dict[str, float | None] = {}
            for key in ("deliveries_per_server_cpu_s", "p99_ms", "kib_per_idle_connection"):
                if rt.get(key) is not None and peer.get(key):
                    ratios[key] = round(rt[key] / peer[key], 3)
            pairs = [
                by_server["rtserver"][rep]["deliveries_per_server_cpu_s"]
                / by_server["websockets"][rep]["deliveries_per_server_cpu_s"]
                for rep in by_server["rtserver"]
                if rep in by_server["websockets"]
                and by_server["websockets"][rep]["deliveries_per_server_cpu_s"]
            ]
            if pairs:
                ratios["deliveries_per_server_cpu_s_pairwise_median"] = median(pairs)
            row["ratios_rtserver_over_peer"] = ratios
        rows.append(row)
    return rows

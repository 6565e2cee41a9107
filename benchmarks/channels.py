"""Scenario ``channels``: the channel socket (``/api/v1/ws?token=``, docs/channels.md) under
10,000 sockets of one app, one user each.

Setup: before the server starts, one app and an access token for each user ``u0`` ...
``u<N-1>`` are written to a fresh data directory in one SQLite transaction (the CLI's
repository functions, ``rtserver.store.users.issue_token``). Node workers
(``benchmarks/loadgen/channels.js``) open one socket per token and subscribe it to
``notification.events``; the server subscribes every socket to ``settings`` on connect.
Server RSS before and 1.5 s after the connects gives the RSS per idle connection.

Then three ramps of publish rates, each publish a ``POST /api/v1/ws/publish`` with the
app's API key (answered once durable) from one more Node process, at most
``publishers`` requests in flight:

* ``broadcast``: events to ``settings``, every socket receives each one (fan-out);
* ``user``: events to ``notification.events`` of one user (``user_id``), the users in turn;
* ``batch``: the same with ``user_ids`` naming ``batch_users`` users per publish.

Each step publishes for ``step_seconds`` at a fixed rate, then waits until every expected
event arrived (or nothing arrived for 3 s). Every socket's count of events is checked
against what it should have received: none missing, none extra. Latency = the socket's
receive time - the publish's send time carried in ``data.sent_ms`` (same host clock), so
it includes the HTTP request, the SQLite commit and the fan-out. A step *kept up* when
every event arrived, no publish failed, no socket closed, latency p99 <= 1 s and the
publisher never fell more than 0.5 s behind its schedule (a socket the server closed is
opened again before the next step, and recorded). The rate rises by
``ramp_factor`` while steps keep up (if the first does not, it halves, at most three
times); *sustained* is the best step that kept up. Server CPU seconds and peak RSS are
read from ``/proc`` over each step.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.run import WORK, Rtserver, Window, hist_percentiles, log

WORKER = Path(__file__).resolve().parent / "loadgen" / "channels.js"
WS_PATH = "/api/v1/ws"
PUBLISH_PATH = "/api/v1/ws/publish"
USER_PREFIX = "u"
#: Kept-up limits of a step (as the fan-out ramp's).
MAX_P99_MS = 1000.0
MAX_LATE_MS = 500.0
#: Waiting for a step's events: give up after this long without progress, or in all.
DRAIN_GRACE_S = 3.0
DRAIN_LIMIT_S = 60.0


@dataclass(frozen=True)
class ChannelSizes:
    """The scenario's sizes: ``FULL`` (issue 16's 10,000 sockets) or ``QUICK`` (a smoke run)."""

    sockets: int
    workers: int  # Node processes holding the sockets (plus one publishing)
    step_seconds: float
    ramp_factor: float
    max_steps: int  # per ramp
    broadcast_start: float  # publishes/s of each ramp's first step
    user_start: float
    batch_start: float
    batch_users: int  # users named by one publish of the batch ramp
    publishers: int  # publish requests in flight at most


FULL = ChannelSizes(
    sockets=10_000,
    workers=4,
    step_seconds=4.0,
    ramp_factor=1.5,
    max_steps=9,
    broadcast_start=2.0,
    user_start=200.0,
    batch_start=10.0,
    batch_users=100,
    publishers=16,
)
QUICK = ChannelSizes(
    sockets=300,
    workers=2,
    step_seconds=1.5,
    ramp_factor=2.0,
    max_steps=4,
    broadcast_start=20.0,
    user_start=100.0,
    batch_start=5.0,
    batch_users=100,
    publishers=8,
)


@dataclass(frozen=True)
class Ramp:
    """One kind of publish: its channel, and how many users each names (0: broadcast)."""

    name: str
    channel: str
    event: str
    users_per_publish: int
    start: float

    def expected(self, publishes: int, sockets: int) -> list[int]:
        """Events each socket (user ``u<i>``, in order) should receive from ``publishes``
        publishes: all of them for a broadcast; else the targets run through the users
        from ``u0`` in order, wrapping (as the publisher names them)."""
        if not self.users_per_publish:
            return [publishes] * sockets
        targets = publishes * self.users_per_publish
        return [targets // sockets + (1 if i < targets % sockets else 0) for i in range(sockets)]


def ramps(sizes: ChannelSizes) -> tuple[Ramp, ...]:
    return (
        Ramp("broadcast", "settings", "BENCH_SETTINGS", 0, sizes.broadcast_start),
        Ramp("user", "notification.events", "BENCH_NOTIFICATION", 1, sizes.user_start),
        Ramp(
            "batch",
            "notification.events",
            "BENCH_NOTIFICATION",
            sizes.batch_users,
            sizes.batch_start,
        ),
    )


# -- the Node workers ------------------------------------------------------------------------


class _Worker:
    """One ``channels.js`` process: a command line in, a reply line out."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.proc = subprocess.Popen(
            ["node", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(WORK / "logs" / f"{tag}.log", "ab"),  # noqa: SIM115
            text=True,
            bufsize=1,
        )
        self.seq = 0

    def call(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.seq += 1
        self.proc.stdin.write(json.dumps({**cmd, "seq": self.seq}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.tag} exited")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply or reply.get("seq") != self.seq:
            raise RuntimeError(f"{self.tag}: {reply.get('error', reply)}")
        return reply

    def exit(self) -> None:
        try:
            self.call({"cmd": "exit"})
            self.proc.wait(5)
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


class Workers:
    """Socket workers (each holds a contiguous share of the users, in order) and one
    publisher."""

    def __init__(self, count: int) -> None:
        self.sockets = [_Worker(f"channels-worker-{i}") for i in range(count)]
        self.publisher = _Worker("channels-publisher")
        self.pool = ThreadPoolExecutor(count)

    def each(self, cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``cmds[i]`` to socket worker ``i``, all at once; their replies."""
        futures = [self.pool.submit(w.call, c) for w, c in zip(self.sockets, cmds, strict=True)]
        return [f.result() for f in futures]

    def all(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        return self.each([cmd] * len(self.sockets))

    def connect(self, url: str, tokens: list[str], subscribe: list[str]) -> dict[str, Any]:
        w = len(self.sockets)
        shares = [len(tokens) // w + (1 if i < len(tokens) % w else 0) for i in range(w)]
        starts = [sum(shares[:i]) for i in range(w)]
        started = time.monotonic()
        replies = self.each(
            [
                {
                    "cmd": "connect",
                    "url": url,
                    "tokens": tokens[s : s + n],
                    "subscribe": subscribe,
                    "concurrency": 32,
                    "timeout": 120,
                }
                for s, n in zip(starts, shares, strict=True)
            ]
        )
        return _opened(replies, started)

    def reopen(self) -> dict[str, Any]:
        """Open again the sockets that were closed (as ``connect`` opened them)."""
        started = time.monotonic()
        return _opened(self.all({"cmd": "reopen"}), started)

    def counts(self) -> dict[str, Any]:
        replies = self.all({"cmd": "counts"})
        return {
            "events": sum(r["events"] for r in replies),
            "open": sum(r["open"] for r in replies),
            "closes": sum(r["closes"] for r in replies),
            "close_codes": _merge(r["closeCodes"] for r in replies),
        }

    def drain(self, expected: int) -> bool:
        """Wait until the sockets hold ``expected`` events, or give up when none arrived
        for ``DRAIN_GRACE_S`` (or after ``DRAIN_LIMIT_S``)."""
        started = time.monotonic()
        last, last_change = -1, started
        while time.monotonic() - started < DRAIN_LIMIT_S:
            now = self.counts()["events"]
            if now >= expected:
                return True
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > DRAIN_GRACE_S:
                return False
            time.sleep(0.1)
        return False

    def quiesce(self, quiet: float = 0.3, limit: float = 30.0) -> None:
        """Wait until no event arrived for ``quiet`` s (a late backlog of the previous
        step must not count in the next)."""
        deadline = time.monotonic() + limit
        last = self.counts()["events"]
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.counts()["events"]
            if now == last:
                return
            last = now

    def exit(self) -> None:
        for w in [*self.sockets, self.publisher]:
            w.exit()
        self.pool.shutdown()


def _opened(replies: list[dict[str, Any]], started: float) -> dict[str, Any]:
    return {
        "connected": sum(r["connected"] for r in replies),
        "failed": sum(r["failed"] for r in replies),
        "failures": _merge(r["failures"] for r in replies),
        "connect_s": round(time.monotonic() - started, 2),
    }


def _merge(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, n in d.items():
            out[k] = out.get(k, 0) + n
    return out


def _hist(replies: list[dict[str, Any]]) -> dict[int, int]:
    hist: dict[int, int] = {}
    for r in replies:
        for i, n in r["hist"]:
            hist[i] = hist.get(i, 0) + n
    return hist


# -- setup --------------------------------------------------------------------------------------


def issue_tokens(data_dir: Path, users: int) -> tuple[str, list[str]]:
    """Create the app and one access token per user ``u<i>`` in one transaction, in a
    fresh data directory (the server is not running yet); the app's API key and the
    tokens in user order."""
    from rtserver.config import load_config
    from rtserver.store import apps, connect_database, transaction
    from rtserver.store import users as user_store

    subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    config = load_config(env={}, overrides={"server": {"data_dir": str(data_dir)}})
    conn = connect_database(config.data_dir, config.database_path, config.store)
    try:
        with transaction(conn):
            now = time.time()
            app = apps.create_app(conn, "bench-channels", now=now)
            ttl = config.channels.access_token_ttl
            tokens = [
                user_store.issue_token(
                    conn, app.app.app_id, f"{USER_PREFIX}{i}", ttl=ttl, now=now
                ).token
                for i in range(users)
            ]
    finally:
        conn.close()
    return app.api_key, tokens


# -- measurements ---------------------------------------------------------------------------


def step(
    server: Rtserver,
    workers: Workers,
    api_key: str,
    ramp: Ramp,
    rate: float,
    sizes: ChannelSizes,
) -> dict[str, Any]:
    """Publish at ``rate``/s for ``sizes.step_seconds``; wait for the deliveries; check
    every socket's count; measure."""
    count = max(3, round(rate * sizes.step_seconds))
    expected = ramp.expected(count, sizes.sockets)
    workers.quiesce()
    workers.all({"cmd": "reset"})
    with Window(server.proc) as window:
        t0 = time.time()
        pub = workers.publisher.call(
            {
                "cmd": "publish",
                "url": server.base + PUBLISH_PATH,
                "key": api_key,
                "channel": ramp.channel,
                "event": ramp.event,
                "count": count,
                "rate": rate,
                "concurrency": sizes.publishers,
                "users": sizes.sockets,
                "batch": ramp.users_per_publish,
                "userPrefix": USER_PREFIX,
            }
        )
        workers.drain(sum(expected))
        replies = workers.all({"cmd": "stats"})
    got = [n for r in replies for n in r["perSocket"]]
    missing = sum(max(0, e - g) for e, g in zip(expected, got, strict=True))
    extra = sum(max(0, g - e) for e, g in zip(expected, got, strict=True))
    wrong = sum(1 for e, g in zip(expected, got, strict=True) if e != g)
    events = sum(r["events"] for r in replies)
    last_receive_s = max(r["lastReceiveMs"] for r in replies) / 1000
    # Keeping up, the last event arrives just after the last publish, at (count - 1) / rate:
    # the span is at least the publishing period.
    span = max(last_receive_s - t0, count / rate, 1e-3)
    p50, p99, pmax = hist_percentiles(_hist(replies), (0.5, 0.99, 1.0))
    rtt50, rtt99, rttmax = hist_percentiles(_hist([pub]), (0.5, 0.99, 1.0))
    ok = pub["statuses"].get("200", 0)
    closes = sum(r["closes"] for r in replies)
    utils = [(r["cpuUserMs"] + r["cpuSystemMs"]) / max(r["wallMs"], 1) for r in replies]
    kept_up = (
        missing == 0
        and extra == 0
        and ok == count
        and closes == 0
        and (p99 or 0) <= MAX_P99_MS
        and pub["maxLateMs"] <= MAX_LATE_MS
    )
    return {
        "offered_publishes_per_s": round(rate, 2),
        "publishes": count,
        "publishes_ok": ok,
        "publish_statuses": pub["statuses"],
        "publish_failures": pub["failures"],
        "publishes_per_s": round(ok / max(pub["seconds"], count / rate), 1),
        "publisher_max_late_ms": round(pub["maxLateMs"], 1),
        "publish_rtt_ms": {"p50": rtt50, "p99": rtt99, "max": rttmax},
        "expected_deliveries": sum(expected),
        "deliveries": events,
        "deliveries_per_s": round(events / span),
        "missing": missing,
        "extra": extra,
        "sockets_wrong_count": wrong,
        "error_frames": sum(r["errorFrames"] for r in replies),
        "closes": closes,
        "close_codes": _merge(r["closeCodes"] for r in replies),
        "latency_ms": {"p50": p50, "p99": p99, "max": pmax},
        "kept_up": kept_up,
        **window.as_dict(),
        "loadgen_max_worker_cpu_util": round(max(utils), 3),
        "publisher_cpu_s": round(pub["cpuMs"] / 1000, 2),
    }


def run_ramp(
    server: Rtserver, workers: Workers, api_key: str, ramp: Ramp, sizes: ChannelSizes
) -> dict[str, Any]:
    """Raise the rate by ``ramp_factor`` while steps keep up (halving from the start if
    the first does not, at most three times); the best step that kept up is sustained."""
    steps: list[dict[str, Any]] = []
    rate = ramp.start
    halvings = 0
    while len(steps) < sizes.max_steps:
        reopened = None
        if workers.counts()["open"] < sizes.sockets:
            reopened = workers.reopen()
            log(f"  channels {ramp.name}: closed sockets opened again: {reopened}")
        s = step(server, workers, api_key, ramp, rate, sizes)
        s["reopened_before"] = reopened
        steps.append(s)
        log(
            f"  channels {ramp.name}: {s['offered_publishes_per_s']} publishes/s -> "
            f"{s['deliveries_per_s']} deliveries/s, p50 {s['latency_ms']['p50']} "
            f"p99 {s['latency_ms']['p99']} ms, missing {s['missing']}, extra {s['extra']}, "
            f"server CPU {s['server_cpu_util']} {'ok' if s['kept_up'] else 'BEHIND'}"
        )
        if s["kept_up"]:
            if halvings:
                break
            rate *= sizes.ramp_factor
        elif halvings or len(steps) == 1:
            if halvings == 3:
                break
            halvings += 1
            rate /= 2
        else:
            break
    return summarize_ramp(ramp, steps)


def summarize_ramp(ramp: Ramp, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """A ramp's figures: those of its best step that kept up (sustained), and its peaks."""
    kept = [s for s in steps if s["kept_up"]]
    best = max(kept, key=lambda s: s["deliveries_per_s"]) if kept else None
    return {
        "name": ramp.name,
        "channel": ramp.channel,
        "users_per_publish": ramp.users_per_publish or None,
        "sustained_publishes_per_s": best["publishes_per_s"] if best else 0,
        "sustained_deliveries_per_s": best["deliveries_per_s"] if best else 0,
        "sustained_step": best,
        "peak_publishes_per_s": max(s["publishes_per_s"] for s in steps),
        "peak_deliveries_per_s": max(s["deliveries_per_s"] for s in steps),
        "all_delivered": all(s["missing"] == 0 and s["extra"] == 0 for s in steps),
        "steps": steps,
    }


def server_log_problems(path: Path, offset: int, limit: int = 20) -> dict[str, Any]:
    """What the server logged during this scenario at level ERROR or above (with
    tracebacks), and how many warnings."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode("utf-8", "replace").splitlines()
    errors = [line for line in lines if any(w in line for w in ("ERROR", "CRITICAL", "Traceback"))]
    warnings = [line for line in lines if "WARNING" in line]
    return {
        "errors": len(errors),
        "first_errors": errors[:limit],
        "warnings": len(warnings),
        "first_warnings": warnings[:limit],
    }


def scenario_channels(quick: bool) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    data = WORK / "data" / "channels"
    log(f"channels: issuing {sizes.sockets} access tokens")
    api_key, tokens = issue_tokens(data, sizes.sockets)
    server_log = WORK / "logs" / "channels.log"
    log_offset = server_log.stat().st_size if server_log.exists() else 0
    server = Rtserver(data, tag="channels")
    workers = Workers(sizes.workers)
    try:
        result = measure(server, workers, api_key, tokens, sizes)
    finally:
        workers.exit()
        server.stop()
    result["server_log"] = server_log_problems(server_log, log_offset)
    if result["server_log"]["errors"]:
        log(f"channels: {result['server_log']['errors']} error lines in {server_log}")
    return result


def measure(
    server: Rtserver, workers: Workers, api_key: str, tokens: list[str], sizes: ChannelSizes
) -> dict[str, Any]:
    """Connect every socket (RSS per idle connection), then the three ramps."""
    time.sleep(0.5)  # warm (imports, first requests), then the idle baseline
    rss0 = server.proc.rss_kib()
    ws_url = server.base.replace("http://", "ws://") + WS_PATH
    with Window(server.proc) as connect_window:
        conn = workers.connect(ws_url, tokens, ["notification.events"])
    time.sleep(1.5)
    rss1 = server.proc.rss_kib()
    idle = {
        "sockets": conn["connected"],
        "rss_before_mib": round(rss0 / 1024, 1),
        "rss_after_mib": round(rss1 / 1024, 1),
        "kib_per_connection": round((rss1 - rss0) / max(conn["connected"], 1), 2),
        "connect_cpu_s": connect_window.cpu_s,
    }
    log(
        f"channels: {conn['connected']} sockets ({conn['failed']} failed) in "
        f"{conn['connect_s']} s, {idle['kib_per_connection']} KiB/idle connection"
    )
    result: dict[str, Any] = {
        "sizes": asdict(sizes),
        "connect": conn,
        "idle": idle,
        "ramps": [],
        "command": server.command,
    }
    if conn["connected"] < sizes.sockets:
        result["error"] = f"only {conn['connected']} of {sizes.sockets} sockets connected"
        return result
    for ramp in ramps(sizes):
        result["ramps"].append(run_ramp(server, workers, api_key, ramp, sizes))
    return result

"""Run rtserver's benchmarks and write ``BENCHMARKS.md`` and ``benchmarks/results.json``.

Started by ``./scripts/bench`` (which prepares ``.venv``, the Node load generator and
Anvil). Every server runs as a subprocess on loopback; the load generator is
``benchmarks/loadgen/loadgen.js`` in several Node processes, controlled over pipes.

Scenarios (``--only`` takes these names): ``fanout`` (1), ``storm`` (2), ``idle`` (3, measured
inside the 10,000-client fan-out runs), ``durable`` (4), ``chain`` (5), ``query`` (6),
``channels`` (7, benchmarks/channels.py), ``wallet`` (8: the wallet socket's initial sequence
at 1,000 concurrent connects and its push latency, ``benchmarks/wallet.py``), ``payments`` (9:
payment-status sockets, settlement to frame), ``serial`` (10: fan-out one event at a time,
``benchmarks/serial.py``), ``ingest`` (11: durable ingest, outbox entries committed per
second, ``benchmarks/ingest.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.synthetic import CHAIN_TYPE, WATCHED  # noqa: E402
from rtserver.store import SCHEMA_VERSION  # noqa: E402

WORK = ROOT / "bench-results"
LOADGEN = ROOT / "benchmarks" / "loadgen" / "loadgen.js"
PEER = ROOT / "benchmarks" / "peers" / "websockets_broadcaster.py"
HARNESS = ROOT / "benchmarks" / "rtserver_bench_server.py"
ANVIL = ROOT / ".tools" / "node_modules" / "@foundry-rs" / "anvil" / "bin.mjs"
WS_PATH = "/tx/api/v1/transaction/ws"
ADMIN_TOKEN = "bench-admin-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Control requests get a fresh connection each: a kept-alive one idles through a
#: connect phase longer than the server's keep-alive timeout, and a request sent as the
#: server closes it fails ("Server disconnected without sending a response").
CONTROL_LIMITS = httpx.Limits(max_keepalive_connections=0)
ALL_SCENARIOS = (
    "query",
    "fanout",
    "idle",
    "storm",
    "durable",
    "chain",
    "channels",
    "wallet",
    "payments",
    "serial",
    "ingest",
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- sizes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    reps: int  # alternating rtserver/peer pairs per fan-out configuration
    fanout_configs: tuple[tuple[int, int], ...]  # (clients, apps)
    ramp_configs: tuple[tuple[int, int], ...]  # those that also ramp
    fixed_msgs: int  # delivered msgs/s of the fixed-rate phase
    fixed_seconds: float
    ramp_start_msgs: int
    ramp_factor: float
    ramp_max_steps: int
    step_seconds: float
    storm_clients: int
    storm_apps: int
    storm_pending: int
    durable_clients: int
    durable_apps: int
    chain_seconds: float
    payment_sockets: int  # proposals, one status socket each
    payment_settlements: int  # of them settled by a transfer, one every 100 ms
    query_transfers: int
    query_per_kind: int
    workers: int
    serial_clients: tuple[int, ...]  # scenario 10, fan-out one event at a time
    serial_seconds: float
    ingest_apps: int  # scenario 11, durable ingest: apps matching every transfer
    ingest_start: int  # entries/s of the ramp's first step
    ingest_block: int  # transfers per block (one write job)


FULL = Sizes(
    reps=3,
    fanout_configs=((1_000, 1), (1_000, 100), (10_000, 1), (10_000, 100)),
    ramp_configs=((1_000, 1), (10_000, 1)),
    fixed_msgs=5_000,
    fixed_seconds=4.0,
    ramp_start_msgs=5_000,
    ramp_factor=1.5,
    ramp_max_steps=11,
    step_seconds=3.0,
    storm_clients=10_000,
    storm_apps=10_000,
    storm_pending=10,
    durable_clients=1_000,
    durable_apps=100,
    chain_seconds=20.0,
    payment_sockets=10_000,
    payment_settlements=200,
    query_transfers=10_000_000,
    query_per_kind=300,
    workers=4,
    serial_clients=(1_000, 5_000, 10_000),
    serial_seconds=6.0,
    ingest_apps=1_000,
    ingest_start=10_000,
    ingest_block=20,
)
QUICK = Sizes(
    reps=1,
    fanout_configs=((300, 1), (300, 30)),
    ramp_configs=((300, 1),),
    fixed_msgs=3_000,
    fixed_seconds=1.5,
    ramp_start_msgs=3_000,
    ramp_factor=2.0,
    ramp_max_steps=4,
    step_seconds=1.0,
    storm_clients=400,
    storm_apps=400,
    storm_pending=5,
    durable_clients=200,
    durable_apps=20,
    chain_seconds=5.0,
    payment_sockets=300,
    payment_settlements=20,
    query_transfers=50_000,
    query_per_kind=50,
    workers=2,
    serial_clients=(300,),
    serial_seconds=2.0,
    ingest_apps=200,
    ingest_start=5_000,
    ingest_block=10,
)


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A server subprocess with its CPU time and RSS read from /proc."""

    def __init__(
        self, args: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def cpu_seconds(self) -> float:
        return sum(self.cpu_user_system())

    def cpu_user_system(self) -> tuple[float, float]:
        """CPU seconds in user space and in the kernel (syscalls: socket writes)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # utime, stime

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
        return 0

    def rss_kib(self) -> int:
        return self._status("VmRSS")

    def hwm_kib(self) -> int:
        return self._status("VmHWM")

    def reset_hwm(self) -> None:
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


def wait_http(url: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.args[1]} exited early; see {proc.log_path}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


# -- targets -----------------------------------------------------------------------------------


class Target:
    """A server under test: its process and the HTTP client of its bench control API."""

    name = ""
    proc: Proc
    ws_url: str
    http: httpx.Client
    #: Where ``POST /tx/api/v1/transaction/ws/replay`` is served.
    replay_base: str

    def make_apps(self, n: int) -> list[str]:
        raise NotImplementedError

    def inject(self, count: int, rate: float, block: int | None = None) -> dict[str, Any]:
        """Have the server inject ``count`` events at ``rate`` per second (both servers
        expose the same ``/bench/inject``); ``block``: in write jobs of exactly that many
        events (a chain block's transfers), else grouped by 10 ms."""
        body: dict[str, Any] = {"count": count, "rate": rate}
        if block:
            body["block"] = block
        r = self.http.post("/bench/inject", json=body)
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.http.close()
        self.proc.stop()


class Rtserver(Target):
    name = "rtserver"

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        config: str | None = None,
        tag: str = "rtserver",
    ) -> None:
        port = free_port()
        self.base = self.replay_base = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}{WS_PATH}"
        args = [sys.executable, str(HARNESS), "serve", "--bind", f"127.0.0.1:{port}"]
        args += [
            "--data-dir",
            str(data_dir),
            "--log-level",
            os.environ.get("BENCH_LOG_LEVEL", "warning"),
        ]
        if config:
            path = data_dir.parent / f"{data_dir.name}.toml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(config)
            args += ["--config", str(path)]
        full_env = {"RTSERVER_SERVER_ADMIN_TOKEN": ADMIN_TOKEN, **rtserver_env(), **(env or {})}
        self.command = " ".join(args)
        self.proc = Proc(args, WORK / "logs" / f"{tag}.log", full_env)
        wait_http(self.base + "/healthz", self.proc)
        self.http = httpx.Client(base_url=self.base, timeout=600.0, limits=CONTROL_LIMITS)

    def make_apps(self, n: int, address: str = WATCHED, chain_type: str = CHAIN_TYPE) -> list[str]:
        """``n`` apps watching ``address``: through the admin and address APIs, or (beyond
        100 apps, setup only) through the harness's bulk endpoint."""
        if n > 100:
            r = self.http.post(
                "/bench/apps", json={"count": n, "address": address, "chain_type": chain_type}
            )
            r.raise_for_status()
            return list(r.json()["api_keys"])
        keys = []
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for i in range(n):
            r = self.http.post("/admin/v1/apps", json={"name": f"bench-{i}"}, headers=admin)
            r.raise_for_status()
            key = r.json()["api_key"]
            body = {"wallets": [{"chain_type": chain_type, "address": [address]}]}
            r = self.http.post("/tx/api/v1/addresses", json=body, headers={"X-API-Key": key})
            r.raise_for_status()
            keys.append(key)
        return keys


class Peer(Target):
    name = "websockets"

    def __init__(self, tag: str = "peer") -> None:
        port, control = free_port(), free_port()
        self.ws_url = f"ws://127.0.0.1:{port}{WS_PATH}"
        self.control = self.replay_base = f"http://127.0.0.1:{control}"
        args = [sys.executable, str(PEER), "--bind", f"127.0.0.1:{port}"]
        args += ["--control", f"127.0.0.1:{control}"]
        self.command = " ".join(args)
        self.proc = Proc(args, WORK / "logs" / f"{tag}.log")
        wait_http(self.control + "/healthz", self.proc)
        self.http = httpx.Client(base_url=self.control, timeout=600.0, limits=CONTROL_LIMITS)

    def make_apps(self, n: int) -> list[str]:
        return [f"peer-app-{i}" for i in range(n)]


def rtserver_env() -> dict[str, str]:
    """Settings the benchmarks need, only those this rtserver version knows."""
    from rtserver import config as cfg

    env: dict[str, str] = {}
    if hasattr(cfg, "DeliveryConfig"):
        # Clients of the fan-out runs do not ACK: no live retries during a run.
        env["RTSERVER_DELIVERY_RETRY_INTERVAL"] = "3600"
        env["RTSERVER_DELIVERY_RETRY_MAX_INTERVAL"] = "3600"
    return env


def has_websocket_endpoint() -> bool:
    return (ROOT / "rtserver" / "protocols" / "address_monitoring" / "ws.py").exists()


def has_watcher() -> bool:
    return (ROOT / "rtserver" / "chains").is_dir()


# -- the load generator ------------------------------------------------------------------------

FINE, COARSE = 100_000, 60_000


def bucket_ms(i: int) -> float:
    return (i + 0.5) / 10 if i < FINE else 10_000 + (i - FINE + 0.5) * 10


def hist_percentiles(hist: dict[int, int], ps: Sequence[float]) -> list[float | None]:
    total = sum(hist.values())
    if not total:
        return [None for _ in ps]
    out: list[float | None] = []
    items = sorted(hist.items())
    for p in ps:
        rank = p * (total - 1)
        seen = 0
        for i, n in items:
            seen += n
            if seen > rank:
                out.append(round(bucket_ms(i), 2))
                break
    return out


class LoadGen:
    """Several Node worker processes, each holding a share of the connections."""

    def __init__(self, workers: int) -> None:
        self.procs = [
            subprocess.Popen(
                ["node", str(LOADGEN)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=open(WORK / "logs" / f"loadgen-{i}.log", "ab"),  # noqa: SIM115
                text=True,
                bufsize=1,
            )
            for i in range(workers)
        ]
        self.pool = ThreadPoolExecutor(workers)
        self.seq = 0
        self.lock = threading.Lock()

    def _call(self, i: int, cmd: dict[str, Any]) -> dict[str, Any]:
        proc = self.procs[i]
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(cmd) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator {i} exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"load generator {i}: {reply['error']}")
        return reply  # type: ignore[no-any-return]

    def call_all(self, cmds: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        with self.lock:
            self.seq += 1
            seq = self.seq
        futures = [
            self.pool.submit(self._call, i, {**cmd, "seq": seq}) for i, cmd in enumerate(cmds)
        ]
        return [f.result() for f in futures]

    def broadcast(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        return self.call_all([cmd] * len(self.procs))

    def connect(
        self,
        url: str,
        keys: Sequence[str],
        n: int,
        *,
        resend: str | None = None,
        ack: bool = False,
        expect: int = 0,
        concurrency: int = 64,
        timeout: float = 120.0,
        log_tx: bool = False,
        retry: bool = False,
        paths: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        w = len(self.procs)
        shares = [n // w + (1 if i < n % w else 0) for i in range(w)]
        offsets = [sum(shares[:i]) for i in range(w)]
        cmds = [
            {
                "cmd": "connect",
                "url": url,
                "keys": list(keys),
                "n": shares[i],
                "offset": offsets[i],
                "resend": resend,
                "ack": ack,
                "expect": expect,
                "concurrency": concurrency,
                "timeout": timeout,
                "log": log_tx,
                "retry": retry,
                # Payment-status sockets: url + one path each, no key.
                "paths": list(paths) if paths is not None else None,
            }
            for i in range(w)
        ]
        started = time.time()
        replies = self.call_all(cmds)
        out: dict[str, Any] = {
            "connected": sum(r["connected"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "connect_s": round(time.time() - started, 3),
            "failures": [r["failures"] for r in replies if r["failures"]],
            "retries": sum(r.get("retries", 0) for r in replies),
        }
        if expect:
            out["complete"] = all(r.get("complete") for r in replies)
            out["short"] = sum(r.get("short", 0) for r in replies)
            times = [r.get("allReceivedMs") for r in replies]
            out["all_received_s"] = (
                round(max(times) / 1000, 3) if all(t is not None for t in times) else None
            )
        return out

    def reset(self) -> None:
        self.broadcast({"cmd": "reset"})

    def counts(self) -> dict[str, Any]:
        replies = self.broadcast({"cmd": "counts"})
        out = {
            k: sum(r[k] for r in replies)
            for k in ("transactions", "ackReplies", "acksSent", "closes", "open")
        }
        out["lastReceiveMs"] = max(r["lastReceiveMs"] for r in replies)
        codes: dict[str, int] = {}
        for r in replies:
            for code, n in r.get("closeCodes", {}).items():
                codes[code] = codes.get(code, 0) + n
        out["closeCodes"] = codes
        return out

    def stats(self) -> dict[str, Any]:
        replies = self.broadcast({"cmd": "stats"})
        hist: dict[int, int] = {}
        for r in replies:
            for i, n in r["hist"]:
                hist[i] = hist.get(i, 0) + n
        p50, p99, pmax = hist_percentiles(hist, (0.5, 0.99, 1.0))
        utils = [(r["cpuUserMs"] + r["cpuSystemMs"]) / max(r["wallMs"], 1) for r in replies]
        close_codes: dict[str, int] = {}
        for r in replies:
            for code, n in r["closeCodes"].items():
                close_codes[code] = close_codes.get(code, 0) + n
        return {
            "transactions": sum(r["transactions"] for r in replies),
            "ack_replies": sum(r["ackReplies"] for r in replies),
            "ack_errors": sum(r["ackErrors"] for r in replies),
            "acks_sent": sum(r["acksSent"] for r in replies),
            "closes": sum(r["closes"] for r in replies),
            "close_codes": close_codes,
            "first_receive_ms": min(
                (r["firstReceiveMs"] for r in replies if r["firstReceiveMs"]), default=0
            ),
            "last_receive_ms": max(r["lastReceiveMs"] for r in replies),
            "latency_ms": {"p50": p50, "p99": p99, "max": pmax, "samples": sum(hist.values())},
            "loadgen_cpu_s": round(
                sum(r["cpuUserMs"] + r["cpuSystemMs"] for r in replies) / 1000, 2
            ),
            "loadgen_max_worker_cpu_util": round(max(utils), 3),
            "loadgen_workers": len(replies),
            "tx_log": [e for r in replies for e in r.get("txLog", [])],
        }

    def close(self) -> None:
        self.broadcast({"cmd": "close"})

    def exit(self) -> None:
        with contextlib.suppress(Exception):
            self.broadcast({"cmd": "exit"})
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.pool.shutdown()


# -- measurements --------------------------------------------------------------------------------


def median(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return round(statistics.median(clean), 3) if clean else None


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


@dataclass
class Window:
    """CPU seconds and peak RSS of a server process over one measurement."""

    proc: Proc

    def __enter__(self) -> Window:
        self.proc.reset_hwm()
        self.user0, self.system0 = self.proc.cpu_user_system()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        user, system = self.proc.cpu_user_system()
        self.user_s = round(user - self.user0, 2)
        self.system_s = round(system - self.system0, 2)
        self.cpu_s = round(self.user_s + self.system_s, 2)
        self.wall_s = round(time.monotonic() - self.t0, 2)
        self.peak_rss_mib = round(self.proc.hwm_kib() / 1024, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "server_cpu_s": self.cpu_s,
            "server_cpu_util": round(self.cpu_s / max(self.wall_s, 0.01), 3),
            "server_cpu_user_s": self.user_s,
            "server_cpu_system_s": self.system_s,
            "server_peak_rss_mib": self.peak_rss_mib,
        }


def drain(lg: LoadGen, expected: int, *, acks: int = 0, grace: float = 3.0) -> bool:
    """Wait until the clients hold ``expected`` messages (and ``acks`` ACK replies)."""
    deadline = time.monotonic() + grace
    last = (-1, -1)
    while True:
        c = lg.counts()
        if c["transactions"] >= expected and c["ackReplies"] >= acks:
            return True
        now = (c["transactions"], c["ackReplies"])
        if now != last:
            last = now
            deadline = max(deadline, time.monotonic() + 0.5)  # still progressing
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def quiesce(lg: LoadGen, quiet: float = 0.3, limit: float = 30.0) -> None:
    """Wait until no message arrived for ``quiet`` seconds (a late backlog of the previous
    step must not count in the next one)."""
    deadline = time.monotonic() + limit
    last = lg.counts()["transactions"]
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = lg.counts()["transactions"]
        if now == last:
            return
        last = now


def step(
    target: Target,
    lg: LoadGen,
    clients: int,
    msgs_per_s: float,
    seconds: float,
    *,
    acks: bool = False,
    block: int | None = None,
) -> dict[str, Any]:
    """Inject events at the rate that delivers ``msgs_per_s`` to ``clients`` (in blocks
    of ``block`` events, if given); measure."""
    rate = msgs_per_s / clients
    count = max(5, round(rate * seconds))
    quiesce(lg)
    lg.reset()
    with Window(target.proc) as window:
        t0 = time.time()
        injected = target.inject(count, rate, block)
        expected = count * clients
        complete = drain(lg, expected, acks=expected if acks else 0)
        stats = lg.stats()
    stats.pop("tx_log")
    # When keeping up, the last message arrives just after the last injection, at
    # (count - 1) / rate: count the whole injection period as the span.
    span = max(stats["last_receive_ms"] / 1000 - t0, count / rate)
    delivered = stats["transactions"] / span
    kept_up = (
        complete
        and stats["closes"] == 0
        and (stats["latency_ms"]["p99"] or 0) <= 1000
        and injected["max_late_seconds"] <= 0.5
    )
    result = {
        "clients": clients,
        "offered_msgs_per_s": round(msgs_per_s),
        "events_per_s": round(rate, 2),
        "events": count,
        "expected": expected,
        "delivered_msgs_per_s": round(delivered),
        "kept_up": kept_up,
        "inject": {k: round(v, 3) for k, v in injected.items()},
        **window.as_dict(),
        **stats,
    }
    if acks:
        result["acked_msgs_per_s"] = round(stats["ack_replies"] / span)
    return result


def ramp(
    target: Target, lg: LoadGen, clients: int, sizes: Sizes, *, acks: bool = False
) -> dict[str, Any]:
    """Raise the offered rate until delivery falls behind; if the first step already
    falls behind, halve it (at most three times) to find a rate that is sustained."""
    steps = []
    offered = float(sizes.ramp_start_msgs)
    going_down = False
    for _ in range(sizes.ramp_max_steps + 3):
        if lg.counts()["open"] < clients:
            c = lg.counts()
            log(
                f"  {target.name}: {clients - c['open']} clients were closed ({c['closeCodes']}); ramp stops"
            )
            if steps:
                steps[-1]["closed_after"] = {"count": clients - c["open"], "codes": c["closeCodes"]}
            break
        s = step(target, lg, clients, offered, sizes.step_seconds, acks=acks)
        steps.append(s)
        log(
            f"  {target.name} ramp {clients} clients: offered {s['offered_msgs_per_s']}/s -> "
            f"delivered {s['delivered_msgs_per_s']}/s p99 {s['latency_ms']['p99']} ms "
            f"{'ok' if s['kept_up'] else 'BEHIND'}"
        )
        if s["kept_up"]:
            if going_down:
                break
            offered *= sizes.ramp_factor
            if len(steps) >= sizes.ramp_max_steps:
                break
        else:
            if len(steps) > 1 and not going_down:
                break
            going_down = True
            if len(steps) >= 4:
                break
            offered /= 2
            time.sleep(2.0)  # let the backlog drain
    kept = [s for s in steps if s["kept_up"]]
    key = "acked_msgs_per_s" if acks else "delivered_msgs_per_s"
    best = max(kept, key=lambda s: s[key]) if kept else None
    return {
        "sustained_msgs_per_s": best[key] if best else 0,
        "sustained_step": best,
        "peak_delivered_msgs_per_s": max(s["delivered_msgs_per_s"] for s in steps),
        "steps": steps,
    }


# -- scenarios ----------------------------------------------------------------------------------


def make_target(kind: str, tag: str) -> Target:
    if kind == "rtserver":
        data = WORK / "data" / tag
        subprocess.run(["rm", "-rf", str(data)], check=True)
        return Rtserver(data, tag=tag)
    return Peer(tag=tag)


def connect_idle(target: Target, lg: LoadGen, clients: int, keys: Sequence[str]) -> dict[str, Any]:
    """Connect ``clients`` to ``target``'s apps ``keys``: a run's result so far, with
    the connect figures, the RSS each idle connection added, and ``error`` if some
    client did not connect."""
    # Warm the process (imports, first requests), then take the idle baseline.
    time.sleep(0.5)
    rss0 = target.proc.rss_kib()
    with Window(target.proc) as connect_window:
        conn = lg.connect(target.ws_url, keys, clients, concurrency=32)
    time.sleep(1.5)
    rss1 = target.proc.rss_kib()
    idle = {
        "clients": conn["connected"],
        "rss_before_mib": round(rss0 / 1024, 1),
        "rss_after_mib": round(rss1 / 1024, 1),
        "kib_per_connection": round((rss1 - rss0) / max(conn["connected"], 1), 2),
        "connect_s": conn["connect_s"],
        "connect_cpu_s": connect_window.cpu_s,
    }
    log(
        f"  {target.name} {clients}x{len(keys)}: connected {conn['connected']} ({conn['failed']} failed) "
        f"in {conn['connect_s']} s, {idle['kib_per_connection']} KiB/conn"
    )
    result: dict[str, Any] = {
        "target": target.name,
        "clients": clients,
        "apps": len(keys),
        "connect": conn,
        "idle": idle,
        "command": target.command,
    }
    if conn["connected"] < clients:
        result["error"] = f"only {conn['connected']} of {clients} clients connected"
    return result


def fanout_run(
    kind: str, lg: LoadGen, clients: int, apps: int, sizes: Sizes, do_ramp: bool, tag: str
) -> dict[str, Any]:
    target = make_target(kind, tag)
    try:
        result = connect_idle(target, lg, clients, target.make_apps(apps))
        if "error" in result:
            return result
        fixed = step(target, lg, clients, sizes.fixed_msgs, sizes.fixed_seconds)
        log(
            f"  {target.name} fixed {sizes.fixed_msgs}/s: delivered {fixed['delivered_msgs_per_s']}/s "
            f"p50 {fixed['latency_ms']['p50']} p99 {fixed['latency_ms']['p99']} ms"
        )
        result["fixed"] = fixed
        if do_ramp:
            result["ramp"] = ramp(target, lg, clients, sizes)
        return result
    finally:
        lg.close()
        target.stop()


def scenario_fanout(lg: LoadGen, sizes: Sizes, kinds: Sequence[str]) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for clients, apps in sizes.fanout_configs:
        do_ramp = (clients, apps) in sizes.ramp_configs
        for rep in range(sizes.reps):
            order = list(kinds) if rep % 2 == 0 else list(reversed(kinds))
            for kind in order:
                log(f"fan-out: {kind}, {clients} clients, {apps} apps, rep {rep + 1}/{sizes.reps}")
                try:
                    run = fanout_run(
                        kind,
                        lg,
                        clients,
                        apps,
                        sizes,
                        do_ramp,
                        f"fanout-{kind}-{clients}-{apps}-{rep}",
                    )
                except Exception as exc:  # one failed run must not lose the others
                    log(f"  failed: {exc!r}")
                    run = {"target": kind, "clients": clients, "apps": apps, "error": repr(exc)}
                run["rep"] = rep
                runs.append(run)
    return {"runs": runs, "summary": summarize_fanout(runs, sizes)}


def summarize_fanout(runs: list[dict[str, Any]], sizes: Sizes) -> list[dict[str, Any]]:
    rows = []
    for clients, apps in sizes.fanout_configs:
        row: dict[str, Any] = {"clients": clients, "apps": apps}
        for name in ("rtserver", "websockets"):
            mine = [
                r
                for r in runs
                if r.get("target") == name
                and r["clients"] == clients
                and r["apps"] == apps
                and "fixed" in r
            ]
            if not mine:
                continue
            row[name] = {
                "runs": len(mine),
                "fixed_delivered_msgs_per_s": median(
                    [r["fixed"]["delivered_msgs_per_s"] for r in mine]
                ),
                "fixed_p50_ms": median([r["fixed"]["latency_ms"]["p50"] for r in mine]),
                "fixed_p99_ms": median([r["fixed"]["latency_ms"]["p99"] for r in mine]),
                "fixed_server_cpu_util": median([r["fixed"]["server_cpu_util"] for r in mine]),
                "fixed_loadgen_max_worker_cpu_util": median(
                    [r["fixed"]["loadgen_max_worker_cpu_util"] for r in mine]
                ),
                "kib_per_idle_connection": median([r["idle"]["kib_per_connection"] for r in mine]),
                "peak_rss_mib": median(
                    [
                        max(
                            [r["fixed"]["server_peak_rss_mib"]]
                            + [s["server_peak_rss_mib"] for s in r.get("ramp", {}).get("steps", [])]
                        )
                        for r in mine
                    ]
                ),
            }
            ramps = [r["ramp"] for r in mine if "ramp" in r]
            if ramps:
                row[name]["sustained_msgs_per_s"] = median(
                    [x["sustained_msgs_per_s"] for x in ramps]
                )
                row[name]["sustained_p50_ms"] = median(
                    [
                        x["sustained_step"]["latency_ms"]["p50"] if x["sustained_step"] else None
                        for x in ramps
                    ]
                )
                row[name]["sustained_p99_ms"] = median(
                    [
                        x["sustained_step"]["latency_ms"]["p99"] if x["sustained_step"] else None
                        for x in ramps
                    ]
                )
                row[name]["sustained_server_cpu_s"] = median(
                    [
                        x["sustained_step"]["server_cpu_s"] if x["sustained_step"] else None
                        for x in ramps
                    ]
                )
                row[name]["sustained_loadgen_max_worker_cpu_util"] = median(
                    [
                        x["sustained_step"]["loadgen_max_worker_cpu_util"]
                        if x["sustained_step"]
                        else None
                        for x in ramps
                    ]
                )
                row[name]["peak_delivered_msgs_per_s"] = median(
                    [x["peak_delivered_msgs_per_s"] for x in ramps]
                )
        rt, peer = row.get("rtserver"), row.get("websockets")
        if rt and peer:
            ratios: dict[str, float | None] = {}
            for key in (
                "sustained_msgs_per_s",
                "fixed_p99_ms",
                "kib_per_idle_connection",
                "fixed_delivered_msgs_per_s",
            ):
                if rt.get(key) is not None and peer.get(key):
                    ratios[key] = round(rt[key] / peer[key], 3)
            # Per-pair ratios (rtserver and peer of the same repetition), then their median.
            pair = []
            for rep in range(sizes.reps):
                a = [
                    r
                    for r in runs
                    if r.get("target") == "rtserver"
                    and r["clients"] == clients
                    and r["apps"] == apps
                    and r.get("rep") == rep
                    and "ramp" in r
                ]
                b = [
                    r
                    for r in runs
                    if r.get("target") == "websockets"
                    and r["clients"] == clients
                    and r["apps"] == apps
                    and r.get("rep") == rep
                    and "ramp" in r
                ]
                if a and b and b[0]["ramp"]["sustained_msgs_per_s"]:
                    pair.append(
                        a[0]["ramp"]["sustained_msgs_per_s"] / b[0]["ramp"]["sustained_msgs_per_s"]
                    )
            if pair:
                ratios["sustained_msgs_per_s_pairwise_median"] = round(statistics.median(pair), 3)
            row["ratios_rtserver_over_peer"] = ratios
        rows.append(row)
    return rows


def scenario_storm(lg: LoadGen, sizes: Sizes) -> dict[str, Any]:
    """``sizes.reps`` storms on fresh servers; the headline figures are their medians."""
    runs = [storm_run(lg, sizes, rep) for rep in range(sizes.reps)]
    done = [r for r in runs if "error" not in r]
    if not done:
        return {**runs[0], "runs": runs}
    received = [r["all_received_s"] for r in done]
    return {
        **done[0],
        # A run where someone never got everything has no time: the median counts it last.
        "all_received_s": None if None in received else median(received),
        "all_acked": all(r["all_acked"] for r in done),
        "all_acked_s": median([r["all_acked_s"] for r in done]),
        "server_cpu_s": median([r["server_cpu_s"] for r in done]),
        "server_peak_rss_mib": median([r["server_peak_rss_mib"] for r in done]),
        "runs": runs,
    }


def storm_run(lg: LoadGen, sizes: Sizes, rep: int) -> dict[str, Any]:
    log(f"storm: run {rep + 1}/{sizes.reps}")
    target = make_target("rtserver", "storm")
    try:
        keys = target.make_apps(sizes.storm_apps)
        conn = lg.connect(target.ws_url, keys, sizes.storm_clients, resend="600", concurrency=32)
        log(
            f"storm: {conn['connected']} connected; closing them, then {sizes.storm_pending} events each app"
        )
        lg.close()
        time.sleep(1.0)
        injected = target.inject(sizes.storm_pending, 50.0)
        time.sleep(0.5)
        lg.reset()
        with Window(target.proc) as window:
            # Everyone at once: many connects in flight per worker.
            back = lg.connect(
                target.ws_url,
                keys,
                sizes.storm_clients,
                resend="600",
                ack=True,
                expect=sizes.storm_pending,
                concurrency=1000,
                timeout=120.0,
                retry=True,
            )
            # A client that could not connect (after retrying until the timeout) was
            # not served: then nobody can say "everyone had everything".
            t_all = back.get("all_received_s") if back["failed"] == 0 else None
            expected_acks = sizes.storm_clients * sizes.storm_pending
            acked = drain(lg, 0, acks=expected_acks, grace=30.0)
            acked_s = round(window_elapsed(window), 3)
            stats = lg.stats()
        stats.pop("tx_log")
        log(
            f"storm: everyone had everything after {t_all} s, all ACKs answered: {acked} after {acked_s} s, "
            f"peak RSS {window.peak_rss_mib} MiB"
        )
        return {
            "clients": sizes.storm_clients,
            "apps": sizes.storm_apps,
            "pending_per_client": sizes.storm_pending,
            "first_connect": conn,
            "inject": injected,
            "reconnect": back,
            "all_received_s": t_all,
            "all_acked": acked,
            "all_acked_s": acked_s,
            **window.as_dict(),
            **stats,
            "command": target.command,
        }
    finally:
        lg.close()
        target.stop()


def window_elapsed(window: Window) -> float:
    return time.monotonic() - window.t0


def scenario_durable(lg: LoadGen, sizes: Sizes) -> dict[str, Any]:
    target = make_target("rtserver", "durable")
    try:
        keys = target.make_apps(sizes.durable_apps)
        conn = lg.connect(target.ws_url, keys, sizes.durable_clients, ack=True, concurrency=32)
        log(f"durable: {conn['connected']} clients over {sizes.durable_apps} apps, all ACKing")
        result = ramp(target, lg, sizes.durable_clients, sizes, acks=True)
        return {
            "clients": sizes.durable_clients,
            "apps": sizes.durable_apps,
            **result,
            "command": target.command,
        }
    finally:
        lg.close()
        target.stop()


QUERY_KINDS = (
    "hot",
    "hot_deep_page",
    "hot_token_type",
    "hot_token_contract",
    "warm",
    "cold",
    "multi_chain",
)


def evict_from_page_cache(files: Sequence[Path]) -> int:
    """Drop ``files``' cached pages (``POSIX_FADV_DONTNEED``, after an ``fsync``) so the
    run reads from disk, as on a machine whose memory is smaller than the database,
    whatever ran before; returns the bytes the files hold."""
    total = 0
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            total += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return total


def scenario_query(sizes: Sizes) -> dict[str, Any]:
    from benchmarks.query import cursor_walk, database_size_mib

    data = WORK / "data" / f"transfers-{sizes.query_transfers}"
    marker = data / "generated.json"
    gen_cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "gen_transfers.py"),
        "--data-dir",
        str(data),
        "--count",
        str(sizes.query_transfers),
    ]
    info = json.loads(marker.read_text()) if marker.exists() else {}
    # Older generations had no app watching the queried addresses, or an older schema
    # (a server would spend the run migrating them).
    if "api_key" in info and info.get("schema") == SCHEMA_VERSION:
        log(f"query: reusing {info['count']} generated transfers in {data}")
    else:
        subprocess.run(["rm", "-rf", str(data)], check=True)
        log(f"query: generating {sizes.query_transfers} transfers ({' '.join(gen_cmd)})")
        out = subprocess.run(
            gen_cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT
        ).stdout
        info = json.loads(out.strip().splitlines()[-1])
        marker.write_text(json.dumps(info))
    evicted = evict_from_page_cache(sorted(data.glob("rtserver.sqlite3*")))
    log(f"query: {evicted / 2**20:.0f} MiB of the database evicted from the page cache")
    target = Rtserver(data, tag="query")
    try:
        key = info["api_key"]  # the app that watched the queried addresses from the start
        http = httpx.Client(base_url=target.base, timeout=30.0, headers={"X-API-Key": key})
        hot, warm, cold, token = (
            info["hot_address"],
            info["warm_address"],
            info["cold_address"],
            info["token"],
        )
        first = http.post("/tx/api/v1/transfers/query", json={"address": hot, "limit": 100}).json()[
            "data"
        ]
        deep_id = first[-1]["id"] // 2 if first else None
        # Far into the past: the oldest twentieth of the ids, where an OFFSET walk or a
        # scan from the newest record would cost the most.
        oldest_id = info["count"] // 20
        bodies: dict[str, tuple[str, dict[str, Any]]] = {
            "hot": (
                "/tx/api/v1/transfers/query",
                {"chain_type": CHAIN_TYPE, "chain_id": 1, "address": hot, "limit": 20},
            ),
            "hot_deep_page": (
                "/tx/api/v1/transfers/query",
                {"chain_type": CHAIN_TYPE, "address": hot, "limit": 20, "id": deep_id},
            ),
            "hot_oldest_page": (
                "/tx/api/v1/transfers/query",
                {"chain_type": CHAIN_TYPE, "address": hot, "limit": 20, "id": oldest_id},
            ),
            "hot_token_type": (
                "/tx/api/v1/transfers/query",
                {"chain_type": CHAIN_TYPE, "address": hot, "limit": 20, "tx_type": "token"},
            ),
            "hot_token_contract": (
                "/tx/api/v1/transfers/query",
                {"chain_type": CHAIN_TYPE, "address": hot, "limit": 20, "token": token},
            ),
            "warm": (
                "/tx/api/v1/transfers/query",
                {"chain_type": CHAIN_TYPE, "address": warm, "limit": 100},
            ),
            "cold": ("/tx/api/v1/transfers/query", {"address": cold, "limit": 20}),
            "multi_chain": (
                "/tx/api/v1/transfers/multi-chain",
                {
                    "addresses": [
                        {"chain_type": CHAIN_TYPE, "chain_id": 1, "address": [hot, warm, cold]}
                    ],
                    "limit": 20,
                },
            ),
        }
        for path, body in bodies.values():  # warm-up and sanity
            r = http.post(path, json=body)
            r.raise_for_status()
        latencies: dict[str, list[float]] = {k: [] for k in bodies}
        rows: dict[str, int] = {}
        with Window(target.proc) as window:
            for _ in range(sizes.query_per_kind):
                for kind, (path, body) in bodies.items():
                    t = time.perf_counter()
                    r = http.post(path, json=body)
                    latencies[kind].append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    rows[kind] = len(r.json()["data"])
            # Cursor walks: page after page of 100 from the newest, each page timed.
            walk_bodies = {
                "hot_cursor_walk": ({"chain_type": CHAIN_TYPE, "address": hot, "limit": 100}, 5),
                "hot_token_cursor_walk": (
                    {"chain_type": CHAIN_TYPE, "address": hot, "limit": 100, "token": token},
                    1,
                ),
                "warm_cursor_walk": ({"chain_type": CHAIN_TYPE, "address": warm, "limit": 100}, 5),
            }
            walks = {
                kind: cursor_walk(http, body, sizes.query_per_kind * budget)
                for kind, (body, budget) in walk_bodies.items()
            }
        http.close()
        for kind, walk in walks.items():
            latencies[kind] = walk.latencies_ms
            rows[kind] = walk.rows
        everything = [x for v in latencies.values() for x in v]
        walk_pages = [x for w in walks.values() for x in w.latencies_ms]
        per_kind = {
            k: {
                "p50_ms": round(percentile(v, 0.5) or 0, 2),
                "p99_ms": round(percentile(v, 0.99) or 0, 2),
                "rows": rows[k],
                "n": len(v),
            }
            for k, v in latencies.items()
        }
        result = {
            "transfers": info["count"],
            "generator": info,
            "generate_command": " ".join(gen_cmd),
            **database_size_mib(
                [f.stat().st_size for f in data.glob("rtserver.sqlite3*")], info["count"]
            ),
            "walks": {
                kind: {"pages": len(w.latencies_ms), "reached_end": w.reached_end}
                for kind, w in walks.items()
            },
            "requests": len(everything),
            "p50_ms": round(percentile(everything, 0.5) or 0, 2),
            "p99_ms": round(percentile(everything, 0.99) or 0, 2),
            "walk_pages": len(walk_pages),
            "walk_p50_ms": round(percentile(walk_pages, 0.5) or 0, 2),
            "walk_p99_ms": round(percentile(walk_pages, 0.99) or 0, 2),
            "per_kind": per_kind,
            **window.as_dict(),
            "command": target.command,
        }
        log(
            f"query: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms over {len(everything)} requests"
            f" (cursor walks: p99 {result['walk_p99_ms']} ms over {len(walk_pages)} pages);"
            f" database {result['db_size_mib']} MiB, {result['db_mib_per_million']} MiB per million"
        )
        return result
    finally:
        target.stop()


def scenario_payments(lg: LoadGen, sizes: Sizes) -> dict[str, Any]:
    from benchmarks.payments import run_payments  # needs the watcher and proposals

    return run_payments(lg, sizes, Rtserver, WORK, log)


def scenario_chain(lg: LoadGen, sizes: Sizes) -> dict[str, Any]:
    from benchmarks.chain import run_chain  # needs the watcher

    return run_chain(lg, sizes, Rtserver, WORK, log)


def scenario_channels(quick: bool) -> dict[str, Any]:
    from benchmarks.channels import scenario_channels as run_channels

    return run_channels(quick)


# -- report ---------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    import resource

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": run(["node", "--version"]),
        "websockets": _version("websockets"),
        "hypercorn": _version("hypercorn"),
        "rtserver_commit": run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        # What the measured tree was, when it is not a commit of a shared branch.
        "source_note": os.environ.get("BENCH_SOURCE_NOTE", ""),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rtserver benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of a minute or two"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=ALL_SCENARIOS,
        metavar="SCENARIO",
        help=f"run only these ({', '.join(ALL_SCENARIOS)})",
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=("rtserver", "peer"),
        default=["rtserver", "peer"],
        help="servers of the side-by-side scenarios (fanout, idle)",
    )
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"))
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    wanted = list(args.only or ALL_SCENARIOS)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    kinds = list(args.targets)
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "sizes": sizes.__dict__,
        "command": "./scripts/bench " + " ".join(sys.argv[1:]),
        "scenarios": {},
        "skipped": {},
    }
    ws_ready = has_websocket_endpoint()
    lg: LoadGen | None = None

    def loadgen() -> LoadGen:
        nonlocal lg
        if lg is None:
            lg = LoadGen(sizes.workers)
        return lg

    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    if "query" in wanted:
        plan.append(("query", lambda: scenario_query(sizes)))
    if "fanout" in wanted or "idle" in wanted:
        fk = kinds if ws_ready else [k for k in kinds if k == "peer"]
        if not ws_ready:
            results["skipped"]["fanout:rtserver"] = (
                "rtserver has no WebSocket endpoint on this branch yet (issue 5)"
            )
        if fk:
            plan.append(("fanout", lambda: scenario_fanout(loadgen(), sizes, fk)))
    if "serial" in wanted and ws_ready:
        from benchmarks.serial import scenario_serial

        plan.append(("serial", lambda: scenario_serial(loadgen(), sizes, kinds)))
    if "ingest" in wanted and ws_ready:
        from benchmarks.ingest import scenario_ingest

        plan.append(("ingest", lambda: scenario_ingest(loadgen(), sizes)))
    for name, fn, needs in (
        ("storm", lambda: scenario_storm(loadgen(), sizes), ws_ready),
        ("durable", lambda: scenario_durable(loadgen(), sizes), ws_ready),
        ("chain", lambda: scenario_chain(loadgen(), sizes), ws_ready and has_watcher()),
        ("channels", lambda: scenario_channels(args.quick), True),
        ("payments", lambda: scenario_payments(loadgen(), sizes), ws_ready and has_watcher()),
    ):
        if name not in wanted:
            continue
        if not needs:
            results["skipped"][name] = "needs the WebSocket endpoint (issue 5)" + (
                " and the chain watcher (issue 3)" if name in ("chain", "payments") else ""
            )
            continue
        plan.append((name, fn))

    if "wallet" in wanted:
        from benchmarks.wallet import run_wallet

        count = 100 if args.quick else 1_000
        plan.append(("wallet", lambda: run_wallet(count, 10 if args.quick else 50, WORK, log)))

    try:
        for name, fn in plan:
            log(f"=== scenario {name}")
            t = time.monotonic()
            try:
                results["scenarios"][name] = fn()
            except Exception as exc:
                log(f"scenario {name} failed: {exc!r}")
                results["scenarios"][name] = {"error": repr(exc)}
            results["scenarios"][name]["elapsed_s"] = round(time.monotonic() - t, 1)
            write_outputs(results, args)  # keep what we have if a later scenario dies
    finally:
        if lg is not None:
            lg.exit()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    write_outputs(results, args)
    log(f"done in {results['elapsed_s']} s: {args.output}, {args.json}")
    return 0


def write_outputs(results: dict[str, Any], args: argparse.Namespace) -> None:
    from benchmarks.report import render

    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    Path(args.output).write_text(render(results))


if __name__ == "__main__":
    sys.exit(main())

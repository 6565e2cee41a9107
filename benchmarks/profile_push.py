"""Profile rtserver's push path with py-spy while it fans events out to WebSocket clients.

``.venv/bin/python benchmarks/profile_push.py [--clients 1000] [--rate 15000] [--seconds 10]``

Starts the bench harness server, connects the clients (Node load generator), injects
events at ``--rate`` delivered msgs/s and samples the server with ``py-spy record`` for
the whole step. Writes the raw collapsed stacks and a summary (the functions with the
most samples, by own time and inclusive) to ``bench-results/profile-push-*.txt``, and
prints the summary. (py-spy needs ptrace rights: root, or ``kernel.yama.ptrace_scope=0``.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import run  # noqa: E402
from benchmarks.serial import send_serially  # noqa: E402


def summarize(raw: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            inclusive[frame] += int(n)
    lines = [f"samples: {total}", "", "own time:"]
    lines += [f"{n / total * 100:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"{n / total * 100:5.1f}%  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=1)
    parser.add_argument("--rate", type=float, default=15000, help="offered delivered msgs/s")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--serial",
        action="store_true",
        help="one event at a time through POST /transaction/ws/replay (scenario 10), not --rate",
    )
    parser.add_argument("--block", type=int, help="events per write job (a block's transfers)")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    (run.WORK / "logs").mkdir(parents=True, exist_ok=True)
    tag = f"{args.clients}x{args.apps}-" + ("serial" if args.serial else f"{int(args.rate)}")
    raw = run.WORK / f"profile-push-{tag}.raw.txt"
    lg = run.LoadGen(4 if args.clients > 2000 else 2)
    target = run.make_target("rtserver", "profile")
    try:
        keys = target.make_apps(args.apps)
        lg.connect(target.ws_url, keys, args.clients, concurrency=32)
        sampler = subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(target.proc.pid),
                "-d",
                str(int(args.seconds) + 1),
                "-r",
                "200",
                "--format",
                "raw",
                "-o",
                str(raw),
                "--nonblocking",
                *(["--native"] if args.native else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        time.sleep(0.5)
        if args.serial:
            with run.Window(target.proc) as window:
                sent = send_serially(target.replay_base, keys[0], args.seconds, 800_000_000)
                run.drain(lg, sent["events"] * args.clients)
            stats = lg.stats()
            result = {
                "delivered_msgs_per_s": f"{sent['events']} events one at a time "
                f"({stats['transactions'] / max(window.cpu_s, 0.01):.0f} deliveries per CPU-s);",
                "latency_ms": stats["latency_ms"],
                "server_cpu_s": window.cpu_s,
            }
        else:
            result = run.step(target, lg, args.clients, args.rate, args.seconds, block=args.block)
        sampler.wait()
    finally:
        lg.close()
        target.stop()
        lg.exit()
    summary = (
        f"rtserver push path, {args.clients} clients / {args.apps} app(s), "
        + ("" if args.serial else f"offered {args.rate:g} msgs/s ")
        + f"for {args.seconds:g} s: delivered "
        f"{result['delivered_msgs_per_s']} msgs/s, latency {json.dumps(result['latency_ms'])}, "
        f"server CPU {result['server_cpu_s']} s\n\n" + summarize(raw)
    )
    out = run.WORK / f"profile-push-{tag}.txt"
    out.write_text(summary)
    print(summary)
    print(f"written: {out} (raw stacks: {raw})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

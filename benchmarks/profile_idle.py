"""Where rtserver's memory per idle WebSocket connection goes (Python heap, tracemalloc).

``.venv/bin/python benchmarks/profile_idle.py [--clients 2000]``

Starts the bench harness with ``BENCH_TRACEMALLOC=1``, takes a heap baseline, connects
the clients, and prints the RSS growth per connection next to the Python-heap growth per
connection by allocating line (tracemalloc slows the server; use it for shares, not speed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    args = parser.parse_args()
    (run.WORK / "logs").mkdir(parents=True, exist_ok=True)
    lg = run.LoadGen(2)
    data = run.WORK / "data" / "profile-idle"
    target = run.Rtserver(data, env={"BENCH_TRACEMALLOC": "1"}, tag="profile-idle")
    try:
        keys = target.make_apps(1)
        time.sleep(0.5)
        target.http.post("/bench/memory/baseline").raise_for_status()
        tasks0 = target.http.get("/bench/memory").json()["tasks"]
        rss0 = target.proc.rss_kib()
        lg.connect(target.ws_url, keys, args.clients, concurrency=32)
        time.sleep(1.5)
        rss1 = target.proc.rss_kib()
        heap = target.http.get("/bench/memory").json()
    finally:
        lg.close()
        target.stop()
        lg.exit()
    n = args.clients
    lines = [
        f"{n} idle connections: RSS +{(rss1 - rss0) / n:.1f} KiB per connection, "
        f"Python heap +{heap['total_kib'] / n:.1f} KiB per connection (tracemalloc), "
        f"{(heap['tasks'] - tasks0) / n:.1f} Trio tasks per connection",
        "",
        "per connection, by file:",
        *[
            f"{r['kib'] / n:7.2f} KiB {r['count'] / n:6.1f} blocks  {r['where']}"
            for r in heap["by_file"]
        ],
        "",
        "per connection, by allocating line:",
    ]
    for row in heap["top"]:
        lines.append(f"{row['kib'] / n:7.2f} KiB {row['count'] / n:6.1f} blocks  {row['where']}")
    text = "\n".join(lines) + "\n"
    out = run.WORK / f"profile-idle-{n}.txt"
    out.write_text(text)
    print(text)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

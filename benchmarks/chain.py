"""Scenario 5, chain to client: Anvil mines a watched transfer every 100 ms.

Anvil runs with automine (one block per transaction, mined before
``eth_sendTransaction`` answers), so the moment the answer arrives is when the block
appeared on the node. rtserver follows the node by polling (``poll_interval``) or with a
``ws_url`` (``newHeads``); one client receives the pushes and logs each ``txhash`` with
its receive time. Latency = receive time - block appearance, on the same host clock.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.synthetic import WATCHED

ROOT = Path(__file__).resolve().parent.parent
CHAIN_TYPE = "anvil"
CHAIN_ID = 31337
POLL_INTERVAL = 1.0
INTERVAL = 0.1


def anvil_binary() -> str | None:
    """The native Anvil binary of the npm package (killing the node wrapper may orphan it)."""
    wrapper = Path(
        os.environ.get("ANVIL_BIN", ROOT / ".tools/node_modules/@foundry-rs/anvil/bin.mjs")
    )
    if not wrapper.exists():
        return None
    for native in sorted(wrapper.parent.parent.glob("anvil-*/bin/anvil")):
        if os.access(native, os.X_OK):
            return str(native)
    return str(wrapper)


def rpc(client: httpx.Client, url: str, method: str, *params: Any) -> Any:
    body = client.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    ).json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


def start_anvil(port: int, log_path: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    binary = anvil_binary()
    if binary is None:
        raise RuntimeError("Anvil is not installed (scripts/install-tools)")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                return proc, [a.lower() for a in rpc(client, url, "eth_accounts")]
            except (httpx.HTTPError, ValueError, KeyError):
                time.sleep(0.05)
    proc.kill()
    raise RuntimeError("anvil did not start")


def stop_all(lg: Any, target: Any, anvil: subprocess.Popen[bytes]) -> None:
    """End a chain scenario's run: its clients, its server (if it started), its node."""
    lg.close()
    if target is not None:
        target.stop()
    anvil.terminate()
    anvil.wait(10)


def send_transfers(url: str, sender: str, seconds: float) -> dict[str, float]:
    """A transfer to the watched address every 100 ms; tx hash -> block appearance (ms)."""
    mined: dict[str, float] = {}
    with httpx.Client(timeout=10) as client:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            due = start + n * INTERVAL
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tx = {"from": sender, "to": WATCHED, "value": hex(10**15 + n)}
            tx_hash = rpc(client, url, "eth_sendTransaction", tx)
            mined[str(tx_hash).lower()] = time.time() * 1000
            n += 1
    return mined


def run_chain(
    lg: Any, sizes: Any, rtserver: Callable[..., Any], work: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    from benchmarks.run import Window, free_port, percentile

    modes = []
    for mode in ("polling", "ws_url"):
        port = free_port()
        anvil, accounts = start_anvil(port, work / "logs" / f"anvil-{mode}.log")
        target = None
        try:
            chain = (
                "[[chains]]\n"
                f'chain_type = "{CHAIN_TYPE}"\nchain_id = {CHAIN_ID}\n'
                f'rpc_urls = ["http://127.0.0.1:{port}"]\npoll_interval = {POLL_INTERVAL}\n'
            )
            if mode == "ws_url":
                chain += f'ws_url = "ws://127.0.0.1:{port}"\n'
            data = work / "data" / f"chain-{mode}"
            subprocess.run(["rm", "-rf", str(data)], check=True)
            target = rtserver(data, config=chain, tag=f"chain-{mode}")
            key = target.make_apps(1, address=WATCHED, chain_type=CHAIN_TYPE)[0]
            lg.connect(target.ws_url, [key], 1, ack=True, log_tx=True)
            time.sleep(POLL_INTERVAL + 0.5)  # let the watcher reach the head
            lg.reset()
            with Window(target.proc) as window:
                mined = send_transfers(f"http://127.0.0.1:{port}", accounts[0], sizes.chain_seconds)
                deadline = time.monotonic() + POLL_INTERVAL + 5
                while time.monotonic() < deadline and lg.counts()["transactions"] < len(mined):
                    time.sleep(0.1)
                stats = lg.stats()
            received = {h.lower(): t for h, t in stats["tx_log"] if h}
            lat = [received[h] - t for h, t in mined.items() if h in received]
            bound = 100 if mode == "ws_url" else POLL_INTERVAL * 1000 + 100
            p99 = percentile(lat, 0.99)
            modes.append(
                {
                    "mode": mode,
                    "poll_interval_s": POLL_INTERVAL,
                    "sent": len(mined),
                    "received": len(lat),
                    "p50_ms": round(percentile(lat, 0.5) or 0, 1) if lat else None,
                    "p99_ms": round(p99, 1) if p99 is not None else None,
                    "max_ms": round(max(lat), 1) if lat else None,
                    "target_ms": bound,
                    "target_met": p99 is not None and p99 <= bound and len(lat) == len(mined),
                    **window.as_dict(),
                    "command": target.command,
                    "config": chain,
                }
            )
            log(
                f"chain {mode}: {len(lat)}/{len(mined)} received, p50 {modes[-1]['p50_ms']} ms, p99 {modes[-1]['p99_ms']} ms"
            )
        finally:
            stop_all(lg, target, anvil)
    return {
        "description": (
            f"Anvil (automine: one block per transaction) receives a transfer to the watched "
            f"address every {int(INTERVAL * 1000)} ms for {sizes.chain_seconds:g} s; rtserver follows it by "
            f"polling every {POLL_INTERVAL:g} s, or with `ws_url` (newHeads). Latency = the client's "
            "receipt of the `transaction` push - the moment `eth_sendTransaction` returned (the "
            "block is mined by then). One client, ACKing."
        ),
        "modes": modes,
        "command": None,
    }

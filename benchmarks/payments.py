"""Scenario 7, payment status: 10,000 status sockets watching 10,000 proposals; a chain
transfer settles some of them, one every 100 ms; settlement-to-frame latency.

Anvil runs with automine (one block per transaction, mined before
``eth_sendTransaction`` answers), and rtserver follows it with a ``ws_url`` (newHeads),
so the moment the answer arrives is when the settling block appeared on the node.
Each proposal has its own receiving address; the load generator holds one
``/ws/transactions/{txId}`` socket per proposal and logs every ``settlement`` message's
``transactionId`` with its receive time. Latency = receive time - block appearance, on
the same host clock: the watcher's newHeads round trip, the block fetch, the settlement
commit (proposal row, state-topic message, in the watcher's transaction), the fan-out.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks.chain import CHAIN_ID, CHAIN_TYPE, rpc, start_anvil, stop_all

#: Seconds between two settling transfers.
INTERVAL = 0.1
#: The exact amount every proposal asks for, wei.
AMOUNT = 10**15
#: Receiving addresses: one per proposal, far from the precompiles.
_ADDRESS_BASE = 0xBE00000000000000000000000000000000000000


def receiving_address(i: int) -> str:
    return f"0x{_ADDRESS_BASE + i:040x}"


def create_proposals(base: str, key: str, n: int) -> list[str]:
    """``n`` pending proposals (8 concurrent requests); their transaction ids, in order."""
    headers = {"Authorization": f"Bearer {key}"}

    def one(i: int) -> str:
        body = {
            "chainType": CHAIN_TYPE,
            "chainId": CHAIN_ID,
            "token": "native",
            "amount": str(AMOUNT),
            "receivingAddress": receiving_address(i),
            "expiresIn": 3600,
        }
        with httpx.Client(base_url=base, timeout=60) as client:
            r = client.post("/api/identipay/v1/proposals", json=body, headers=headers)
            r.raise_for_status()
            return str(r.json()["transactionId"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def settle(url: str, sender: str, count: int) -> dict[int, float]:
    """Pay proposals 0..count-1 exactly, one every 100 ms; index -> block appearance (ms)."""
    mined: dict[int, float] = {}
    with httpx.Client(timeout=10) as client:
        start = time.monotonic()
        for i in range(count):
            delay = start + i * INTERVAL - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tx = {"from": sender, "to": receiving_address(i), "value": hex(AMOUNT)}
            rpc(client, url, "eth_sendTransaction", tx)
            mined[i] = time.time() * 1000
    return mined


def run_payments(
    lg: Any, sizes: Any, rtserver: Callable[..., Any], work: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    from benchmarks.run import ADMIN_TOKEN, Window, free_port, percentile

    sockets, settlements = sizes.payment_sockets, sizes.payment_settlements
    port = free_port()
    anvil, accounts = start_anvil(port, work / "logs" / "anvil-payments.log")
    target = None
    try:
        config = (
            "[payments]\n"
            # Every load-generator socket comes from 127.0.0.1.
            f"max_connections_per_ip = {sockets + 1000}\n"
            "[[chains]]\n"
            f'chain_type = "{CHAIN_TYPE}"\nchain_id = {CHAIN_ID}\n'
            f'rpc_urls = ["http://127.0.0.1:{port}"]\n'
            f'ws_url = "ws://127.0.0.1:{port}"\npoll_interval = 1.0\n'
        )
        data = work / "data" / "payments"
        subprocess.run(["rm", "-rf", str(data)], check=True)
        target = rtserver(data, config=config, tag="payments")
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        created = target.http.post("/admin/v1/apps", json={"name": "shop"}, headers=admin)
        created.raise_for_status()
        key = created.json()["api_key"]
        t = time.monotonic()
        ids = create_proposals(target.base, key, sockets)
        create_s = time.monotonic() - t
        ws_base = target.base.replace("http://", "ws://") + "/ws/transactions/"
        connected = lg.connect(ws_base, [], sockets, paths=ids, log_tx=True, timeout=300.0)
        log(f"payments: {len(ids)} proposals in {create_s:.1f} s, {connected['connected']} sockets")
        lg.reset()
        with Window(target.proc) as window:
            mined = settle(f"http://127.0.0.1:{port}", accounts[0], settlements)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and lg.counts()["transactions"] < len(mined):
                time.sleep(0.1)
            stats = lg.stats()
        received = {tx_id: at for tx_id, at in stats["tx_log"] if tx_id}
        lat = [received[ids[i]] - at for i, at in mined.items() if ids[i] in received]
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        extra = stats["transactions"] - len(lat)  # settlements beyond one per settled socket
        log(f"payments: {len(lat)}/{len(mined)} settlements, p50 {p50} ms, p99 {p99} ms")
        return {
            "description": (
                f"{sockets:,} proposals, each with its own receiving address and one status "
                f"socket (`/ws/transactions/{{txId}}`, {sockets:,} sockets open); Anvil "
                f"(automine) mines an exact transfer to one of them every "
                f"{int(INTERVAL * 1000)} ms, {settlements} in all; rtserver follows with "
                "`ws_url` (newHeads). Latency = the socket's receipt of `settlement` - the "
                "moment `eth_sendTransaction` returned (the block is mined by then)."
            ),
            "sockets": sockets,
            "connected": connected["connected"],
            "connect_s": connected["connect_s"],
            "create_proposals_s": round(create_s, 1),
            "settled": len(mined),
            "received": len(lat),
            "unexpected_settlements": extra,
            "p50_ms": round(p50, 1) if p50 is not None else None,
            "p99_ms": round(p99, 1) if p99 is not None else None,
            "max_ms": round(max(lat), 1) if lat else None,
            **window.as_dict(),
            "command": target.command,
            "config": config,
        }
    finally:
        stop_all(lg, target, anvil)

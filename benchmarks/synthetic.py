"""Synthetic benchmark events, shared by the rtserver injector and the ``websockets`` peer.

An event is a native transfer touching the watched address; its injection time (Unix
nanoseconds, this host's clock) rides in ``method_call`` as ``bench:<ns>``, which a
``transaction`` push carries as ``data.methodCall``, so the load generator computes
latency = receive time - injection time on the same clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from rtserver.records import TransactionRecord

CHAIN_TYPE = "ethereum"
CHAIN_ID = 1
#: The address every benchmark app watches.
WATCHED = "0x00000000000000000000000000000000000be4c5"
COUNTERPARTY = "0x00000000000000000000000000000000000c0ffe"

_RUN = int.from_bytes(os.urandom(6), "big")


def make_event(n: int, address: str = WATCHED) -> TransactionRecord:
    now_ns = time.time_ns()
    height = 30_000_000 + n // 100
    return TransactionRecord(
        chain_type=CHAIN_TYPE,
        chain_id=CHAIN_ID,
        tx_hash=f"0x{_RUN:012x}{n:052x}",
        height=height,
        tx_time=now_ns // 1_000_000_000,
        block_hash=f"0x{_RUN:012x}{height:052x}",
        sender=COUNTERPARTY,
        fee_payer=COUNTERPARTY,
        receiver=address,
        transfer_type="native",
        amount="1000000000000000000",
        symbol="ETH",
        decimals=18,
        tx_status="success",
        tx_fee="21000000000000",
        gas_limit="21000",
        gas_used="21000",
        gas_price="1000000000",
        max_fee_per_gas="2000000000",
        max_priority_fee_per_gas="1000000000",
        nonce=str(n),
        method_call=f"bench:{now_ns}",
    )


def pacing(count: int, rate: float, batch_max: int, min_gap: float) -> Iterator[tuple[float, int]]:
    """``(offset_seconds, n)`` steps: inject ``n`` events at ``offset`` after the start.

    Low rates give one event per step at ``1/rate`` spacing; high rates group the events
    due within ``min_gap`` into one step (like a block), at most ``batch_max`` each.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    per_step = max(1, min(batch_max, round(rate * min_gap)))
    i = 0
    while i < count:
        n = min(per_step, count - i)
        yield (i / rate, n)
        i += n

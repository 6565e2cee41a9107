"""DEX pools: matched transactions kept as each pool's recent trades.

Pools are watched like addresses (the watcher's matches carry ``pool_address``); the
:class:`PoolTradeSink` files them into the pool's FIFO in the watcher's own transaction,
so a pool's trades are exactly the committed matches. A trade is kept as it is served:
the front-end that serves pool trades gives the sink its naming at start-up.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from rtserver.events import TransactionMatch
from rtserver.matching import AddressIndex
from rtserver.records import TransactionRecord
from rtserver.store import pools


class PoolTradeSink:
    """A :class:`~rtserver.events.MatchSink` for pool matches (others are ignored).

    ``render`` names a trade as the pool API serves it (pure, a JSON-ready dict); it is
    called once per kept trade, on the writer thread, and its JSON text is what the pool
    keeps. At most ``keep`` trades stay per pool.
    """

    def __init__(self, keep: int, render: Callable[[TransactionRecord], dict[str, Any]]) -> None:
        self._keep = keep
        self._render = render

    def stage(self, conn: sqlite3.Connection, matches: Sequence[TransactionMatch]) -> object:
        enabled = None
        for match in matches:
            if match.pool_address is None:
                continue
            if enabled is None:
                enabled = {
                    (p.chain_type, p.chain_id, p.address)
                    for p in pools.list_pools(conn, enabled_only=True)
                }
            record = match.record
            if (record.chain_type, record.chain_id, match.pool_address) in enabled:
                item = json.dumps(self._render(record), separators=(",", ":"))
                pools.record_trade(conn, match.pool_address, record, item, self._keep)
        return None

    def publish(self, staged: object) -> None:
        return None


def load_pools(index: AddressIndex, enabled: Sequence[pools.Pool]) -> None:
    """Make ``enabled`` the pools the index matches (replacing any earlier set)."""
    index.set_pools((pool.chain_type, pool.address) for pool in enabled)

"""The core: the long-lived objects every concern shares, built once per server.

Protocol front-ends and background services receive the :class:`Core`; it knows no wire
format and imports no protocol module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from rtserver.config import Config
from rtserver.connections import ConnectionRegistry
from rtserver.events import MatchSinks
from rtserver.matching import AddressIndex
from rtserver.metrics import Metrics
from rtserver.records import TransactionRecord
from rtserver.store import Store, watched
from rtserver.usage import UsageCounter

#: A readiness probe: returns None when ready, else a short reason.
ReadinessCheck = Callable[[], Awaitable[str | None]]


class TransactionSource(Protocol):
    """A chain that can be asked for one transaction (the V2 detail's origin fetch)."""

    async def fetch_transaction(self, tx_hash: str) -> TransactionRecord | None:
        """The normalized record of ``tx_hash`` as the chain has it now, None if unknown.

        Raises :class:`rtserver.exceptions.RtserverError` when the chain cannot be asked.
        """
        ...


@dataclass(eq=False)
class Core:
    config: Config
    store: Store
    metrics: Metrics
    connections: ConnectionRegistry
    #: Who watches which address (apps' lists and connections' subscriptions).
    watched: AddressIndex = field(default_factory=AddressIndex)
    #: Where the watchers hand matches; delivery and pools add their sinks at start.
    match_sink: MatchSinks = field(default_factory=MatchSinks)
    #: Configured chains by ``(chain_type, chain_id)``, registered by their watchers.
    transaction_sources: dict[tuple[str, int], TransactionSource] = field(default_factory=dict)
    usage: UsageCounter = field(default_factory=UsageCounter)
    started_at: float = field(default_factory=time.time)
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    @classmethod
    async def create(cls, config: Config, store: Store) -> Core:
        """Build the core and load its in-memory state (the watch lists) from the store."""
        metrics = Metrics()
        metrics.watch_store(store.stats)
        core = cls(config, store, metrics, ConnectionRegistry(metrics))
        core.watched.load(await store.read(watched.all_watched))
        core.readiness_checks["database"] = core._database_ready
        return core

    async def _database_ready(self) -> str | None:
        try:
            await self.store.check_writable()
        except Exception as exc:
            return f"database not writable: {exc}"
        return None

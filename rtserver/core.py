"""The core: the long-lived objects every concern shares, built once per server.

Protocol front-ends and background services receive the :class:`Core`; it knows no wire
format and imports no protocol module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from rtserver.config import Config
from rtserver.connections import ConnectionRegistry
from rtserver.matching import AddressIndex
from rtserver.metrics import Metrics
from rtserver.store import Store, watched

#: A readiness probe: returns None when ready, else a short reason.
ReadinessCheck = Callable[[], Awaitable[str | None]]


@dataclass(eq=False)
class Core:
    config: Config
    store: Store
    metrics: Metrics
    connections: ConnectionRegistry
    #: Who watches which address (apps' lists and connections' subscriptions).
    watched: AddressIndex = field(default_factory=AddressIndex)
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

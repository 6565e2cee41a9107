"""The core: the long-lived objects every concern shares, built once per server.

Protocol front-ends and background services receive the :class:`Core`; it knows no wire
format and imports no protocol module.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar

import trio

from rtserver.clock import Clock
from rtserver.config import Config
from rtserver.connections import CREDENTIALS_REVOKED, ConnectionRegistry
from rtserver.events import MatchSinks
from rtserver.exceptions import AuthenticationError
from rtserver.logs import fields
from rtserver.matching import AddressIndex
from rtserver.metrics import Metrics
from rtserver.pools import load_pools
from rtserver.records import TransactionRecord
from rtserver.store import Store, apps, pools, wallets, watched
from rtserver.usage import UsageCounter

log = logging.getLogger("rtserver.core")

#: Longest API key looked up (ours are 47 characters): no hashing of huge headers.
_MAX_API_KEY_LENGTH = 256

_Part = TypeVar("_Part")

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
    #: Where every timestamp and deadline of this server comes from (rtserver.clock).
    clock: Clock
    connections: ConnectionRegistry
    usage: UsageCounter
    #: Unix seconds.
    started_at: float
    #: Who watches which address (apps' lists and connections' subscriptions).
    watched: AddressIndex = field(default_factory=AddressIndex)
    #: Where the watchers hand matches; delivery and pools add their sinks at start.
    match_sink: MatchSinks = field(default_factory=MatchSinks)
    #: Configured chains by ``(chain_type, chain_id)``, registered by their watchers.
    transaction_sources: dict[tuple[str, int], TransactionSource] = field(default_factory=dict)
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    #: The server's one instance of each part built on the core (the delivery core,
    #: payments), by its class: how a component finds another's. Held by the core, so
    #: they live and die with it (a module-level registry would keep every core alive).
    parts: dict[type, object] = field(default_factory=dict)
    #: Apps known to be revoked: watch lists out of the index, connections closed.
    _revoked_apps: set[str] = field(default_factory=set)

    def part(self, kind: type[_Part]) -> _Part | None:
        """The server's one instance of ``kind`` in :attr:`parts`, None before it is built."""
        found = self.parts.get(kind)
        return found if isinstance(found, kind) else None

    @classmethod
    async def create(cls, config: Config, store: Store, clock: Clock | None = None) -> Core:
        """Build the core and load its in-memory state (the watch lists) from the store.

        ``clock`` defaults to :meth:`Clock.system`; tests inject :meth:`Clock.following_trio`.
        """
        clock = clock or Clock.system()
        metrics = Metrics()
        metrics.watch_store(store.stats)
        core = cls(
            config,
            store,
            metrics,
            clock,
            ConnectionRegistry(metrics, clock),
            UsageCounter(clock),
            started_at=clock.time(),
        )
        core.watched.load(await store.read(watched.all_watched))
        core.watched.load_safes(await store.read(wallets.all_safes), replace=True)
        await core.refresh_index()
        await core.sync_revocations()
        core.readiness_checks["database"] = core._database_ready
        return core

    async def refresh_index(self) -> None:
        """Bring the pools and users' Safes in the in-memory index in step with changes
        other processes made (the CLI); the API's own changes reach the index at once.

        A Safe registered by the API while the registry was read is never dropped: then
        the reload only adds (a Safe removed by the CLI leaves at the next reload)."""
        load_pools(
            self.watched, await self.store.read(partial(pools.list_pools, enabled_only=True))
        )
        version = self.watched.safes_version
        safes = await self.store.read(wallets.all_safes)
        self.watched.load_safes(safes, replace=version == self.watched.safes_version)

    async def run_index_refresh(
        self,
        interval: float = 5.0,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        while True:
            await trio.sleep(interval)
            await self.refresh_index()

    def app_revoked(self, app_id: str) -> None:
        """Apply a revocation now: the app's watch list leaves the index and every open
        connection of the app is closed with 1008. Idempotent.

        HTTP requests need nothing here: every request authenticates against the store.
        """
        if app_id in self._revoked_apps:
            return
        self._revoked_apps.add(app_id)
        self.watched.remove_app(app_id)  # walks the whole index: once per app
        self.connections.close_app(app_id, CREDENTIALS_REVOKED, "API key revoked")

    def check_followed(self, app_id: str, chain_type: str, added: int) -> bool:
        """Whether a configured chain follows ``chain_type``. If none does, ``added``
        addresses just watched for it can never match: say so (a warning line and
        ``rtserver_watched_unfollowed_total``), since the caller's answer stays a success."""
        if any(chain.chain_type == chain_type for chain in self.config.chains):
            return True
        if added:
            self.metrics.watched_unfollowed.labels(chain_type).inc(added)
            followed = sorted({chain.chain_type for chain in self.config.chains}) or ["none"]
            log.warning(
                "app %s watches %d address(es) on chain type %r, which no configured chain"
                " follows (followed: %s): they will never match",
                app_id,
                added,
                chain_type,
                ", ".join(followed),
                extra=fields(app=app_id, chain_type=chain_type, addresses=added),
            )
        return False

    async def authenticate_app(self, api_key: str) -> apps.App:
        """The active app that owns ``api_key`` (every protocol's app keys, however
        they carry them); :class:`AuthenticationError` for a missing, unknown, overlong
        or revoked key."""
        if not api_key or len(api_key) > _MAX_API_KEY_LENGTH:
            raise AuthenticationError("invalid API key")
        app = await self.store.read(apps.authenticate, api_key)
        if app is None:
            raise AuthenticationError("invalid API key")
        return app

    def is_revoked(self, app_id: str) -> bool:
        """Whether this process knows ``app_id`` to be revoked (a connection admitted
        just before the revocation checks this once it is registered)."""
        return app_id in self._revoked_apps

    async def sync_revocations(self) -> None:
        """Apply the revocations made by other processes (the CLI on the same database)."""
        for app_id in await self.store.read(apps.revoked_app_ids):
            self.app_revoked(app_id)

    async def run_revocation_watch(
        self,
        interval: float = 1.0,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Service: every ``interval`` seconds, apply revocations made by the CLI.

        The admin API applies its own at once (:meth:`app_revoked`); the CLI writes the
        database only, so this poll (one small query) is how a running server learns.
        """
        task_status.started()
        while True:
            await trio.sleep(interval)
            await self.sync_revocations()

    async def _database_ready(self) -> str | None:
        try:
            await self.store.check_writable()
        except Exception as exc:
            return f"database not writable: {exc}"
        return None

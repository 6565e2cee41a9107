"""Chain watchers: one background service per configured ``[[chains]]`` entry.

:func:`watcher_services` builds them. For each chain it also registers, on the core:

* ``core.transaction_sources[(chain_type, chain_id)]``: an object with
  ``async fetch_transaction(tx_hash) -> TransactionRecord | None`` (the origin fetch of
  the V2 detail endpoint; None for a hash the node does not know);
* ``core.readiness_checks["chain <chain_type>:<chain_id>"]``: not ready before the first
  head, when lagging more than ``max_lag_blocks`` or when the RPC failed for a while.

The watcher core is chain-agnostic (:mod:`._watcher`); a chain family plugs in through
:class:`ChainAdapter` (:mod:`._adapter`). EVM is the only family so far.
"""

from __future__ import annotations

import logging

from rtserver.addresses import chain_family
from rtserver.chains._adapter import Block, BlockHeader, ChainAdapter, RecordFilter
from rtserver.chains._watcher import ChainWatcher
from rtserver.chains.evm import EvmAdapter
from rtserver.core import Core
from rtserver.services import Service

log = logging.getLogger("rtserver.chains")

__all__ = [
    "Block",
    "BlockHeader",
    "ChainAdapter",
    "ChainWatcher",
    "EvmAdapter",
    "RecordFilter",
    "watcher_services",
]


def watcher_services(core: Core) -> tuple[Service, ...]:
    """One watcher service per configured chain (none when no chain is configured)."""
    services: list[Service] = []
    for chain in core.config.chains:
        # Config validation admits only families with an adapter (EVM so far).
        assert chain_family(chain.chain_type) == "evm", chain.chain_type
        adapter = EvmAdapter(chain, clock=core.clock, metrics=core.metrics, store=core.store)
        watcher = ChainWatcher(core, chain, adapter)
        core.transaction_sources[(chain.chain_type, chain.chain_id)] = adapter
        core.readiness_checks[f"chain {watcher.label}"] = watcher.readiness
        services.append(Service(f"chain {watcher.label}", watcher.run))
    return tuple(services)

"""Users' Safe balances on the configured chains: read in batches, cached, re-read on change.

Per ``[[chains]]`` entry the assets are the native coin and the ``[[wallet.tokens]]`` of
that chain. Reads go through a JSON-RPC client of their own (the chain's URLs, retries
and failover), never through the watcher's, so a slow balance read cannot delay blocks.

Guarantees:

* :meth:`WalletBalances.current` answers from the cache while it is younger than
  ``wallet.balance_cache_ttl``, else reads at the node's head (block number first, then
  the balances at that block: one consistent state); concurrent reads of a chain are
  coalesced into one read in flight at a time; at most ``wallet.balance_cache_max``
  accounts are cached (least recently used leave first);
* :meth:`WalletBalances.changes` re-reads accounts at the block of the transfer that
  touched them and says what they were before: the cached balances when those were read
  at an earlier block, else a read at the block before. Never arithmetic on deltas;
* the cache only moves forward: a read at an older block never replaces a newer one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from rtserver.chains.evm import NATIVE_SYMBOLS, Asset, BalanceReader, Balances, RpcClient
from rtserver.clock import Clock
from rtserver.config import Config
from rtserver.exceptions import ChainError
from rtserver.metrics import Metrics

__all__ = ["Asset", "BalanceChange", "Balances", "WalletBalances"]


@dataclass(frozen=True, slots=True)
class BalanceChange:
    """An account's balances before and after a transfer (``previous`` None: unknown)."""

    account: str
    previous: Balances | None
    current: Balances


@dataclass(slots=True)
class _Cached:
    balances: Balances
    read_at: float


#: Most accounts one coalesced read asks for (each costs one call per asset).
_READ_BATCH = 200


class _ReadBatch:
    """Accounts read together by one coalesced read, and its outcome."""

    __slots__ = ("accounts", "done", "error", "result")

    def __init__(self, accounts: set[str]) -> None:
        self.accounts = accounts
        self.done = trio.Event()
        self.result: dict[str, Balances] | None = None
        self.error: ChainError | None = None

    def outcome(self, account: str) -> Balances:
        """The account's balances, or the read's ChainError (also when the reading
        caller was cancelled before it finished: the caller may ask again)."""
        if self.result is not None and account in self.result:
            return self.result[account]
        raise self.error or ChainError("the balance read was interrupted; ask again")


class WalletBalances:
    """Balance readers for every configured chain, and one bounded cache."""

    def __init__(self, config: Config, clock: Clock, metrics: Metrics | None = None) -> None:
        self._clock = clock
        self._ttl = config.wallet.balance_cache_ttl
        self._max = config.wallet.balance_cache_max
        self._readers: dict[int, BalanceReader] = {}
        for chain in config.chains:
            assets = [Asset(None, NATIVE_SYMBOLS.get(chain.chain_type, "ETH"), 18)]
            assets += [
                Asset(t.address.lower(), t.symbol, t.decimals)
                for t in config.wallet.tokens
                if t.chain_id == chain.chain_id
            ]
            rpc = RpcClient(
                chain.rpc_urls,
                timeout=chain.rpc_timeout,
                chain=f"{chain.chain_type}:{chain.chain_id}",
                clock=clock,
                metrics=metrics,
                attempts=3,
            )
            self._readers[chain.chain_id] = BalanceReader(rpc, assets)
        self._cache: OrderedDict[tuple[int, str], _Cached] = OrderedDict()
        #: Per chain: the accounts waiting for the next read, and the lock held by the
        #: read in flight (see :meth:`current`).
        self._gathering: dict[int, _ReadBatch] = {}
        self._in_flight: dict[int, trio.Lock] = {}

    async def aclose(self) -> None:
        for reader in self._readers.values():
            await reader.rpc.aclose()

    def assets(self, chain_id: int) -> tuple[Asset, ...]:
        """What a balance list of the chain holds, in order (KeyError: not configured)."""
        return self._readers[chain_id].assets

    def forget(self, chain_id: int, account: str) -> None:
        self._cache.pop((chain_id, account), None)

    async def current(self, chain_id: int, account: str) -> Balances:
        """The account's balances now (cached, see the module doc); ChainError if the
        node cannot be read.

        Reads of one chain are coalesced: one read (head, then one JSON-RPC batch) is in
        flight per chain, and the accounts asked for meanwhile (up to ``_READ_BATCH``)
        are read together by the next one. So a thousand clients connecting at once cost
        a few round trips, not two each.
        """
        key = (chain_id, account)
        cached = self._cache.get(key)
        if cached is not None and self._clock.monotonic() - cached.read_at < self._ttl:
            self._cache.move_to_end(key)
            return cached.balances
        gathering = self._gathering.get(chain_id)
        if gathering is not None and len(gathering.accounts) < _READ_BATCH:
            gathering.accounts.add(account)
            await gathering.done.wait()
            return gathering.outcome(account)
        gathering = self._gathering[chain_id] = _ReadBatch({account})
        try:
            # While the read in flight finishes, later callers join this batch.
            async with self._in_flight.setdefault(chain_id, trio.Lock()):
                if self._gathering.get(chain_id) is gathering:
                    del self._gathering[chain_id]
                reader = self._readers[chain_id]
                head = await reader.head()
                gathering.result = await reader.read(sorted(gathering.accounts), head)
            for read_account, balances in gathering.result.items():
                self._remember(chain_id, read_account, balances)
            return gathering.outcome(account)
        except ChainError as exc:
            gathering.error = exc
            raise
        finally:
            if self._gathering.get(chain_id) is gathering:
                del self._gathering[chain_id]
            gathering.done.set()

    async def changes(
        self, chain_id: int, touched: Sequence[tuple[str, int, bool]]
    ) -> list[BalanceChange]:
        """Re-read each ``(account, block, after_reorg)`` at that block, with what it had
        before (see the module doc). After a reorg, "before" is the cache even when it
        was read at that very block number: that block was on the fork that is gone.
        One batch per distinct block; ChainError if the node fails."""
        reader = self._readers[chain_id]
        by_block: dict[int, list[str]] = {}
        before_block: dict[int, list[str]] = {}
        previous: dict[str, Balances | None] = {}
        for account, block, after_reorg in touched:
            by_block.setdefault(block, []).append(account)
            cached = self._cache.get((chain_id, account))
            if cached is not None and (
                cached.balances.block < block or (after_reorg and cached.balances.block <= block)
            ):
                previous[account] = cached.balances
            elif block > 0:
                before_block.setdefault(block - 1, []).append(account)
            else:
                previous[account] = None
        current: dict[str, Balances] = {}
        for block, accounts in by_block.items():
            current.update(await reader.read(accounts, block))
        for block, accounts in before_block.items():
            previous.update(await reader.read(accounts, block))
        out = []
        for account, _, _ in touched:
            self._remember(chain_id, account, current[account])
            out.append(BalanceChange(account, previous.get(account), current[account]))
        return out

    def _remember(self, chain_id: int, account: str, balances: Balances) -> None:
        key = (chain_id, account)
        cached = self._cache.get(key)
        if cached is not None and cached.balances.block > balances.block:
            return  # a newer read is cached: keep it
        self._cache[key] = _Cached(balances, self._clock.monotonic())
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)

"""The in-memory index of watched addresses, for O(addresses in a transaction) matching.

Four kinds of watcher share it: apps (their persistent address lists, loaded from SQLite
at start and kept in step by the address API), WebSocket connections (temporary
``subscribe`` commands, gone when the connection closes), DEX pools, and pending payment
proposals (their receiving addresses, loaded at start by ``rtserver.payments`` and kept
in step by it: added before a proposal is stored, removed once it leaves pending). Addresses are kept in normal
form (:func:`rtserver.addresses.normalize_address`); lookups are dict hits per address,
so the number of watched addresses does not slow a block down.

All methods run on the event loop (no locking); the index is read by the watcher and
written by API handlers, both on the loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rtserver.addresses import normalize_address
from rtserver.events import TransactionMatch
from rtserver.records import TransactionRecord

_Key = tuple[str, str]  # (chain_type, normalized address)


@dataclass
class MatchResult:
    """Who watches a transaction's addresses: listen addresses per app and per connection."""

    apps: dict[str, list[str]] = field(default_factory=dict)
    connections: dict[str, list[str]] = field(default_factory=dict)
    #: Enabled DEX pools among the addresses.
    pools: list[str] = field(default_factory=list)
    #: Users' Safes among the addresses, per ``(chain_id, user key)``.
    safes: dict[tuple[int, str], list[str]] = field(default_factory=dict)
    #: Receiving addresses per pending payment proposal (transaction id).
    proposals: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.apps or self.connections or self.pools or self.safes or self.proposals)

    def matches(
        self, record: TransactionRecord, is_reorg_resend: bool = False
    ) -> list[TransactionMatch]:
        """One :class:`TransactionMatch` of ``record`` per owner: app, connection, pool."""
        found = [
            TransactionMatch(record, tuple(addresses), is_reorg_resend, app_id=app_id)
            for app_id, addresses in self.apps.items()
        ]
        found.extend(
            TransactionMatch(record, tuple(addresses), is_reorg_resend, connection_id=conn_id)
            for conn_id, addresses in self.connections.items()
        )
        found.extend(
            TransactionMatch(record, (pool,), is_reorg_resend, pool_address=pool)
            for pool in self.pools
        )
        # A Safe is registered on one chain: the same address on another chain of the
        # same type is someone else's account.
        found.extend(
            TransactionMatch(record, tuple(addresses), is_reorg_resend, user_key=user_key)
            for (chain_id, user_key), addresses in self.safes.items()
            if chain_id == record.chain_id
        )
        found.extend(
            TransactionMatch(record, tuple(addresses), is_reorg_resend, proposal_id=proposal)
            for proposal, addresses in self.proposals.items()
        )
        return found


class AddressIndex:
    def __init__(self) -> None:
        self._apps: dict[_Key, set[str]] = {}
        self._connections: dict[_Key, set[str]] = {}
        self._by_connection: dict[str, set[_Key]] = {}
        self._pools: set[_Key] = set()
        #: Users' Safes: (chain_type, address) → {(chain_id, user key)}.
        self._safes: dict[_Key, set[tuple[int, str]]] = {}
        #: Counts changes to the Safes, so a reload from the store can tell whether the
        #: index changed while it read (it then only adds, never removes).
        self.safes_version = 0
        self._proposals: dict[_Key, set[str]] = {}

    # -- app watch lists ----------------------------------------------------------------

    def add(self, app_id: str, chain_type: str, address: str) -> None:
        self._apps.setdefault(_key(chain_type, address), set()).add(app_id)

    def remove(self, app_id: str, chain_type: str, address: str) -> None:
        _discard(self._apps, _key(chain_type, address), app_id)

    def load(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Add ``(app_id, chain_type, address)`` rows (the persisted watch lists)."""
        for app_id, chain_type, address in rows:
            self.add(app_id, chain_type, address)

    def remove_app(self, app_id: str) -> None:
        for key in [k for k, owners in self._apps.items() if app_id in owners]:
            self.remove(app_id, *key)

    def watches(self, chain_type: str, address: str) -> bool:
        """Whether any app or connection watches ``address`` on ``chain_type``."""
        key = _key(chain_type, address)
        return (
            key in self._apps
            or key in self._connections
            or key in self._pools
            or key in self._safes
            or key in self._proposals
        )

    # -- users' Safes ------------------------------------------------------------------

    def add_safe(self, user_key: str, chain_type: str, chain_id: int, address: str) -> None:
        self._safes.setdefault(_key(chain_type, address), set()).add((chain_id, user_key))
        self.safes_version += 1

    def remove_safe(self, user_key: str, chain_type: str, chain_id: int, address: str) -> None:
        key = _key(chain_type, address)
        owners = self._safes.get(key)
        if owners is not None:
            owners.discard((chain_id, user_key))
            if not owners:
                del self._safes[key]
        self.safes_version += 1

    def load_safes(self, rows: Iterable[tuple[str, str, int, str]], *, replace: bool) -> None:
        """Add ``(user key, chain_type, chain_id, address)`` rows (the registry); with
        ``replace``, Safes not among them leave the index."""
        safes: dict[_Key, set[tuple[int, str]]] = {} if replace else self._safes
        for user_key, chain_type, chain_id, address in rows:
            safes.setdefault(_key(chain_type, address), set()).add((chain_id, user_key))
        self._safes = safes
        self.safes_version += 1

    # -- DEX pools ---------------------------------------------------------------------

    def add_pool(self, chain_type: str, address: str) -> None:
        self._pools.add(_key(chain_type, address))

    def remove_pool(self, chain_type: str, address: str) -> None:
        self._pools.discard(_key(chain_type, address))

    def set_pools(self, pools: Iterable[tuple[str, str]]) -> None:
        """Replace every pool with ``(chain_type, address)`` pairs (after an admin change)."""
        self._pools = {_key(chain_type, address) for chain_type, address in pools}

    # -- payment proposals ----------------------------------------------------------------

    def add_proposal(self, transaction_id: str, chain_type: str, address: str) -> None:
        """Watch a pending proposal's receiving address (on every chain id of the type:
        the settlement sink checks the chain id)."""
        self._proposals.setdefault(_key(chain_type, address), set()).add(transaction_id)

    def remove_proposal(self, transaction_id: str, chain_type: str, address: str) -> None:
        """Stop watching for the proposal (it left pending, or was never stored). Idempotent."""
        _discard(self._proposals, _key(chain_type, address), transaction_id)

    def proposal_count(self) -> int:
        """Pending proposals watched (metrics, tests)."""
        return sum(len(owners) for owners in self._proposals.values())

    # -- connection subscriptions -------------------------------------------------------

    def subscribe(self, connection_id: str, chain_type: str, address: str) -> None:
        key = _key(chain_type, address)
        self._connections.setdefault(key, set()).add(connection_id)
        self._by_connection.setdefault(connection_id, set()).add(key)

    def unsubscribe(self, connection_id: str, address: str, chain_type: str | None = None) -> None:
        """Drop one subscription, or the address on every chain when ``chain_type`` is None."""
        keys = self._by_connection.get(connection_id, set())
        for key in [k for k in keys if (chain_type is None or k[0] == chain_type)]:
            if key[1] == normalize_address(key[0], address):
                self._drop(connection_id, key)

    def drop_connection(self, connection_id: str) -> None:
        for key in list(self._by_connection.get(connection_id, ())):
            self._drop(connection_id, key)

    def _drop(self, connection_id: str, key: _Key) -> None:
        _discard(self._connections, key, connection_id)
        keys = self._by_connection.get(connection_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_connection[connection_id]

    # -- matching -------------------------------------------------------------------

    def match(self, chain_type: str, addresses: Iterable[str]) -> MatchResult:
        """Who watches any of ``addresses`` (already normalized) on ``chain_type``."""
        result = MatchResult()
        for address in addresses:
            key = (chain_type, address)
            for app_id in self._apps.get(key, ()):
                result.apps.setdefault(app_id, []).append(address)
            for connection_id in self._connections.get(key, ()):
                result.connections.setdefault(connection_id, []).append(address)
            if key in self._pools:
                result.pools.append(address)
            for owner in self._safes.get(key, ()):
                result.safes.setdefault(owner, []).append(address)
            for proposal in self._proposals.get(key, ()):
                result.proposals.setdefault(proposal, []).append(address)
        return result

    def __len__(self) -> int:
        return len(self._apps)


def _discard(owners_by_key: dict[_Key, set[str]], key: _Key, owner: str) -> None:
    """Remove ``owner`` from ``key``'s owners, and the key once it has none."""
    owners = owners_by_key.get(key)
    if owners is not None:
        owners.discard(owner)
        if not owners:
            del owners_by_key[key]


def _key(chain_type: str, address: str) -> _Key:
    return (chain_type, normalize_address(chain_type, address))

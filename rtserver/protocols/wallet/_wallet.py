"""The wallet protocol's state on the core: topics, registry changes, transactions, balances.

A user's wallet events are one history topic, ``user:<app_id>:<user_id>/wallet``. A
wallet socket is on one chain and speaks the wire format ``wallet:<chain_id>``: each
message carries one frame per chain it concerns (a transfer: its chain; a KYC change:
every chain the user has a Safe on, each naming that chain's Safe), rendered once when
the message is written, so a socket gets exactly its chain's events.

Guarantees:

* **One event path.** A transfer's ``new_transaction`` is written by :class:`WalletSink`
  in the watcher's own transaction (with the record and the checkpoint) and published
  after the commit; KYC and IBAN events are written in the transaction that changes the
  stored value, and say what the stored value was (never the caller's word).
* **Balances are re-read, never computed.** After a committed transfer touches a Safe,
  the Safe's balances are re-read at that block (``rtserver.balances``) and a
  ``balance_update`` is written for each asset whose balance differs from before. The
  re-reads wait in a queue of at most ``wallet.balance_queue_max`` Safes (a Safe waits
  once, whatever the number of its transfers); beyond it a re-read is dropped with a
  warning, and that Safe's cached balances are forgotten so the next read is fresh.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import trio

from rtserver.addresses import normalize_address
from rtserver.balances import Asset, BalanceChange, WalletBalances
from rtserver.config import ChainConfig, WalletConfig
from rtserver.core import Core
from rtserver.delivery import Delivery, FrameRender, StreamBatch, user_topic
from rtserver.events import TransactionMatch
from rtserver.exceptions import ChainError, InvalidInputError
from rtserver.protocols.wallet import _wire
from rtserver.records import TransactionRecord
from rtserver.store import wallets
from rtserver.store.streams import top as stream_top
from rtserver.store.users import UserRef
from rtserver.store.wallets import IbanChange, KycChange, Recovery, Safe, WalletUser

log = logging.getLogger("rtserver.wallet")


def wallet_topic(user: UserRef) -> str:
    """The history topic of a user's wallet events."""
    return user_topic(f"{user.key}/wallet")


def user_of_key(key: str) -> UserRef:
    """The user of a ``UserRef.key`` (user ids hold no ``:``; app ids may)."""
    app_id, _, user_id = key.rpartition(":")
    return UserRef(app_id, user_id)


@dataclass(frozen=True)
class Snapshot:
    """What a socket's initial sequence shows, read in one transaction with the topic's
    last offset (live messages up to it are covered by it)."""

    user: WalletUser | None
    records: list[TransactionRecord]
    through: int


@dataclass
class _Pending:
    block: int
    users: set[str] = field(default_factory=set)
    #: A reorg touched the Safe: what the clients were told may belong to a block that
    #: is gone, so compare with that (the cache), not with the block before.
    reorg: bool = False


class Wallet:
    """One per server: chains, assets, balances, and every change the protocol writes."""

    def __init__(self, core: Core, delivery: Delivery) -> None:
        self.core = core
        self.delivery = delivery
        self.config: WalletConfig = core.config.wallet
        self.chains: dict[int, ChainConfig] = {c.chain_id: c for c in core.config.chains}
        self.default_chain_id = self.config.default_chain_id or next(iter(self.chains), 0)
        self.balances = WalletBalances(core.config, core.clock, core.metrics)
        self._pending: dict[tuple[int, str], _Pending] = {}
        self._wake = trio.Event()

    # -- assets and transactions -------------------------------------------------------

    def assets(self, chain_id: int) -> tuple[Asset, ...]:
        """The native coin first, then the chain's listed tokens."""
        return self.balances.assets(chain_id)

    def transfers(self, record: TransactionRecord, safe: str) -> list[dict[str, Any]]:
        assets = self.assets(record.chain_id)
        tokens = {a.token: a for a in assets[1:] if a.token is not None}
        return _wire.transfers(record, safe, assets[0], tokens)

    def items(self, records: Sequence[TransactionRecord], safe: str, limit: int) -> list[Any]:
        """The wallet transactions of ``records`` (newest first), at most ``limit``."""
        out: list[Any] = []
        for record in records:
            out.extend(self.transfers(record, safe))
            if len(out) >= limit:
                break
        return out[:limit]

    # -- reads -------------------------------------------------------------------------

    async def snapshot(self, user: UserRef, chain_id: int, limit: int) -> Snapshot:
        chain_type = self.chains[chain_id].chain_type
        topic = wallet_topic(user)

        def read(conn: sqlite3.Connection) -> Snapshot:
            found = wallets.get_wallet_user(conn, user)
            safe = None if found is None else found.safe_on(chain_id)
            records = (
                []
                if safe is None
                else wallets.safe_transactions(
                    conn, chain_type, chain_id, safe.address, limit=limit
                )
            )
            position = stream_top(conn, topic)
            return Snapshot(found, records, 0 if position is None else position.offset)

        return await self.core.store.read(read)

    async def transactions(
        self, safe: Safe, limit: int, since: int | None = None, until: int | None = None
    ) -> list[Any]:
        records = await self.core.store.read(
            lambda conn: wallets.safe_transactions(
                conn,
                safe.chain_type,
                safe.chain_id,
                safe.address,
                limit=limit,
                since=since,
                until=until,
            )
        )
        return self.items(records, safe.address, limit)

    async def wallet_user(self, user: UserRef) -> WalletUser | None:
        return await self.core.store.read(wallets.get_wallet_user, user)

    # -- registry changes --------------------------------------------------------------

    def chain_type_of(self, chain_id: int) -> str:
        chain = self.chains.get(chain_id)
        if chain is None:
            raise InvalidInputError(
                f"chain {chain_id} is not configured (supported: {_ids(self.chains)})"
            )
        return chain.chain_type

    async def put_safe(
        self, user: UserRef, chain_id: int, address: str, signer_id: str, threshold: int
    ) -> Safe:
        """Register the user's Safe on the chain; its transfers are matched from the
        commit on (the index changes in the commit's hook, before any next block)."""
        chain_type = self.chain_type_of(chain_id)
        address = normalize_address(chain_type, address)
        core = self.core

        def committed(result: tuple[Safe, Safe | None]) -> None:
            safe, replaced = result
            if replaced is not None and replaced.address != safe.address:
                core.watched.remove_safe(user.key, chain_type, chain_id, replaced.address)
                self.balances.forget(chain_id, replaced.address)
            core.watched.add_safe(user.key, chain_type, chain_id, safe.address)

        safe, _ = await core.store.write(
            lambda conn: wallets.put_safe(
                conn,
                user,
                chain_type=chain_type,
                chain_id=chain_id,
                address=address,
                signer_id=signer_id,
                threshold=threshold,
                now=core.clock.time(),
            ),
            after_commit=committed,
        )
        return safe

    async def delete_safe(self, user: UserRef, chain_id: int) -> Safe:
        core = self.core

        def committed(safe: Safe) -> None:
            core.watched.remove_safe(user.key, safe.chain_type, chain_id, safe.address)

        return await core.store.write(
            lambda conn: wallets.delete_safe(conn, user, chain_id), after_commit=committed
        )

    async def set_kyc(self, user: UserRef, state: str) -> KycChange:
        """Store the KYC state and, if it changed, write ``user.ky.updated`` (one frame per
        chain the user has a Safe on) in the same transaction."""
        now_ms = self.core.clock.time_ms()

        def job(conn: sqlite3.Connection, batch: StreamBatch) -> KycChange:
            change = wallets.set_kyc(conn, user, state, now_ms=now_ms)
            if change.changed and change.safes:
                frames = {
                    _wire.wire_format(safe.chain_id): _wire.message(
                        "user.ky.updated",
                        _wire.kyc_updated(safe, change.previous, change.new, now_ms),
                        now_ms,
                    )
                    for safe in change.safes
                }
                batch.append(wallet_topic(user), _fixed(frames))
            return change

        return await self.delivery.streams.write(job)

    async def set_iban(
        self, user: UserRef, chain_id: int, iban: str, bic: str | None, state: str
    ) -> IbanChange:
        """Store the IBAN of the user's Safe on the chain and, if it changed, write
        ``user.iban.updated`` (to that chain's sockets) in the same transaction."""
        now_ms = self.core.clock.time_ms()

        def job(conn: sqlite3.Connection, batch: StreamBatch) -> IbanChange:
            change = wallets.set_iban(
                conn, user, chain_id, iban=iban, bic=bic, state=state, now_ms=now_ms
            )
            if change.changed:
                text = _wire.message(
                    "user.iban.updated",
                    _wire.iban_updated(change.safe, change.previous.state, now_ms),
                    now_ms,
                )
                batch.append(wallet_topic(user), _fixed({_wire.wire_format(chain_id): text}))
            return change

        return await self.delivery.streams.write(job)

    async def set_recovery(self, user: UserRef, chain_id: int, recovery: Recovery) -> Safe:
        return await self.core.store.write(
            lambda conn: wallets.set_recovery(conn, user, chain_id, recovery)
        )

    # -- balances after transfers ------------------------------------------------------

    def request_refresh(self, touched: Sequence[tuple[int, str, int, str, bool]]) -> None:
        """Queue balance re-reads of ``(chain_id, safe, block, user key, after a reorg)``
        (on the loop)."""
        limit = self.config.balance_queue_max
        for chain_id, safe, block, user_key, reorg in touched:
            key = (chain_id, safe)
            pending = self._pending.get(key)
            if pending is None:
                if len(self._pending) >= limit:
                    log.warning(
                        "balance re-read of %s on chain %d dropped: %d Safes already wait"
                        " (wallet.balance_queue_max)",
                        safe,
                        chain_id,
                        limit,
                    )
                    self.balances.forget(chain_id, safe)
                    continue
                pending = self._pending[key] = _Pending(block)
            pending.block = max(pending.block, block)
            pending.users.add(user_key)
            pending.reorg = pending.reorg or reorg
        self._wake.set()

    async def run_refresh(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: re-read the balances of touched Safes and write ``balance_update``s."""
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self._pending:
                    await self._refresh_some()
        finally:
            with trio.CancelScope(shield=True):
                await self.balances.aclose()

    async def _refresh_some(self) -> None:
        take = list(self._pending.items())[: self.config.balance_batch_max]
        for key, _ in take:
            del self._pending[key]
        by_chain: dict[int, list[tuple[str, _Pending]]] = {}
        for (chain_id, safe), pending in take:
            by_chain.setdefault(chain_id, []).append((safe, pending))
        updates: list[tuple[int, BalanceChange, set[str]]] = []
        for chain_id, items in by_chain.items():
            try:
                changes = await self.balances.changes(
                    chain_id, [(safe, pending.block, pending.reorg) for safe, pending in items]
                )
            except ChainError as exc:
                log.warning("balance re-read on chain %d failed: %s", chain_id, exc)
                for safe, _ in items:
                    self.balances.forget(chain_id, safe)
                continue
            updates.extend(
                (chain_id, change, pending.users)
                for change, (_, pending) in zip(changes, items, strict=True)
            )
        if updates:
            await self.delivery.streams.write(
                lambda conn, batch: self._write_updates(batch, updates)
            )

    def _write_updates(
        self, batch: StreamBatch, updates: Sequence[tuple[int, BalanceChange, set[str]]]
    ) -> None:
        now_ms = self.core.clock.time_ms()
        for chain_id, change, users in updates:
            assets = self.assets(chain_id)
            before = change.previous
            for index, asset in enumerate(assets):
                amount = change.current.amounts[index]
                if before is not None and before.amounts[index] == amount:
                    continue
                text = _wire.message(
                    "balance_update",
                    _wire.balance_update(change.account, asset, amount, now_ms),
                    now_ms,
                )
                frames = {_wire.wire_format(chain_id): text}
                for user_key in sorted(users):
                    batch.append(wallet_topic(user_of_key(user_key)), _fixed(frames))


class WalletSink:
    """The watcher's matches of users' Safes → ``new_transaction`` messages (in the
    watcher's transaction) and balance re-reads (after its commit)."""

    def __init__(self, wallet: Wallet) -> None:
        self._wallet = wallet

    def stage(self, conn: sqlite3.Connection, matches: Sequence[TransactionMatch]) -> object:
        wallet = self._wallet
        batch = wallet.delivery.streams.batch(conn)
        touched: list[tuple[int, str, int, str, bool]] = []
        now_ms = wallet.core.clock.time_ms()
        limit = wallet.config.history_limit
        for match in matches:
            if match.user_key is None:
                continue
            user = user_of_key(match.user_key)
            record = match.record
            if wallet.core.is_revoked(user.app_id) or record.chain_id not in wallet.chains:
                continue
            for safe in match.listen_addresses:
                touched.append(
                    (
                        record.chain_id,
                        safe,
                        record.height or 0,
                        match.user_key,
                        match.is_reorg_resend,
                    )
                )
                if record.removed:
                    continue  # a reorg took it back: the balances' re-read tells the rest
                items = wallet.transfers(record, safe)
                if not items:
                    continue
                recent = wallet.items(
                    wallets.safe_transactions(
                        conn, record.chain_type, record.chain_id, safe, limit=limit
                    ),
                    safe,
                    limit,
                )
                count = wallets.safe_transaction_count(
                    conn, record.chain_type, record.chain_id, safe
                )
                fmt = _wire.wire_format(record.chain_id)
                for item in items:
                    data = {
                        "address": _wire.checksum(safe),
                        "newTransaction": item,
                        "recentTransactions": recent,
                        "transactionCount": count,
                        "historyLimit": limit,
                    }
                    frames = {fmt: _wire.message("new_transaction", data, now_ms)}
                    batch.append(wallet_topic(user), _fixed(frames))
        return batch, touched

    def publish(self, staged: object) -> None:
        batch, touched = cast(tuple[StreamBatch, list[tuple[int, str, int, str, bool]]], staged)
        self._wallet.delivery.streams.published(batch)
        if touched:
            self._wallet.request_refresh(touched)


def _fixed(frames: dict[str, str]) -> FrameRender:
    """A message's frames that do not depend on its position (the wallet's carry none)."""
    return lambda _at: frames


def _ids(chains: dict[int, ChainConfig]) -> str:
    return ", ".join(str(c) for c in chains) or "none configured"


__all__ = ["Snapshot", "Wallet", "WalletSink", "user_of_key", "wallet_topic"]

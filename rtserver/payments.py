"""Payment proposals on the realtime core: created and cancelled by apps, settled by the
chain watcher, expired by a timer; every transition announced on the proposal's state
topic (``payment:<transaction_id>``) and, for an app with a webhook, to its endpoint.

Guarantees:

* **Forward only, once.** A proposal leaves ``pending`` at most once (a conditional
  update, ``store/proposals.py``); the transition, the message that announces it (the
  state topic keeps only that latest message) and the merchant's webhook event are
  written in **one** SQLite transaction, and published (broker → hub → sockets) only
  after it commits. A crash loses none of the three without losing the others.
* **Settlement in the watcher's transaction.** :class:`SettlementSink` is a
  :class:`~rtserver.events.MatchSink`: the watcher matches committed blocks' transfers
  against pending proposals' receiving addresses in the one watch index
  (:class:`~rtserver.matching.AddressIndex`), and the sink settles, in the watcher's own
  write transaction, each proposal the transfer pays (:meth:`Proposal.pays`: chain,
  token, amount). The watcher only commits blocks past the chain's ``confirmations``, so
  a transfer a reorg removes before then never settles anything.
* **The index follows the proposals without polling.** A proposal's receiving address
  enters the index *before* it is stored (a transfer committed right after the store
  cannot be missed) and leaves it once the proposal leaves pending; at start the index
  is loaded from the store before the watchers start (:meth:`Payments.run_expiry`
  reports started after loading, and the payment component is listed before the chains).
* **Expiry at its time, also across restarts.** One service keeps only the earliest
  pending expiry time (read from the store, never a copy of every proposal) and sleeps
  until it on the server's clock; creating an earlier one wakes it. On start, every
  overdue proposal expires at once.

The wire belongs to the protocol (``rtserver.protocols.payment_status``): it hands
:class:`PaymentRenderers` over once, and the core calls them on the writer thread.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from rtserver.core import Core
from rtserver.delivery import Delivery, DurableStreams, StreamBatch, payment_topic
from rtserver.events import TransactionMatch
from rtserver.exceptions import (
    ConflictError,
    LimitExceededError,
    NotFoundError,
    StoreError,
)
from rtserver.proposals import Proposal, ProposalStatus, ProposalTerms
from rtserver.store import proposals, streams, webhooks

log = logging.getLogger("rtserver.payments")

#: Seconds the expiry service waits after a failed round (a busy or failing database).
_RETRY_AFTER_FAILURE = 5.0


@dataclass(frozen=True)
class PaymentRenderers:
    """How the protocol that owns the wire names a transition, given once at start-up.

    Both are called on the writer thread, once per transition, with the proposal as it
    is after it; both must be pure (no I/O, no awaits).
    """

    #: The message announcing the proposal's new status: its text per wire format.
    frames: Callable[[Proposal], Mapping[str, str]]
    #: The merchant webhook event (the whole JSON body of its delivery).
    webhook_event: Callable[[Proposal], dict[str, Any]]


@dataclass
class _Staged:
    """What one write transaction moved, published after its commit."""

    batch: StreamBatch | None = None
    moved: list[Proposal] = field(default_factory=list)
    webhook_events: int = 0


@dataclass(frozen=True)
class CurrentStatus:
    """A proposal (None: no such transaction) and its state topic's last offset, read
    together: a subscriber that sends this state has the topic up to ``offset``."""

    proposal: Proposal | None
    offset: int


class Payments:
    """One per server: the proposals API on the core, the settlement sink, the expiry timer.

    Build it with :meth:`create` (which plugs the sink into ``core.match_sink``) and run
    :meth:`run_expiry` as a service before the chain watchers start.
    """

    def __init__(self, core: Core, delivery: Delivery, renderers: PaymentRenderers) -> None:
        self._core = core
        self._delivery = delivery
        self._streams: DurableStreams = delivery.streams
        self._renderers = renderers
        self._config = core.config.payments
        self.sink = SettlementSink(self)
        #: Set when a proposal that expires before the timer's deadline was created.
        self._wake = trio.Event()
        #: The expiry service's deadline (Unix ms); None: nothing pending.
        self._deadline_ms: int | None = None
        #: The earliest expiry created since the service last read the store's.
        self._created_soonest_ms: int | None = None

    @classmethod
    def create(cls, core: Core, delivery: Delivery, renderers: PaymentRenderers) -> Payments:
        """Build the server's payments, found afterwards by :meth:`of`; adds the sink."""
        payments = cls(core, delivery, renderers)
        core.match_sink.add(payments.sink)
        core.parts[Payments] = payments
        return payments

    @staticmethod
    def of(core: Core) -> Payments | None:
        return core.part(Payments)

    # -- the apps' calls --------------------------------------------------------------

    async def create_proposal(self, app_id: str, terms: ProposalTerms) -> Proposal:
        """Store a new pending proposal of ``app_id`` with a fresh UUID.

        Raises :class:`ConflictError` when a pending proposal already receives at the
        address on that chain, :class:`LimitExceededError` beyond
        ``payments.max_pending_per_app``. Nothing is stored then.
        """
        core = self._core
        transaction_id = str(uuid.uuid4())
        limit = self._config.max_pending_per_app
        # Watched before it is stored: a block committed right after this proposal
        # cannot pass unmatched.
        core.watched.add_proposal(transaction_id, terms.chain_type, terms.receiving_address)

        def job(conn: sqlite3.Connection) -> Proposal:
            if proposals.count_pending(conn, app_id) >= limit:
                raise LimitExceededError(
                    f"at most {limit} pending proposals per app (payments.max_pending_per_app)"
                )
            return proposals.insert(
                conn, transaction_id, app_id, terms, now_ms=core.clock.time_ms()
            )

        try:
            proposal = await core.store.write(job)
        except BaseException:
            core.watched.remove_proposal(transaction_id, terms.chain_type, terms.receiving_address)
            raise
        self._expiry_added(terms.expires_at_ms)
        return proposal

    async def get(self, app_id: str, transaction_id: str) -> Proposal | None:
        """The proposal if it exists and belongs to ``app_id`` (None otherwise: another
        app's proposal is as unknown as a missing one)."""
        proposal = await self._core.store.read(proposals.get, transaction_id)
        return proposal if proposal is not None and proposal.app_id == app_id else None

    async def cancel(self, app_id: str, transaction_id: str) -> Proposal:
        """Cancel a pending proposal of ``app_id``; returns it cancelled.

        :class:`NotFoundError` if it is unknown (or another app's), :class:`ConflictError`
        if it is no longer pending (its status is in the message).
        """

        def job(conn: sqlite3.Connection) -> _Staged:
            proposal = proposals.get(conn, transaction_id)
            if proposal is None or proposal.app_id != app_id:
                raise NotFoundError("Transaction not found")
            if proposal.status.terminal:
                raise ConflictError(
                    f"the proposal is {proposal.status.value}: only a pending proposal"
                    " can be cancelled"
                )
            staged = _Staged(self._streams.batch(conn))
            self._transition(conn, staged, transaction_id, ProposalStatus.CANCELLED)
            return staged

        staged = await self._core.store.write(job, after_commit=self._published)
        return staged.moved[0]

    # -- the sockets' read --------------------------------------------------------------

    async def current_status(self, transaction_id: str) -> CurrentStatus:
        """The proposal and its topic's last offset, in one read (see :class:`CurrentStatus`)."""
        return await self._core.store.read(_current_status, transaction_id)

    # -- transitions --------------------------------------------------------------------

    def _transition(
        self,
        conn: sqlite3.Connection,
        staged: _Staged,
        transaction_id: str,
        status: ProposalStatus,
        settled_tx_hash: str | None = None,
    ) -> Proposal | None:
        """Move a pending proposal to ``status`` in the caller's transaction, with its
        message and its webhook event; None (nothing written) if it was not pending."""
        now_ms = self._core.clock.time_ms()
        moved = proposals.move(
            conn, transaction_id, status, now_ms=now_ms, settled_tx_hash=settled_tx_hash
        )
        if moved is None:
            return None
        if staged.batch is None:
            staged.batch = self._streams.batch(conn)
        frames = self._renderers.frames(moved)
        staged.batch.append(payment_topic(transaction_id), lambda _position: frames)
        if webhooks.active_targets(conn, (moved.app_id,)):
            event = json.dumps(
                self._renderers.webhook_event(moved), ensure_ascii=False, separators=(",", ":")
            )
            webhooks.queue_items(conn, [(moved.app_id, event)], now_ms=now_ms, single=True)
            staged.webhook_events += 1
        staged.moved.append(moved)
        return moved

    def _published(self, staged: _Staged) -> None:
        """After the commit of ``staged`` (on the event loop): its messages to the
        broker, its proposals out of the watch index, the webhook sender woken."""
        if staged.batch is not None:
            self._streams.published(staged.batch)
        watched = self._core.watched
        counter = self._core.metrics.payment_transitions
        for proposal in staged.moved:
            terms = proposal.terms
            watched.remove_proposal(
                proposal.transaction_id, terms.chain_type, terms.receiving_address
            )
            counter.labels(proposal.status.value).inc()
        if staged.webhook_events:
            self._delivery.webhooks.items_queued()

    # -- expiry ---------------------------------------------------------------------------

    def _expiry_added(self, expires_at_ms: int) -> None:
        soonest = self._created_soonest_ms
        if soonest is None or expires_at_ms < soonest:
            self._created_soonest_ms = expires_at_ms
        if self._deadline_ms is None or expires_at_ms < self._deadline_ms:
            self._wake.set()

    async def expire_due(self) -> int:
        """Expire up to ``payments.expire_batch`` pending proposals that are due now;
        returns how many."""
        batch_max = self._config.expire_batch

        def job(conn: sqlite3.Connection) -> _Staged:
            staged = _Staged()
            due = proposals.due_for_expiry(conn, self._core.clock.time_ms(), batch_max)
            for transaction_id in due:
                self._transition(conn, staged, transaction_id, ProposalStatus.EXPIRED)
            return staged

        staged = await self._core.store.write(job, after_commit=self._published)
        if staged.moved:
            log.info("%d payment proposal(s) expired", len(staged.moved))
        return len(staged.moved)

    async def run_expiry(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: load the pending proposals' addresses into the watch index, report
        started, then expire each pending proposal when its time comes (the overdue
        ones at once)."""
        core = self._core
        for transaction_id, chain_type, address in await core.store.read(
            proposals.pending_addresses
        ):
            core.watched.add_proposal(transaction_id, chain_type, address)
        task_status.started()
        while True:
            self._wake = trio.Event()
            self._created_soonest_ms = None
            try:
                if await self.expire_due() >= self._config.expire_batch:
                    continue  # more are due: go on at once
                stored = await core.store.read(proposals.next_expiry_ms)
            except (sqlite3.Error, StoreError):
                log.exception("expiring payment proposals failed; next try in a few seconds")
                await trio.sleep(_RETRY_AFTER_FAILURE)
                continue
            known = [ms for ms in (stored, self._created_soonest_ms) if ms is not None]
            self._deadline_ms = min(known, default=None)
            if self._deadline_ms is None:
                delay = math.inf
            else:
                delay = max(0.0, (self._deadline_ms - core.clock.time_ms()) / 1000)
            with trio.move_on_after(delay):
                await self._wake.wait()


class SettlementSink:
    """The :class:`~rtserver.events.MatchSink` that settles proposals in the watcher's
    transaction (see the module doc)."""

    def __init__(self, payments: Payments) -> None:
        self._payments = payments

    def stage(self, conn: sqlite3.Connection, matches: Sequence[TransactionMatch]) -> object:
        """Settle every pending proposal a match pays, in the caller's transaction."""
        staged = _Staged()
        for match in matches:
            if match.proposal_id is None:
                continue  # apps, connections, pools: other sinks' concern
            proposal = proposals.get(conn, match.proposal_id)
            if proposal is None or not proposal.pays(match.record):
                continue
            self._payments._transition(
                conn,
                staged,
                proposal.transaction_id,
                ProposalStatus.SETTLED,
                settled_tx_hash=match.record.tx_hash,
            )
        return staged

    def publish(self, staged: object) -> None:
        assert isinstance(staged, _Staged)
        if staged.moved:
            self._payments._published(staged)


def _current_status(conn: sqlite3.Connection, transaction_id: str) -> CurrentStatus:
    top = streams.top(conn, payment_topic(transaction_id))
    return CurrentStatus(proposals.get(conn, transaction_id), 0 if top is None else top.offset)


__all__ = ["CurrentStatus", "PaymentRenderers", "Payments", "SettlementSink"]

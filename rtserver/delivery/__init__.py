"""Reliable delivery: the durable outbox, the in-memory hub, retries and webhooks.

Shared by every protocol front-end, and knowing no wire format: the server builds one
:class:`Delivery` (``Delivery.create``) and runs ``delivery.services()``; protocols find
it with ``Delivery.of(core)``. The protocol that owns the ACK streams (address
monitoring) hands it how to render a push's frame and a webhook item
(:meth:`Delivery.serve_outbox`, which adds the outbox sink to ``core.match_sink``); the
others publish to history and state topics through ``delivery.streams``
(:class:`DurableStreams`), rendering each message once per wire format themselves.

Committed messages flow ``store → broker → hub``: each commit's messages go to the
:class:`Broker` (in-process today, :class:`InProcessBroker`), and the hub, subscribed to
it, fans them out by topic (:mod:`rtserver.delivery._topics`). Retention kinds per topic
family: ``_streams.py``.

Guarantees (docs/delivery.md states them for users):

* at-least-once per app: a committed outbox entry is pushed to every connection
  subscribed to its app's topic (``app:<app_id>``, see ``_topics.py``), resent on every
  (re)connect within the connection's window until ACKed, and retried on live
  connections with backoff;
* order per app: oldest first on resend, commit order live;
* ACKs are durable before they are answered, idempotent, and stop retries everywhere.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import trio

from rtserver.clock import Clock
from rtserver.connections import GOING_AWAY
from rtserver.core import Core
from rtserver.delivery._broker import Broker, BrokerReceiver, InProcessBroker
from rtserver.delivery._hub import (
    CONNECTION_LOST,
    PING,
    TRY_AGAIN_LATER,
    Frame,
    Hub,
    Session,
    Transport,
)
from rtserver.delivery._outbox import OutboxSink, PayloadRenderers, PushFrame, Staged
from rtserver.delivery._runtime import SessionHandler, SocketPort, run_session
from rtserver.delivery._streams import (
    RETENTION_KINDS,
    DurableStreams,
    Recovery,
    RetentionKind,
    StreamBatch,
    retention_kind,
)
from rtserver.delivery._topics import (
    app_topic,
    channel_topic,
    entry_topic,
    family,
    payment_topic,
    user_topic,
)
from rtserver.delivery._webhooks import WebhookSender, sign
from rtserver.events import TransactionMatch
from rtserver.records import TransactionRecord
from rtserver.store import outbox, transactions
from rtserver.store.outbox import OutboxEntry
from rtserver.store.streams import FrameRender, StreamMessage, StreamPosition
from rtserver.usage import WS_MESSAGES

__all__ = [
    "CONNECTION_LOST",
    "GOING_AWAY",
    "PING",
    "RETENTION_KINDS",
    "TRY_AGAIN_LATER",
    "AckReply",
    "AckRequest",
    "AckResult",
    "Broker",
    "BrokerReceiver",
    "Delivery",
    "DurableStreams",
    "Frame",
    "FrameRender",
    "Hub",
    "InProcessBroker",
    "OutboxEntry",
    "PayloadRenderers",
    "PushFrame",
    "Recovery",
    "Resend",
    "RetentionKind",
    "Session",
    "SessionHandler",
    "SocketPort",
    "StreamBatch",
    "StreamMessage",
    "StreamPosition",
    "Transport",
    "WebhookSender",
    "app_topic",
    "channel_topic",
    "entry_topic",
    "family",
    "payment_topic",
    "retention_kind",
    "run_session",
    "sign",
    "user_topic",
]


log = logging.getLogger("rtserver.delivery")


@dataclass(frozen=True)
class Resend:
    """What a (re)connect resends, and how many pending messages it leaves out (older
    than the window, or beyond ``delivery.resend_max``)."""

    entries: list[OutboxEntry]
    not_resent: int


@dataclass(frozen=True)
class AckRequest:
    """By ``message_id``, or by ``chain_type`` + ``tx_hash`` (+ ``chain_id``, optional)."""

    message_id: str | None = None
    chain_type: str | None = None
    chain_id: int | None = None
    tx_hash: str | None = None


@dataclass(frozen=True)
class AckResult:
    #: ``(message_id, tx_hash)`` of every entry the ACK designated (ACKed now or before).
    entries: list[tuple[str, str]]


#: Told the result of a queued ACK once it is committed; None if the commit failed.
AckReply = Callable[[AckResult | None], None]

#: Most queued ACKs committed in one write job. Like a read, a write job waits for the
#: event loop's next round once committed: under a backlog, the ACKs answered per
#: round are what bounds the rate (2,000 a batch: about 13,000 ACKs/s in a
#: reconnect storm, the ACK queue never empty).
_ACK_BATCH = 10_000
#: ACK batches queued at the writer at once.
_ACK_BATCHES_IN_FLIGHT = 2


async def _take_batch(
    receive: trio.MemoryReceiveChannel[tuple[str, AckRequest, AckReply]],
) -> list[tuple[str, AckRequest, AckReply]]:
    """The ACKs queued now (waiting for the first), at most ``_ACK_BATCH``."""
    batch = [await receive.receive()]
    while len(batch) < _ACK_BATCH:
        try:
            batch.append(receive.receive_nowait())
        except trio.WouldBlock:
            break
    return batch


def _ack_job(
    requests: Sequence[tuple[str, AckRequest]], clock: Clock, conn: sqlite3.Connection
) -> list[AckResult]:
    """The write job of an ACK batch: one result per ``(app_id, request)``."""
    now_ms = clock.time_ms()
    by_id = outbox.ack_messages(
        conn, [(a, r.message_id) for a, r in requests if r.message_id is not None], now_ms=now_ms
    )
    results = []
    for app_id, r in requests:
        if r.message_id is not None:
            tx_hash = by_id.get((app_id, r.message_id))
            entries = [] if tx_hash is None else [(r.message_id, tx_hash)]
        else:
            entries = outbox.ack(
                conn,
                app_id,
                chain_type=r.chain_type,
                chain_id=r.chain_id,
                tx_hash=r.tx_hash,
                now_ms=now_ms,
            )
        results.append(AckResult(entries))
    return results


class Delivery:
    """One per server: the broker, the hub, the durable streams, the outbox sink,
    retries and the webhook sender."""

    def __init__(self, core: Core, broker: Broker | None = None) -> None:
        cfg = core.config
        self.core = core
        #: Where committed messages are published (after commit) and ACKs announced; the
        #: hub receives from it. In-process unless another is given.
        self.broker: Broker = broker if broker is not None else InProcessBroker()
        self.hub = Hub(
            clock=core.clock,
            queue_max=cfg.websocket.send_queue_max,
            inflight_max=cfg.delivery.retry_max_tracked,
            retry_interval=cfg.delivery.retry_interval,
            retry_max_interval=cfg.delivery.retry_max_interval,
            on_fanout=lambda app_id, n: core.usage.count(app_id, WS_MESSAGES, n),
            on_interest=self.broker.interest,
        )
        self.broker.subscribe(self.hub)
        self.webhooks = WebhookSender(
            cfg.webhooks, core.store, core.usage, core.metrics, core.clock
        )
        self.streams = DurableStreams(
            core.store, self.broker, core.clock, cfg.streams, backlog=self.hub.wait_backlog
        )
        self._sink: OutboxSink | None = None
        # One queue for the ACKs of every connection: they commit together in one job,
        # and an idle connection needs no task of its own to answer its ACKs later.
        self._acks_send, self._acks_receive = trio.open_memory_channel[
            tuple[str, AckRequest, AckReply]
        ](cfg.delivery.ack_queue_max)

    @classmethod
    def create(cls, core: Core, broker: Broker | None = None) -> Delivery:
        """Build the server's delivery core, found afterwards by :meth:`of`.

        ``broker`` carries committed messages to the hub (default:
        :class:`InProcessBroker`).
        """
        delivery = cls(core, broker)
        core.parts[Delivery] = delivery
        return delivery

    @staticmethod
    def of(core: Core) -> Delivery | None:
        """The server's delivery core (for code outside the front-end, e.g. the admin API)."""
        return core.part(Delivery)

    def serve_outbox(self, payloads: PayloadRenderers) -> None:
        """Store app matches as ACK-stream messages rendered by ``payloads`` (a push's
        frame, a webhook item), at stage time: plugs the outbox sink into
        ``core.match_sink``. Once per server: an ACK stream has one wire format."""
        if self._sink is not None:
            raise RuntimeError("the outbox is served already (one format per ACK stream)")
        self._sink = OutboxSink(self.broker, payloads, self.webhooks.items_queued, self.core.clock)
        self.core.match_sink.add(self._sink)

    @property
    def sink(self) -> OutboxSink:
        """The outbox sink (:meth:`serve_outbox` must have been called)."""
        if self._sink is None:
            raise RuntimeError("no protocol serves the outbox (Delivery.serve_outbox)")
        return self._sink

    def services(self) -> tuple[tuple[str, Callable[..., Awaitable[None]]], ...]:
        """``(name, run)`` of the background services the front-end must run (each takes
        ``task_status`` and runs until cancelled), for :class:`rtserver.components.Service`."""
        return (
            (
                "delivery-writers",
                partial(self.hub.run_writers, self.core.config.websocket.ping_interval),
            ),
            ("delivery-acks", self._run_acks),
            (
                "delivery-retries",
                partial(self.hub.run_retries, lambda ids: self.core.metrics.retried.inc(len(ids))),
            ),
            ("delivery-compaction", self._run_compaction),
            ("stream-compaction", self.streams.run_compaction),
            ("delivery-backlog-gauges", self._run_backlog_gauges),
            ("webhooks", self.webhooks.run),
            ("delivery-shutdown", self._close_on_shutdown),
        )

    async def _close_on_shutdown(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: when the server starts shutting down, close every session with 1001.

        One task for all connections (instead of a watcher per socket); sessions opened
        after the sweep check ``core.connections.closing`` themselves.
        """
        task_status.started()
        await self.core.connections.closing.wait()
        self.hub.close_all(GOING_AWAY, "server shutting down")
        await trio.sleep_forever()

    # -- connections ------------------------------------------------------------------

    def resend_window_ms(self, requested: str | None) -> int:
        """The window of a connection: ``X-ResendDuration`` seconds, default and cap from config.

        Unparsable or negative values fall back to the default (no handshake failure).
        """
        cfg = self.core.config.delivery
        seconds = cfg.resend_window
        if requested is not None:
            try:
                seconds = int(float(requested.strip()))
            except (ValueError, OverflowError):
                seconds = cfg.resend_window
            if seconds < 0:
                seconds = cfg.resend_window
        return min(seconds, cfg.max_resend_window) * 1000

    async def load_resend(self, session: Session) -> Resend:
        """Read the app's pending entries within the session's window, oldest first.

        Call right after :meth:`Hub.attach` (live messages are held from then on), queue
        the ``connected`` frame, then :meth:`finish_resend`.
        """
        assert session.app_id is not None
        since = self.core.clock.time_ms() - session.window_ms
        limit = self.core.config.delivery.resend_max
        app_id = session.app_id

        def read(conn: sqlite3.Connection) -> Resend:
            entries = outbox.pending_entries(conn, app_id, since, limit)
            return Resend(entries, outbox.pending_count(conn, app_id) - len(entries))

        return await self.core.store.read(read)

    async def finish_resend(self, session: Session, resend: Resend) -> None:
        """Queue the resent entries, then the live traffic held since attach (once each)."""
        assert session.app_id is not None
        self.hub.finish_resend(session, resend.entries)
        if resend.entries:
            self.core.usage.count(session.app_id, WS_MESSAGES, len(resend.entries))
            self.core.metrics.resent.inc(len(resend.entries))

    async def ack_later(self, app_id: str, request: AckRequest, reply: AckReply) -> None:
        """Queue an ACK; ``reply`` is called once it is committed (with others).

        Waits only while ``delivery.ack_queue_max`` ACKs are already queued, so a
        client ACKing faster than the disk commits is slowed down, not buffered. Not a
        checkpoint otherwise: a client's burst of ACKs is read without a task switch each.
        """
        try:
            self._acks_send.send_nowait((app_id, request, reply))
        except trio.WouldBlock:
            await self._acks_send.send((app_id, request, reply))

    async def _run_acks(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: commit queued ACKs in batches; reply to each right after its commit.

        Up to ``_ACK_BATCHES_IN_FLIGHT`` batches are queued at the writer at once, so the
        next batch is gathered while one commits. Replies are sent from the commit hook,
        which runs in commit order: a client's replies keep the order of its ACKs.
        """
        task_status.started()
        receive = self._acks_receive
        in_flight = trio.Semaphore(_ACK_BATCHES_IN_FLIGHT)
        async with trio.open_nursery() as nursery:
            while True:
                await in_flight.acquire()
                # Not bound to a name: this loop must not keep the last batch (and the
                # sessions its replies point at) alive while it waits for the next.
                nursery.start_soon(self._commit_acks, await _take_batch(receive), in_flight)

    async def _commit_acks(
        self, batch: list[tuple[str, AckRequest, AckReply]], in_flight: trio.Semaphore
    ) -> None:
        requests = [(app_id, request) for app_id, request, _ in batch]

        def committed(results: list[AckResult]) -> None:
            # No connection of those apps retries the ACKed messages any more (on any
            # node: the broker tells every hub).
            for (app_id, _), result in zip(requests, results, strict=True):
                if result.entries:
                    self.broker.acked(app_topic(app_id), [m for m, _ in result.entries])
            self.core.metrics.acks.inc(len(requests))
            self._reply(batch, results)

        try:
            await self.core.store.write(
                partial(_ack_job, requests, self.core.clock), after_commit=committed
            )
        except Exception:  # never the service's end: the batch's clients get a 500 reply
            log.exception("could not commit %d ACKs", len(batch))
            self._reply(batch, [None] * len(batch))
        finally:
            in_flight.release()

    def _reply(
        self,
        batch: list[tuple[str, AckRequest, AckReply]],
        results: Sequence[AckResult | None],
    ) -> None:
        with self.hub.coalesce():  # a client's replies go out in one write
            for (_, _, reply), result in zip(batch, results, strict=True):
                try:
                    reply(result)
                except Exception:  # one connection's fault must not cost the others theirs
                    log.exception("an ACK reply failed; the other replies go on")

    async def pending_count(self, app_id: str) -> int:
        return await self.core.store.read(outbox.pending_count, app_id)

    # -- replay -------------------------------------------------------------------

    async def replay(
        self,
        app_id: str,
        record: TransactionRecord,
        listen_addresses: Sequence[str],
        is_reorg_resend: bool,
        message_id: str | None,
    ) -> OutboxEntry | None:
        """Store ``record`` idempotently and deliver it to ``app_id`` (WS + webhook).

        A ``message_id`` the app already has is pushed again as it is (no new entry);
        otherwise a new entry is committed with the record and published after commit.
        """
        core = self.core
        match = TransactionMatch(record, tuple(listen_addresses), is_reorg_resend, app_id=app_id)

        def job(conn: sqlite3.Connection) -> Staged:
            transactions.store_records(conn, [record], now=core.clock.time())
            if message_id is not None:
                owner = outbox.owner_of(conn, message_id)
                if owner == app_id:
                    # The app already has this message: push it again, add nothing.
                    entry = outbox.get_entry(conn, app_id, message_id)
                    assert entry is not None
                    return Staged(entries=[entry])
                if owner is None:
                    return self.sink.stage(conn, [match], message_id)
            return self.sink.stage(conn, [match])

        staged = await core.store.write(job, after_commit=self.sink.publish)
        await self.hub.wait_backlog()
        return staged.entries[0] if staged.entries else None

    # -- services -------------------------------------------------------------------

    async def _run_backlog_gauges(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: every ``delivery.backlog_interval`` seconds, read each app's unACKed
        messages and webhook backlog into the metrics (two grouped counts)."""
        task_status.started()
        while True:
            try:
                pending, backlog = await self.core.store.read(outbox.delivery_backlogs)
            except sqlite3.Error:
                log.exception("could not read the delivery backlog for the metrics")
            else:
                self.core.metrics.set_backlogs(pending, backlog)
            await trio.sleep(self.core.config.delivery.backlog_interval)

    async def _run_compaction(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Service: delete ACKed entries older than the retention (records stay)."""
        task_status.started()
        cfg = self.core.config.delivery
        while True:
            before = int((self.core.clock.time() - cfg.acked_retention_days * 86400) * 1000)
            try:
                deleted = await self.core.store.write(
                    partial(outbox.compact, acked_before_ms=before)
                )
            except sqlite3.Error:
                log.exception("outbox compaction failed; next try in %.0f s", cfg.compact_interval)
                deleted = 0
            if deleted < 10_000:  # a full chunk: more to delete, go on at once
                await trio.sleep(cfg.compact_interval)

"""The delivery :class:`~rtserver.events.MatchSink`: outbox rows in the watcher's transaction.

``stage`` runs on the writer thread inside the caller's transaction and writes, for every
app match, one outbox entry (the push's whole frame text, rendered once, here) and,
for apps with an enabled webhook, one queued webhook item. The front-end that owns the
wire names both (:class:`PayloadRenderers`). Nothing is visible to any client before the
transaction commits: ``publish`` runs after the commit and only then hands the entries
to the broker (:mod:`rtserver.delivery._broker`), which hands them to the hub.
Connection-scoped matches (a WebSocket ``subscribe``) are not stored: they go, through
the broker too, to that one connection if it is still open, and are lost otherwise
(documented).
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from rtserver.clock import Clock
from rtserver.delivery._broker import Broker
from rtserver.events import TransactionMatch
from rtserver.records import TransactionRecord
from rtserver.store import webhooks
from rtserver.store.outbox import OutboxEntry, insert_entries, next_seq

#: See :attr:`PayloadRenderers.push_frame`.
PushFrame = tuple[Callable[[str, int], str], str]


@dataclass(frozen=True)
class PayloadRenderers:
    """How a front-end names what the outbox sink stores, given once at start-up.

    The delivery core imports no protocol: it calls these on the writer thread, once
    per message, and serialises the result once. Both must be pure (no I/O, no awaits)
    and return a JSON-ready dict.
    """

    #: The whole frame text of a push, in two parts: ``push_frame(record,
    #: listen_addresses, is_reorg_resend)`` returns ``(head, tail)``, where ``tail`` is
    #: the text's end that every entry of that match shares (rendered once for a
    #: transfer matching 1,000 apps the same way, and stored once) and ``head(message_id,
    #: created_at_ms)`` the entry's own beginning. The text (head + tail) is the entry's
    #: payload, sent as it is, live and on every resend (so a resend is byte-identical
    #: to the first push).
    push_frame: Callable[[TransactionRecord, Sequence[str], bool], PushFrame]
    #: One item of a webhook body's array.
    webhook_item: Callable[[TransactionRecord], dict[str, Any]]


@dataclass
class Staged:
    """What :meth:`OutboxSink.stage` committed and :meth:`OutboxSink.publish` fans out."""

    entries: list[OutboxEntry] = field(default_factory=list)
    #: Connection-scoped messages: (connection id, transient entry).
    transient: list[tuple[str, OutboxEntry]] = field(default_factory=list)
    webhook_items: int = 0


#: The UUID variant digit (``10xx``) for each hex digit's low two bits.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_message_ids(created_ms: int, n: int) -> list[str]:
    """``n`` new message ids: UUIDv7 strings (RFC 9562: the creation millisecond, then
    74 random bits).

    Why not uuid4: the ids of consecutive entries then sit side by side at the end of
    the outbox's ``message_id`` index instead of at random places in it, so a commit of
    thousands of entries touches a few index pages, not thousands.
    """
    ts = f"{created_ms & 0xFFFF_FFFF_FFFF:012x}"
    head = f"{ts[:8]}-{ts[8:]}-7"
    rand = os.urandom(10 * n).hex()
    variant = _VARIANT
    return [
        f"{head}{rand[i : i + 3]}-{variant[rand[i + 3]]}{rand[i + 4 : i + 7]}-{rand[i + 7 : i + 19]}"
        for i in range(0, 20 * n, 20)
    ]


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: An entry before its seq: (app, message id, record, frame head, frame tail).
_EntryPart = tuple[str, str, TransactionRecord, Callable[[str, int], str], str]


class OutboxSink:
    def __init__(
        self,
        broker: Broker,
        renderers: PayloadRenderers,
        wake_webhooks: Callable[[], None],
        clock: Clock,
    ) -> None:
        self._broker = broker
        self._clock = clock
        self._renderers = renderers
        self._wake_webhooks = wake_webhooks

    def stage(
        self,
        conn: sqlite3.Connection,
        matches: Sequence[TransactionMatch],
        message_id: str | None = None,
    ) -> Staged:
        """Write the matches' outbox entries and webhook items; see the module docstring.

        ``message_id`` (replays) names the entry of a single app match instead of a new
        uuid; the caller checked it is not taken.
        """
        staged = Staged()
        render = self._renderers
        created = self._clock.time_ms()
        app_matches = [m for m in matches if m.app_id is not None]
        ids = (
            itertools.repeat(message_id)
            if message_id is not None
            else iter(new_message_ids(created, len(matches)))
        )
        # Per record (alive for the whole call, so its id() is stable) and match shape.
        frames: dict[tuple[int, tuple[str, ...], bool], PushFrame] = {}
        # Each app's entry, made once, with its seq, after the sort below.
        pending: list[_EntryPart] = []

        def made(seq: int, part: _EntryPart) -> OutboxEntry:
            app, mid, r, head, tail = part
            payload = head(mid, created) + tail
            return OutboxEntry(seq, mid, app, r.chain_type, r.chain_id, r.tx_hash, payload, created)

        for m in matches:
            if m.app_id is None and m.connection_id is None:
                continue  # pools: another sink's concern
            r = m.record
            shape = (id(r), m.listen_addresses, m.is_reorg_resend)
            frame = frames.get(shape)
            if frame is None:
                frame = frames[shape] = render.push_frame(r, m.listen_addresses, m.is_reorg_resend)
            head, tail = frame
            mid = next(ids)
            if m.app_id is not None:
                pending.append((m.app_id, mid, r, head, tail))
            else:
                assert m.connection_id is not None
                staged.transient.append((m.connection_id, made(0, ("", mid, r, head, tail))))
        if len(pending) > 1:
            # Grouped by app (each app's in match order: the sort is stable): the
            # pending index is keyed by app, so an app's rows go into the same index
            # page one after the other instead of a page per row of a transfer that
            # matched 1,000 apps.
            pending.sort(key=itemgetter(0))
        first = next_seq(conn)
        staged.entries = [made(first + i, part) for i, part in enumerate(pending)]
        insert_entries(conn, staged.entries, [p[4] for p in pending])
        if app_matches:
            targets = webhooks.active_targets(conn, (m.app_id for m in app_matches))  # type: ignore[misc]
            items = [
                (m.app_id, _json(render.webhook_item(m.record)))
                for m in app_matches
                if m.app_id in targets
            ]
            webhooks.queue_items(conn, items, now_ms=created)
            staged.webhook_items = len(items)
        return staged

    def publish(self, staged: object) -> None:
        """After the commit of ``staged`` (the store's ``after_commit``, in commit order):
        its entries to the broker as one batch, then its connection-scoped messages."""
        assert isinstance(staged, Staged)
        broker = self._broker
        if staged.entries:
            broker.publish(staged.entries)
        for conn_id, entry in staged.transient:
            broker.publish_transient(conn_id, entry)
        if staged.webhook_items:
            self._wake_webhooks()

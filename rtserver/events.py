"""What the watcher hands to delivery: matches, staged in the watcher's own transaction.

The watcher commits a block's records, its checkpoint and the delivery rows (outbox
entries) in **one** SQLite transaction, so ``kill -9`` can never leave a block recorded
but not delivered, or delivered but not recorded. It does that by calling a
:class:`MatchSink` twice per block batch:

1. ``stage(conn, matches)`` inside the write job, on the writer thread, in the open
   transaction: write what must be durable (outbox entries) and return what to publish;
2. ``publish(staged)`` on the event loop right after the commit (the store's
   ``after_commit`` hook): hand committed events to the in-memory fan-out. It must not
   block.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rtserver.records import TransactionRecord


@dataclass(frozen=True)
class TransactionMatch:
    """A stored record that touched addresses someone watches.

    Exactly one of the four owners is set:

    * ``app_id``: an app's persistent watch list (durable: outbox + webhook);
    * ``connection_id``: a WebSocket connection's temporary ``subscribe`` (pushed to
      that connection only, never stored in the outbox);
    * ``pool_address``: an enabled DEX pool (kept in the pool's recent-trades FIFO);
    * ``user_key``: a user whose registered Safe it touched (``UserRef.key``; the
      wallet's events, on the record's chain only).
    * ``proposal_id``: a pending payment proposal receiving at one of the addresses
      (the settlement sink checks chain, token and amount: ``rtserver.payments``).
    """

    record: TransactionRecord
    listen_addresses: tuple[str, ...]
    is_reorg_resend: bool = False
    app_id: str | None = None
    connection_id: str | None = None
    pool_address: str | None = None
    user_key: str | None = None
    proposal_id: str | None = None


class MatchSink(Protocol):
    def stage(self, conn: sqlite3.Connection, matches: Sequence[TransactionMatch]) -> object:
        """Persist delivery state for ``matches`` in the caller's open transaction."""
        ...

    def publish(self, staged: object) -> None:
        """Fan out what :meth:`stage` returned, after its transaction committed."""
        ...


class MatchSinks:
    """Several sinks behind one: each concern (delivery, pools) adds its own at start.

    ``stage`` calls every sink in the order they were added; ``publish`` hands each sink
    what it staged. With no sink added, matches are discarded.
    """

    def __init__(self) -> None:
        self._sinks: list[MatchSink] = []

    def add(self, sink: MatchSink) -> None:
        self._sinks.append(sink)

    def stage(self, conn: sqlite3.Connection, matches: Sequence[TransactionMatch]) -> object:
        if not matches:
            return None
        return [(sink, sink.stage(conn, matches)) for sink in self._sinks]

    def publish(self, staged: object) -> None:
        if staged is None:
            return
        for sink, part in staged:  # type: ignore[attr-defined]
            sink.publish(part)


class DiscardingSink:
    """A sink that delivers nothing (a server with no delivery component, and tests)."""

    def stage(self, conn: sqlite3.Connection, matches: Sequence[TransactionMatch]) -> object:
        return None

    def publish(self, staged: object) -> None:
        return None

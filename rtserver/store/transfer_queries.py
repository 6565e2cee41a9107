"""Queries over stored records for the transfer APIs: by address, newest first, by cursor.

Every query walks an index in ``id`` order and stops after ``limit`` rows, so its cost
grows with the page size, not with how many records an address has. Records a reorg
removed for good are left out of lists (they stay readable by hash).

Each read is an app's (:class:`Viewer`). A list by address shows an app the chain
records of an address it watches, stored since it began watching it: the walk starts at
that point of the index, so it stays bounded; an address the app does not watch lists
nothing. By hash, :func:`~rtserver.store.transactions.visible_record` decides.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rtserver.records import TransactionRecord
from rtserver.store.transactions import (
    INDEX_RECORD_COLUMNS,
    Viewer,
    record_from_index_row,
    visible_record,
)
from rtserver.store.watched import watch_starts


@dataclass(frozen=True)
class AddressQuery:
    address: str
    limit: int
    chain_type: str | None = None
    chain_id: int | None = None
    #: Only ids below this one (the cursor: the last id of the previous page).
    before_id: int | None = None
    #: Only ids above this one (where the viewing app began watching the address).
    after_id: int | None = None
    transfer_type: str | None = None
    #: Only records with a token transfer of this contract to or from ``address``.
    token: str | None = None


def query_by_address(
    conn: sqlite3.Connection, q: AddressQuery, viewer: Viewer
) -> list[TransactionRecord]:
    """Up to ``q.limit`` records touching ``q.address`` with ``id < q.before_id`` that
    ``viewer`` reads, newest first."""
    if viewer.every_chain_record:
        return _walk(conn, q)
    starts = watch_starts(conn, viewer.app_id, q.address, q.chain_type)
    pages = [_walk(conn, replace(q, chain_type=chain, after_id=since)) for chain, since in starts]
    return _newest(pages, q.limit)


def _walk(conn: sqlite3.Connection, q: AddressQuery) -> list[TransactionRecord]:
    # One index's rows, which carry their records: a page reads neighbouring rows, never
    # a ``transactions`` row per record.
    if q.token is not None:
        sql = (
            f"SELECT {INDEX_RECORD_COLUMNS} FROM transaction_token_parties"
            " WHERE address = ? AND token = ? AND removed = 0"
        )
        params: list[object] = [q.address, q.token]
    else:
        sql = (
            f"SELECT {INDEX_RECORD_COLUMNS} FROM transaction_addresses"
            " WHERE address = ? AND removed = 0"
        )
        params = [q.address]
    for column, value in (("chain_type", q.chain_type), ("chain_id", q.chain_id)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    if q.before_id is not None:
        sql += " AND tx_id < ?"
        params.append(q.before_id)
    if q.after_id:
        sql += " AND tx_id > ?"
        params.append(q.after_id)
    if q.transfer_type:
        sql += " AND lower(transfer_type) = lower(?)"
        params.append(q.transfer_type)
    sql += " ORDER BY tx_id DESC LIMIT ?"
    params.append(q.limit)
    return [record_from_index_row(row) for row in conn.execute(sql, params)]


def query_many(
    conn: sqlite3.Connection, queries: Sequence[AddressQuery], limit: int, viewer: Viewer
) -> list[TransactionRecord]:
    """The newest ``limit`` records over several address queries, each record once."""
    return _newest([query_by_address(conn, q, viewer) for q in queries], limit)


def _newest(pages: Sequence[list[TransactionRecord]], limit: int) -> list[TransactionRecord]:
    """The newest ``limit`` records of pages each sorted newest first, each record once."""
    if len(pages) == 1:
        return pages[0][:limit]
    merged: list[TransactionRecord] = []
    seen: set[int] = set()
    for record in heapq.merge(*pages, key=lambda r: -(r.id or 0)):
        if record.id in seen:
            continue
        seen.add(record.id)  # type: ignore[arg-type]
        merged.append(record)
        if len(merged) == limit:
            break
    return merged


def records_by_hash(
    conn: sqlite3.Connection,
    viewer: Viewer,
    chain_type: str,
    chain_id: int,
    tx_hashes: Sequence[str],
) -> list[TransactionRecord]:
    """The records ``viewer`` reads among ``tx_hashes``, in the order asked (others skipped)."""
    found = (
        visible_record(conn, viewer, chain_type, chain_id, h) for h in dict.fromkeys(tx_hashes)
    )
    return [record for record in found if record is not None]

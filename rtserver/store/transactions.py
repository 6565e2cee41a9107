"""Stored transaction records: one row per ``(chain_type, chain_id, tx_hash)``.

Writing is idempotent: storing a record that is already there with the same content
changes nothing and reports it unchanged, so re-processing a block (after a crash, a
restart or a retry) never duplicates a record or a delivery. A record whose content did
change (a reorg moved it to another block, it was marked removed, or it came back)
keeps its ``id`` and is reported changed, which is what makes a reorg resend.

Chain records (``transactions``: from a watcher or a chain's origin fetch) are apart
from replayed ones (``replayed_transactions``: one row per app and transaction). A
replay is a client's claim, not chain data: kept as the replaying app's own record, it
can never change a chain record or another app's replay, never reaches the watcher's
reorg bookkeeping, and is read by that app alone. Who reads which chain record is
:func:`visible_record` (docs/address-monitoring.md, "Who reads which records").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rtserver.addresses import normalize_address
from rtserver.records import TransactionRecord
from rtserver.store._record_pack import ROW_COLUMNS, pack_storage, storage_of_row, unpack_storage
from rtserver.store.watched import watched_before


@dataclass(frozen=True)
class Viewer:
    """Whose view of the stored records a read is."""

    app_id: str
    #: ``api.records_visibility = "global"``: every chain record, whoever it was stored
    #: for (the spec's shared database). Replays stay their app's own either way.
    every_chain_record: bool = False


@dataclass(frozen=True)
class StoredRecord:
    """The outcome of storing one record: the record with its ``id``, and what happened."""

    record: TransactionRecord
    created: bool
    changed: bool

    @property
    def is_new_or_changed(self) -> bool:
        return self.created or self.changed


def store_records(
    conn: sqlite3.Connection, records: Iterable[TransactionRecord], *, now: float
) -> list[StoredRecord]:
    """Insert or update ``records`` in the caller's transaction, as changed at ``now``
    (Unix seconds); one outcome per record.

    ``removed`` is part of the content: storing a record with ``removed=False`` brings
    back one that a reorg had marked removed. A record with ``replayed_by`` is that
    app's own copy and only ever replaces that app's earlier replay of it.
    """
    updated_at = int(now)
    outcomes: list[StoredRecord] = []
    # Index rows are written at the end, all in two statements (a statement per record
    # cost more than the rows); keyed by record, so a record stored twice in one call
    # is indexed as it was last.
    indexed: dict[int, tuple[TransactionRecord, bytes]] = {}
    for record in records:
        if record.replayed_by is not None:
            outcomes.append(_store_replayed(conn, record, updated_at))
            continue
        body = _stored_body(record)
        row = conn.execute(
            f"SELECT {record_columns()} FROM transactions"
            " WHERE chain_type = ? AND chain_id = ? AND tx_hash = ?",
            (record.chain_type, record.chain_id, record.tx_hash),
        ).fetchone()
        if row is None:
            cursor = conn.execute(
                "INSERT INTO transactions (height, block_hash, tx_time, transfer_type, removed,"
                " body, updated_at, chain_type, chain_id, tx_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *_content(record, body, updated_at),
                    record.chain_type,
                    record.chain_id,
                    record.tx_hash,
                ),
            )
            record_id = cursor.lastrowid
            assert record_id is not None
            indexed[record_id] = (record, body)
            outcomes.append(StoredRecord(record.with_id(record_id), True, False))
            continue
        record_id, old_body, old_removed = row[:3]
        # The same bytes are the same record; a row of an earlier body form is compared
        # as a record.
        stored = None if old_body == body else record_from_row(row)
        same = stored is None or _same_content(stored, record)
        if same and bool(old_removed) == record.removed:
            outcomes.append(StoredRecord(record.with_id(record_id), False, False))
            continue
        conn.execute(
            "UPDATE transactions SET height = ?, block_hash = ?, tx_time = ?, transfer_type = ?,"
            " removed = ?, body = ?, updated_at = ? WHERE id = ?",
            (*_content(record, body, updated_at), record_id),
        )
        if stored is not None and not same:
            # Its addresses may have changed: drop the rows of the ones it had.
            _unindex_addresses(conn, record_id, stored)
        # Every index row carries the record: write them all again.
        indexed[record_id] = (record, body)
        outcomes.append(StoredRecord(record.with_id(record_id), False, True))
    _index_addresses(conn, indexed)
    return outcomes


def store_new_records(
    conn: sqlite3.Connection, records: Sequence[TransactionRecord], *, now: float
) -> int:
    """Insert chain records that are not stored yet, in the caller's transaction, as
    stored at ``now`` (Unix seconds); return the id of the last one.

    For bulk loads into a store that nothing else writes meanwhile (an import, the query
    benchmark's data): one statement per table for the whole batch instead of a lookup
    and an insert per record. The ids continue the ``transactions`` sequence in the
    order of ``records``. A record already stored fails the batch with
    ``sqlite3.IntegrityError`` (the table's unique key): use :func:`store_records` for
    anything that may be there.
    """
    if any(record.replayed_by is not None for record in records):
        raise ValueError("store_new_records stores chain records; a replay is an app's own")
    updated_at = int(now)
    (last_id,) = conn.execute(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'transactions'),"
        " (SELECT MAX(id) FROM transactions), 0)"
    ).fetchone()
    rows = []
    indexed: dict[int, tuple[TransactionRecord, bytes]] = {}
    for record_id, record in enumerate(records, start=last_id + 1):
        body = _stored_body(record)
        rows.append(
            (
                record_id,
                *_content(record, body, updated_at),
                record.chain_type,
                record.chain_id,
                record.tx_hash,
            )
        )
        indexed[record_id] = (record, body)
    conn.executemany(
        "INSERT INTO transactions (id, height, block_hash, tx_time, transfer_type, removed,"
        " body, updated_at, chain_type, chain_id, tx_hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    _index_addresses(conn, indexed)
    return int(last_id) + len(rows)


def get_record(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, tx_hash: str
) -> TransactionRecord | None:
    row = conn.execute(
        f"SELECT {record_columns()} FROM transactions"
        " WHERE chain_type = ? AND chain_id = ? AND tx_hash = ?",
        (chain_type, chain_id, tx_hash),
    ).fetchone()
    return None if row is None else record_from_row(row)


def visible_record(
    conn: sqlite3.Connection, viewer: Viewer, chain_type: str, chain_id: int, tx_hash: str
) -> TransactionRecord | None:
    """The record ``viewer`` reads for this transaction, None when it reads none.

    An app reads a chain record that concerns an address it watched when the record was
    stored (the watcher matched it for the app), that it fetched itself, or that was
    delivered to it (an outbox entry); otherwise its own replay, if any. Never another
    app's replay, and never a record that exists only because another app watches one of
    its addresses: that would tell it what the other app watches. Its own replay comes
    before a record delivered to it, because replaying creates an outbox entry: reading
    the chain record through it would tell whether the transaction was stored.
    """
    chain = get_record(conn, chain_type, chain_id, tx_hash)
    if chain is not None and (
        viewer.every_chain_record
        or _watched_when_stored(conn, viewer.app_id, chain)
        or _fetched_by(conn, viewer.app_id, chain)
    ):
        return chain
    own = get_replayed(conn, viewer.app_id, chain_type, chain_id, tx_hash)
    if own is not None:
        return own
    if chain is not None and _delivered_to(conn, viewer.app_id, chain):
        return chain
    return None


def get_replayed(
    conn: sqlite3.Connection, app_id: str, chain_type: str, chain_id: int, tx_hash: str
) -> TransactionRecord | None:
    """``app_id``'s own replay of this transaction, if it replayed it."""
    row = conn.execute(
        f"SELECT {_REPLAY_SELECT} FROM replayed_transactions"
        " WHERE app_id = ? AND chain_type = ? AND chain_id = ? AND tx_hash = ?",
        (app_id, chain_type, chain_id, tx_hash),
    ).fetchone()
    return None if row is None else replace(record_from_row(row), replayed_by=app_id)


def add_reader(conn: sqlite3.Connection, app_id: str, record_id: int) -> None:
    """Let ``app_id`` read the chain record ``record_id`` (it fetched it itself)."""
    conn.execute(
        "INSERT OR IGNORE INTO transaction_readers (app_id, tx_id) VALUES (?, ?)",
        (app_id, record_id),
    )


def get_records_by_id(conn: sqlite3.Connection, ids: Sequence[int]) -> list[TransactionRecord]:
    """Records with these ids, in the order of ``ids`` (missing ids are skipped)."""
    if not ids:
        return []
    placeholders = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT {record_columns()} FROM transactions WHERE id IN ({placeholders})", list(ids)
    ).fetchall()
    by_id = {row[0]: record_from_row(row) for row in rows}
    return [by_id[i] for i in ids if i in by_id]


#: The columns of a replay's row (``replayed_transactions``) among ``ROW_COLUMNS``: its
#: key columns.
_REPLAY_ROW_COLUMNS = ROW_COLUMNS[:3]
_REPLAY_SELECT = ", ".join(("id", "body", "removed", *_REPLAY_ROW_COLUMNS))


def record_columns(table: str = "") -> str:
    """The select list of a chain record, the row :func:`record_from_row` reads; its
    columns qualified by ``table`` (an alias in a join) when given."""
    prefix = f"{table}." if table else ""
    return ", ".join(f"{prefix}{column}" for column in ("id", "body", "removed", *ROW_COLUMNS))


def record_from_row(row: Sequence[Any]) -> TransactionRecord:
    """A record from a row of :func:`record_columns` of ``transactions`` (or of the key
    columns of ``replayed_transactions``)."""
    record_id, body, removed, *columns = row
    # A replay's row holds only the first few of these columns (the rest stay in its body).
    storage = storage_of_row(body, columns)
    return TransactionRecord.from_storage(storage, id=record_id, removed=bool(removed))


#: The select list of the record an index row (``transaction_addresses``,
#: ``transaction_token_parties``) carries, the row :func:`record_from_index_row` reads.
INDEX_RECORD_COLUMNS = "tx_id, removed, record"


def record_from_index_row(row: Sequence[Any]) -> TransactionRecord:
    """The record of a row of :data:`INDEX_RECORD_COLUMNS`."""
    record_id, removed, packed = row
    storage = unpack_storage(packed)
    return TransactionRecord.from_storage(storage, id=record_id, removed=bool(removed))


def _stored_body(record: TransactionRecord) -> bytes:
    """The body of ``record``'s row, which its index rows carry as well: the whole
    record, packed (the columns repeat part of it; they win when read)."""
    return pack_storage(record.to_storage())


def _same_content(stored: TransactionRecord, record: TransactionRecord) -> bool:
    """Whether storing ``record`` over ``stored`` changes nothing but the text of the body
    (a row written in an earlier body form)."""
    return stored == record and stored.block_hash == record.block_hash


def _store_replayed(conn: sqlite3.Connection, record: TransactionRecord, now: int) -> StoredRecord:
    body = _stored_body(record)
    key = (record.replayed_by, record.chain_type, record.chain_id, record.tx_hash)
    row = conn.execute(
        f"SELECT {_REPLAY_SELECT} FROM replayed_transactions"
        " WHERE app_id = ? AND chain_type = ? AND chain_id = ? AND tx_hash = ?",
        key,
    ).fetchone()
    if row is None:
        record_id = _next_record_id(conn)
        conn.execute(
            "INSERT INTO replayed_transactions"
            " (app_id, chain_type, chain_id, tx_hash, id, removed, body, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*key, record_id, int(record.removed), body, now),
        )
        return StoredRecord(record.with_id(record_id), True, False)
    record_id, old_body, old_removed = row[:3]
    same = old_body == body or _same_content(record_from_row(row), record)
    if same and bool(old_removed) == record.removed:
        return StoredRecord(record.with_id(record_id), False, False)
    conn.execute(
        "UPDATE replayed_transactions SET removed = ?, body = ?, updated_at = ? WHERE id = ?",
        (int(record.removed), body, now, record_id),
    )
    return StoredRecord(record.with_id(record_id), False, True)


def _next_record_id(conn: sqlite3.Connection) -> int:
    """An id from the ``transactions`` AUTOINCREMENT sequence, so that every record, chain
    or replayed, has an id of its own (chain records stored later get higher ones)."""
    row = conn.execute(
        "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'transactions' RETURNING seq"
    ).fetchone()
    if row is None:  # no chain record yet
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq)"
            " SELECT 'transactions', COALESCE(MAX(id), 0) + 1 FROM transactions"
        )
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'transactions'").fetchone()
    return int(row[0])


def _watched_when_stored(conn: sqlite3.Connection, app_id: str, record: TransactionRecord) -> bool:
    assert record.id is not None
    addresses = {normalize_address(record.chain_type, a) for a in record.addresses()}
    return watched_before(conn, app_id, record.chain_type, addresses, record.id)


def _fetched_by(conn: sqlite3.Connection, app_id: str, record: TransactionRecord) -> bool:
    row = conn.execute(
        "SELECT 1 FROM transaction_readers WHERE app_id = ? AND tx_id = ?", (app_id, record.id)
    ).fetchone()
    return row is not None


def _delivered_to(conn: sqlite3.Connection, app_id: str, record: TransactionRecord) -> bool:
    # The outbox keeps an app's messages (pending, or ACKed within the retention).
    row = conn.execute(
        "SELECT 1 FROM outbox WHERE app_id = ? AND chain_type = ? AND chain_id = ?"
        " AND tx_hash = ? LIMIT 1",
        (app_id, record.chain_type, record.chain_id, record.tx_hash),
    ).fetchone()
    return row is not None


def _content(record: TransactionRecord, body: bytes, now: int) -> tuple[object, ...]:
    """The columns a record's content sets, in the order the statements above name them."""
    return (
        record.height,
        record.block_hash,
        record.tx_time,
        record.transfer_type,
        int(record.removed),
        body,
        now,
    )


def _index_addresses(
    conn: sqlite3.Connection, records: dict[int, tuple[TransactionRecord, bytes]]
) -> None:
    """Write (or write again) the index rows of each ``record_id: (record, packed)``,
    each row carrying the record (``packed``, its :func:`_stored_body`)."""
    address_rows = []
    token_party_rows = []
    for record_id, (record, packed) in records.items():
        address_rows.extend(_address_rows(record_id, record, packed))
        token_party_rows.extend(_token_party_rows(record_id, record, packed))
    if address_rows:
        conn.executemany(_INSERT_ADDRESS, address_rows)
    if token_party_rows:
        conn.executemany(_INSERT_TOKEN_PARTY, token_party_rows)


def _unindex_addresses(conn: sqlite3.Connection, record_id: int, stored: TransactionRecord) -> None:
    """Remove the index rows of the record as it was stored, by their keys: the tables
    have no index by record alone, and a delete by ``tx_id`` read every row of them."""
    conn.executemany(
        "DELETE FROM transaction_addresses WHERE address = ? AND tx_id = ?",
        [(address, record_id) for address in _normal_addresses(stored)],
    )
    conn.executemany(
        "DELETE FROM transaction_token_parties WHERE address = ? AND token = ? AND tx_id = ?",
        [(party, token, record_id) for party, token in _token_parties(stored)],
    )


# An index row is replaced when the record it carries changed (a reorg, a status).
_INSERT_ADDRESS = (
    "INSERT OR REPLACE INTO transaction_addresses (address, tx_id, chain_type, chain_id,"
    " removed, tx_time, transfer_type, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TOKEN_PARTY = (
    "INSERT OR REPLACE INTO transaction_token_parties (address, token, tx_id, chain_type,"
    " chain_id, removed, tx_time, transfer_type, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _address_rows(
    record_id: int, record: TransactionRecord, packed: bytes
) -> list[tuple[object, ...]]:
    carried = _carried(record, packed)
    return [(address, record_id, *carried) for address in _normal_addresses(record)]


def _token_party_rows(
    record_id: int, record: TransactionRecord, packed: bytes
) -> list[tuple[object, ...]]:
    carried = _carried(record, packed)
    return [(party, token, record_id, *carried) for party, token in _token_parties(record)]


def _carried(record: TransactionRecord, packed: bytes) -> tuple[object, ...]:
    """What every index row of ``record`` holds after its key, in the statements' order."""
    return (
        record.chain_type,
        record.chain_id,
        int(record.removed),
        record.tx_time,
        record.transfer_type,
        packed,
    )


def _normal_addresses(record: TransactionRecord) -> list[str]:
    chain_type = record.chain_type
    return sorted({normalize_address(chain_type, a) for a in record.addresses()})


def _token_parties(record: TransactionRecord) -> list[tuple[str, str]]:
    """(party, token contract) of each side of ``record``'s token transfers."""
    chain_type = record.chain_type
    parties = set()
    for transfer in record.token_transfers:
        if not transfer.token_contract_address:
            continue
        token = normalize_address(chain_type, transfer.token_contract_address)
        for party in (transfer.from_address, transfer.to_address):
            if party:
                parties.add((normalize_address(chain_type, party), token))
    return sorted(parties)

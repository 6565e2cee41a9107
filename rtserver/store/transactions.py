"""Stored transaction records: one row per ``(chain_type, chain_id, tx_hash)``.

Writing is idempotent: storing a record that is already there with the same content
changes nothing and reports it unchanged, so re-processing a block (after a crash, a
restart or a retry) never duplicates a record or a delivery. A record whose content did
change (a reorg moved it to another block, it was marked removed, or it came back)
keeps its ``id`` and is reported changed, which is what makes a reorg resend.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from rtserver.addresses import normalize_address
from rtserver.records import TransactionRecord


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
    conn: sqlite3.Connection, records: Iterable[TransactionRecord]
) -> list[StoredRecord]:
    """Insert or update ``records`` in the caller's transaction; one outcome per record.

    ``removed`` is part of the content: storing a record with ``removed=False`` brings
    back one that a reorg had marked removed.
    """
    now = int(time.time())
    outcomes: list[StoredRecord] = []
    for record in records:
        body = json.dumps(record.to_storage(), separators=(",", ":"))
        row = conn.execute(
            "SELECT id, body, removed FROM transactions"
            " WHERE chain_type = ? AND chain_id = ? AND tx_hash = ?",
            (record.chain_type, record.chain_id, record.tx_hash),
        ).fetchone()
        if row is None:
            cursor = conn.execute(
                "INSERT INTO transactions (height, block_hash, tx_time, transfer_type, removed,"
                " body, updated_at, chain_type, chain_id, tx_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*_content(record, body, now), record.chain_type, record.chain_id, record.tx_hash),
            )
            record_id = cursor.lastrowid
            assert record_id is not None
            _index_addresses(conn, record_id, record)
            outcomes.append(StoredRecord(replace(record, id=record_id), True, False))
            continue
        record_id, old_body, old_removed = row
        if old_body == body and bool(old_removed) == record.removed:
            outcomes.append(StoredRecord(replace(record, id=record_id), False, False))
            continue
        conn.execute(
            "UPDATE transactions SET height = ?, block_hash = ?, tx_time = ?, transfer_type = ?,"
            " removed = ?, body = ?, updated_at = ? WHERE id = ?",
            (*_content(record, body, now), record_id),
        )
        if old_body != body:
            conn.execute("DELETE FROM transaction_addresses WHERE tx_id = ?", (record_id,))
            conn.execute("DELETE FROM transaction_token_parties WHERE tx_id = ?", (record_id,))
            _index_addresses(conn, record_id, record)
        outcomes.append(StoredRecord(replace(record, id=record_id), False, True))
    return outcomes


def get_record(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, tx_hash: str
) -> TransactionRecord | None:
    row = conn.execute(
        "SELECT id, body, removed FROM transactions"
        " WHERE chain_type = ? AND chain_id = ? AND tx_hash = ?",
        (chain_type, chain_id, tx_hash),
    ).fetchone()
    return None if row is None else record_from_row(row)


def get_records_by_id(conn: sqlite3.Connection, ids: Sequence[int]) -> list[TransactionRecord]:
    """Records with these ids, in the order of ``ids`` (missing ids are skipped)."""
    if not ids:
        return []
    placeholders = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, body, removed FROM transactions WHERE id IN ({placeholders})", list(ids)
    ).fetchall()
    by_id = {row[0]: record_from_row(row) for row in rows}
    return [by_id[i] for i in ids if i in by_id]


def record_from_row(row: tuple[int, str, int]) -> TransactionRecord:
    """A record from an ``(id, body, removed)`` row of ``transactions``."""
    record_id, body, removed = row
    return TransactionRecord.from_storage(json.loads(body), id=record_id, removed=bool(removed))


def _content(record: TransactionRecord, body: str, now: int) -> tuple[object, ...]:
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


def _index_addresses(conn: sqlite3.Connection, record_id: int, record: TransactionRecord) -> None:
    chain_type = record.chain_type
    conn.executemany(
        "INSERT OR IGNORE INTO transaction_addresses (address, tx_id, chain_type, chain_id)"
        " VALUES (?, ?, ?, ?)",
        [
            (normalize_address(chain_type, a), record_id, chain_type, record.chain_id)
            for a in record.addresses()
        ],
    )
    parties = set()
    for transfer in record.token_transfers:
        if not transfer.token_contract_address:
            continue
        token = normalize_address(chain_type, transfer.token_contract_address)
        for party in (transfer.from_address, transfer.to_address):
            if party:
                parties.add((normalize_address(chain_type, party), token, record_id))
    conn.executemany(
        "INSERT OR IGNORE INTO transaction_token_parties (address, token, tx_id) VALUES (?, ?, ?)",
        sorted(parties),
    )

"""Stored transaction records: the compact body, rows of the earlier body form, the bulk
insert (rtserver/store/transactions.py), on a real database file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import pytest

from rtserver.records import InternalTransaction, TokenTransfer, TransactionRecord
from rtserver.store import connect_database, transaction
from rtserver.store._record_pack import unpack_storage
from rtserver.store._schema import MIGRATIONS, _statements, migrate
from rtserver.store.transactions import (
    Viewer,
    get_record,
    get_replayed,
    store_new_records,
    store_records,
)
from rtserver.store.transfer_queries import AddressQuery, query_by_address

from conftest import make_config

NOW = 1_700_000_000.0
SENDER = "0x" + "a1" * 20
RECEIVER = "0x" + "b2" * 20
TOKEN = "0x" + "c3" * 20
EVERYTHING = Viewer(app_id="any", every_chain_record=True)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    config = make_config(tmp_path)
    connection = connect_database(config.data_dir, config.database_path, config.store)
    yield connection
    connection.close()


def token_record(n: int, **changes: Any) -> TransactionRecord:
    record = TransactionRecord(
        chain_type="ethereum",
        chain_id=1,
        tx_hash=f"0x{n:064x}",
        height=100 + n,
        tx_time=1_700_000_000 + n,
        sender=SENDER,
        fee_payer=SENDER,
        receiver=TOKEN,
        transfer_type="token",
        amount="0",
        decimals=18,
        tx_status="success",
        nonce="0",
        token_transfers=(
            TokenTransfer(
                from_address=SENDER,
                to_address=RECEIVER,
                token_contract_address=TOKEN,
                amount=str(10**18 + n),
                decimals=18,
                is_to_contract=True,
            ),
        ),
        internal_transactions=(InternalTransaction(from_address=SENDER, to_address=RECEIVER),),
        block_hash=f"0x{100 + n:064x}",
    )
    return replace(record, **changes)


def earlier_body(record: TransactionRecord) -> str:
    """The body as rtserver wrote it before the compact form: every field, nulls too."""
    outside = {"id", "removed", "replayed_by"}
    body = {}
    for f in fields(record):
        if f.name in outside:
            continue
        value = getattr(record, f.name)
        body[f.name] = [asdict(item) for item in value] if isinstance(value, tuple) else value
    return json.dumps(body, separators=(",", ":"))


def raw_body(conn: sqlite3.Connection, table: str, record_id: int) -> bytes:
    (body,) = conn.execute(f"SELECT body FROM {table} WHERE id = ?", (record_id,)).fetchone()
    assert isinstance(body, bytes), "a row written now holds a packed body"
    return body


def test_a_stored_body_is_packed_and_leaves_out_empty_fields(
    conn: sqlite3.Connection,
) -> None:
    record = token_record(1)
    with transaction(conn):
        (stored,) = store_records(conn, [record], now=NOW)
    assert stored.record.id is not None
    packed = raw_body(conn, "transactions", stored.record.id)
    body = unpack_storage(packed)
    assert (body["tx_hash"], body["block_hash"]) == (record.tx_hash, record.block_hash)
    assert None not in body.values() and "max_fee_per_gas" not in body
    assert "from_details" not in body  # no items
    assert body["token_transfers"][0] == {
        "from_address": SENDER,
        "to_address": RECEIVER,
        "token_contract_address": TOKEN,
        "amount": str(10**18 + 1),
        "decimals": 18,
        "is_to_contract": True,
    }
    assert len(packed) < len(earlier_body(record)) / 3
    # Each index row carries the same bytes.
    carried = conn.execute(
        "SELECT record FROM transaction_addresses WHERE tx_id = ?"
        " UNION ALL SELECT record FROM transaction_token_parties WHERE tx_id = ?",
        (stored.record.id, stored.record.id),
    ).fetchall()
    assert len(carried) == 5 and {row[0] for row in carried} == {packed}
    read = get_record(conn, "ethereum", 1, record.tx_hash)
    assert read == record and read is not None
    assert (read.id, read.block_hash, read.height, read.removed) == (
        stored.record.id,
        record.block_hash,
        record.height,
        False,
    )
    # A False where the default is None is a value, not an empty field.
    with transaction(conn):
        (zero,) = store_records(conn, [token_record(2, tx_version=0)], now=NOW)
    assert get_record(conn, "ethereum", 1, zero.record.tx_hash).tx_version == 0  # type: ignore[union-attr]


def test_rows_of_the_earlier_body_form_read_back_and_restore_unchanged(
    conn: sqlite3.Connection,
) -> None:
    """A database written before the compact body: its rows read as they were, and the
    watcher storing the same record again (re-processing a block after an upgrade)
    changes nothing and resends nothing; a record that did change still does both."""
    record = token_record(1)
    replay = token_record(2, replayed_by="app-1")
    with transaction(conn):
        (chain, replayed) = store_records(conn, [record, replay], now=NOW)
        assert chain.record.id is not None and replayed.record.id is not None
        conn.execute(
            "UPDATE transactions SET body = ? WHERE id = ?",
            (earlier_body(record), chain.record.id),
        )
        conn.execute(
            "UPDATE replayed_transactions SET body = ? WHERE id = ?",
            (earlier_body(replay), replayed.record.id),
        )
    assert get_record(conn, "ethereum", 1, record.tx_hash) == record
    assert get_replayed(conn, "app-1", "ethereum", 1, replay.tx_hash) == replay

    with transaction(conn):
        again = store_records(conn, [record, replay], now=NOW + 60)
    assert [(o.created, o.changed) for o in again] == [(False, False), (False, False)]

    moved = replace(record, block_hash="0x" + "ee" * 32)  # same content, another block
    bigger = replace(replay, amount="5")
    with transaction(conn):
        changed = store_records(conn, [moved, bigger], now=NOW + 120)
    assert [(o.created, o.changed) for o in changed] == [(False, True), (False, True)]
    read = get_record(conn, "ethereum", 1, record.tx_hash)
    assert read is not None and read.block_hash == moved.block_hash
    raw_body(conn, "transactions", chain.record.id)  # written again, packed
    assert get_replayed(conn, "app-1", "ethereum", 1, replay.tx_hash) == bigger


def test_store_new_records_continues_the_sequence_and_indexes_every_address(
    conn: sqlite3.Connection,
) -> None:
    with transaction(conn):
        (first,) = store_records(conn, [token_record(1)], now=NOW)
        (replayed,) = store_records(conn, [token_record(2, replayed_by="app-1")], now=NOW)
        last = store_new_records(conn, [token_record(n) for n in (3, 4, 5)], now=NOW)
    assert (first.record.id, replayed.record.id, last) == (1, 2, 5)
    by_receiver = query_by_address(conn, AddressQuery(address=RECEIVER, limit=10), EVERYTHING)
    assert [r.id for r in by_receiver] == [5, 4, 3, 1]
    assert by_receiver[0] == token_record(5)
    by_token = query_by_address(
        conn, AddressQuery(address=SENDER, limit=2, token=TOKEN, before_id=5), EVERYTHING
    )
    assert [r.id for r in by_token] == [4, 3]
    with transaction(conn):  # the watcher's path carries on after a bulk load
        (after,) = store_records(conn, [token_record(6)], now=NOW)
    assert after.record.id == 6

    with pytest.raises(sqlite3.IntegrityError), transaction(conn):
        store_new_records(conn, [token_record(7), token_record(4)], now=NOW)
    assert get_record(conn, "ethereum", 1, token_record(7).tx_hash) is None  # rolled back
    with pytest.raises(ValueError, match="replay"):
        store_new_records(conn, [token_record(8, replayed_by="app-1")], now=NOW)


def test_a_changed_record_moves_from_the_addresses_it_left_to_those_it_reaches(
    conn: sqlite3.Connection,
) -> None:
    other = "0x" + "d4" * 20
    record = token_record(1)
    changed = replace(
        record,
        token_transfers=(replace(record.token_transfers[0], to_address=other),),
        internal_transactions=(),
    )
    with transaction(conn):
        store_records(conn, [record, token_record(2)], now=NOW)
        (outcome,) = store_records(conn, [changed], now=NOW + 60)
    assert outcome.changed

    def ids(address: str, token: str | None = None) -> list[int | None]:
        query = AddressQuery(address=address, limit=10, token=token)
        return [r.id for r in query_by_address(conn, query, EVERYTHING)]

    assert ids(RECEIVER) == [2]
    assert ids(RECEIVER, TOKEN) == [2]
    assert ids(other) == [1]
    assert ids(other, TOKEN) == [1]
    assert ids(SENDER) == [2, 1]


def ids_and_blocks(
    conn: sqlite3.Connection, address: str, token: str | None = None
) -> list[tuple[int | None, int | None, str | None]]:
    query = AddressQuery(address=address, limit=10, token=token)
    return [(r.id, r.height, r.block_hash) for r in query_by_address(conn, query, EVERYTHING)]


def test_a_record_moved_to_another_block_is_changed_in_its_row_and_every_list(
    conn: sqlite3.Connection,
) -> None:
    """A reorg that moves a transaction to another block changes only columns (height,
    block hash), never the compact body: it is still a change, stored and resent, and
    every list by address or token shows the record where it now is."""
    record = token_record(1)
    with transaction(conn):
        store_records(conn, [record], now=NOW)
    moved = replace(record, height=record.height + 1, block_hash="0x" + "ee" * 32)  # type: ignore[operator]
    with transaction(conn):
        (outcome,) = store_records(conn, [moved], now=NOW + 60)
    assert (outcome.created, outcome.changed) == (False, True)
    read = get_record(conn, "ethereum", 1, record.tx_hash)
    assert read is not None and (read.height, read.block_hash) == (moved.height, moved.block_hash)
    where = [(1, moved.height, moved.block_hash)]
    assert ids_and_blocks(conn, SENDER) == ids_and_blocks(conn, RECEIVER) == where
    assert ids_and_blocks(conn, SENDER, TOKEN) == where

    with transaction(conn):  # orphaned: out of every list, still readable by hash
        (gone,) = store_records(conn, [replace(moved, removed=True)], now=NOW + 120)
    assert gone.changed
    assert ids_and_blocks(conn, SENDER) == ids_and_blocks(conn, SENDER, TOKEN) == []
    with transaction(conn):  # and back
        (back,) = store_records(conn, [moved], now=NOW + 180)
    assert back.changed and ids_and_blocks(conn, RECEIVER, TOKEN) == where


def test_a_record_stored_twice_in_one_call_is_indexed_as_it_was_last(
    conn: sqlite3.Connection,
) -> None:
    """store_records writes the index rows of a call at its end: a transaction given
    twice (moved within one batch) is listed once, under its last form's block and
    addresses only, and the record read back is that form with the first one's id."""
    first = token_record(1)
    other = "0x" + "d4" * 20
    moved = replace(first, height=first.height + 1, receiver=other, block_hash="0x" + "ee" * 32)  # type: ignore[operator]
    with transaction(conn):
        made, changed = store_records(conn, [first, moved], now=NOW)
    assert (made.created, changed.changed) == (True, True)
    assert made.record.id == changed.record.id == 1
    assert changed.record == moved.with_id(1) and changed.record.id == 1
    where = [(1, moved.height, moved.block_hash)]
    assert ids_and_blocks(conn, SENDER) == ids_and_blocks(conn, other) == where
    assert ids_and_blocks(conn, TOKEN) == []  # the first form's receiver
    assert ids_and_blocks(conn, SENDER, TOKEN) == where


def test_index_rows_stored_before_they_carried_records_are_filled_by_the_migration(
    tmp_path: Path,
) -> None:
    """Schema 15 packs each record into its index rows: rows of a schema-14 database
    (bodies of both forms, a removed record) read back the same records afterwards."""
    conn = sqlite3.connect(tmp_path / "old.sqlite3", isolation_level=None)
    for script in MIGRATIONS[:14]:
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 14")
    records = [token_record(1), token_record(2, removed=True), token_record(3)]
    for record_id, record in enumerate(records, start=1):
        body = earlier_body(record) if record_id == 1 else json.dumps(record.to_storage())
        conn.execute(
            "INSERT INTO transactions (id, chain_type, chain_id, tx_hash, height, block_hash,"
            " tx_time, transfer_type, removed, body, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                record_id,
                record.chain_type,
                record.chain_id,
                record.tx_hash,
                record.height,
                record.block_hash,
                record.tx_time,
                record.transfer_type,
                int(record.removed),
                body,
            ),
        )
        for address in (SENDER, RECEIVER, TOKEN):
            conn.execute(
                "INSERT INTO transaction_addresses VALUES (?, ?, 'ethereum', 1)",
                (address, record_id),
            )
        for party in (SENDER, RECEIVER):
            conn.execute(
                "INSERT INTO transaction_token_parties VALUES (?, ?, ?)",
                (party, TOKEN, record_id),
            )
    conn.execute("INSERT INTO transaction_addresses VALUES (?, 99, 'ethereum', 1)", (SENDER,))
    assert migrate(conn) == 14

    by_receiver = query_by_address(conn, AddressQuery(address=RECEIVER, limit=10), EVERYTHING)
    assert by_receiver == [records[2], records[0]]
    assert [(r.id, r.block_hash) for r in by_receiver] == [
        (3, records[2].block_hash),
        (1, records[0].block_hash),
    ]
    by_token = query_by_address(
        conn, AddressQuery(address=SENDER, limit=10, token=TOKEN, chain_id=1), EVERYTHING
    )
    assert [r.id for r in by_token] == [3, 1] and by_token[1] == records[0]
    (orphans,) = conn.execute("SELECT COUNT(*) FROM transaction_addresses WHERE tx_id = 99")
    assert orphans == (0,)
    conn.close()


def test_a_record_read_from_storage_equals_the_one_stored_and_needs_its_key() -> None:
    record = token_record(4, tx_version=0, removed=True)
    read = TransactionRecord.from_storage(record.to_storage(), id=9, removed=True)
    assert read == record and hash(read) == hash(record)
    assert (read.id, read.removed, read.replayed_by, read.tx_version) == (9, True, None, 0)
    assert read.from_details == () and read.token_transfers == record.token_transfers
    without_hash = {k: v for k, v in record.to_storage().items() if k != "tx_hash"}
    with pytest.raises(TypeError, match="tx_hash"):
        TransactionRecord.from_storage(without_hash)

"""Outbox and webhook repositories, directly on a database (no server)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from delivery.helpers import SENDER, make_record
from rtserver.config import StoreConfig
from rtserver.exceptions import NotFoundError
from rtserver.protocols.address_monitoring._naming import push_data
from rtserver.protocols.address_monitoring.ws import push_frame
from rtserver.store import apps, connect_database, outbox, transaction, webhooks
from rtserver.store._schema import MIGRATIONS, _statements, migrate
from rtserver.store.outbox import OutboxEntry

#: The repositories read no clock: every change happens at the time it is given.
NOW_MS = 1_750_000_000_000
NOW = NOW_MS / 1000


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    connection = connect_database(tmp_path, tmp_path / "db.sqlite3", StoreConfig())
    yield connection  # type: ignore[misc]
    connection.close()


def _entry(app_id: str, n: int, created: int) -> OutboxEntry:
    return OutboxEntry(0, f"m{n}", app_id, "ethereum", 1, f"0x{n}", "{}", created)


def _insert(
    conn: sqlite3.Connection, entries: list[OutboxEntry], tails: list[str] | None = None
) -> list[OutboxEntry]:
    """``entries`` numbered on from the next seq, as the outbox sink does, and inserted."""
    first = outbox.next_seq(conn)
    numbered = [replace(e, seq=first + i) for i, e in enumerate(entries)]
    outbox.insert_entries(conn, numbered, tails)
    return numbered


def test_ack_is_idempotent_and_compaction_keeps_pending(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        stored = _insert(conn, [_entry("a", n, NOW_MS) for n in range(3)])
    assert [e.seq for e in stored] == sorted(e.seq for e in stored) and stored[0].seq > 0
    with transaction(conn):
        assert outbox.ack(conn, "a", message_id="m0", now_ms=NOW_MS) == [("m0", "0x0")]
        assert outbox.ack(conn, "a", message_id="m0", now_ms=NOW_MS) == [("m0", "0x0")]
        assert outbox.ack(conn, "b", message_id="m1", now_ms=NOW_MS) == []  # another app's
        acked = outbox.ack(conn, "a", chain_type="ethereum", tx_hash="0x1", now_ms=NOW_MS)
        assert acked == [("m1", "0x1")]
    assert outbox.pending_count(conn, "a") == 1
    assert [e.message_id for e in outbox.pending_entries(conn, "a", 0, 10)] == ["m2"]
    with transaction(conn):  # the batched form: other apps' and unknown ids change nothing
        found = outbox.ack_messages(
            conn, [("b", "m2"), ("a", "nope"), ("a", "m0"), ("a", "m0")], now_ms=NOW_MS
        )
    assert found == {("a", "m0"): "0x0"}
    assert outbox.pending_count(conn, "a") == 1
    with transaction(conn):
        assert outbox.compact(conn, acked_before_ms=NOW_MS - 60_000) == 0
        assert outbox.compact(conn, acked_before_ms=NOW_MS + 1) == 2
    assert outbox.pending_count(conn, "a") == 1
    assert outbox.get_entry(conn, "a", "m2") is not None


def test_batched_acks_read_back_any_text_and_span_chunks(conn: sqlite3.Connection) -> None:
    """``ack_messages`` reads its rows packed as JSON: ids and hashes with quotes,
    backslashes, control and non-ASCII characters come back exactly, and a batch over
    one chunk (500 ids) ACKs every entry once, each with its own transaction hash."""
    odd = ['m"q', "m\\b", "m\n\t", "m\u00e9\u2028\U0001f600", "m'"]
    entries = [
        OutboxEntry(0, message_id, "a", "tron", 728126428, f'T{i}"x\u00e9', "{}", NOW_MS)
        for i, message_id in enumerate(odd)
    ]
    entries += [_entry("a", n, NOW_MS) for n in range(1200)]
    with transaction(conn):
        _insert(conn, entries)
    pairs = [("a", e.message_id) for e in entries]
    with transaction(conn):
        found = outbox.ack_messages(conn, [*pairs, ("b", "m5"), ("a", "m5")], now_ms=NOW_MS)
    assert found == {("a", e.message_id): e.tx_hash for e in entries}
    assert outbox.pending_count(conn, "a") == 0
    acked = conn.execute("SELECT COUNT(*) FROM outbox WHERE acked_at_ms = ?", (NOW_MS,))
    assert acked.fetchone()[0] == len(entries)
    with transaction(conn):  # ACKed before: still found, nothing changes
        assert outbox.ack_messages(conn, pairs[:3], now_ms=NOW_MS + 5) == {
            ("a", e.message_id): e.tx_hash for e in entries[:3]
        }
    assert (
        conn.execute("SELECT COUNT(*) FROM outbox WHERE acked_at_ms > ?", (NOW_MS,)).fetchone()[0]
        == 0
    )


def test_a_tail_many_entries_share_is_stored_once_and_read_back_whole(
    conn: sqlite3.Connection,
) -> None:
    """One transfer matching many apps: the shared end of its pushes is one row of
    ``outbox_bodies``; every reader gets each entry's whole text; compaction deletes a
    body once no entry uses it."""
    tail = ',"data":{"big":"' + "x" * 1000 + '"}}'
    entries = [
        OutboxEntry(0, f"m{n}", f"app{n}", "ethereum", 1, "0xt", f'{{"id":"m{n}"' + tail, NOW_MS)
        for n in range(50)
    ]
    alone = OutboxEntry(0, "solo", "app0", "ethereum", 1, "0xs", '{"id":"solo","x":1}', NOW_MS)
    with transaction(conn):
        stored = _insert(conn, [*entries, alone], [tail] * 50 + ['"x":1}'])
    assert [e.seq for e in stored] == list(range(stored[0].seq, stored[0].seq + 51))
    assert [e.payload for e in stored] == [e.payload for e in [*entries, alone]]
    assert conn.execute("SELECT COUNT(*) FROM outbox_bodies").fetchone()[0] == 1
    # A tail only one entry has stays inline.
    row = conn.execute("SELECT payload, body_id FROM outbox WHERE message_id = 'solo'").fetchone()
    assert tuple(row) == (alone.payload, None)
    for n in (0, 49):
        got = outbox.get_entry(conn, f"app{n}", f"m{n}")
        assert got is not None and got.payload == entries[n].payload and got.seq == stored[n].seq
    assert [e.payload for e in outbox.pending_entries(conn, "app7", 0, 10)] == [entries[7].payload]
    with transaction(conn):
        for n in range(49):
            outbox.ack(conn, f"app{n}", message_id=f"m{n}", now_ms=NOW_MS)
        assert outbox.compact(conn, acked_before_ms=NOW_MS + 1) == 49
    assert conn.execute("SELECT COUNT(*) FROM outbox_bodies").fetchone()[0] == 1  # m49 uses it
    assert outbox.get_entry(conn, "app49", "m49").payload == entries[49].payload  # type: ignore[union-attr]
    with transaction(conn):
        outbox.ack(conn, "app49", message_id="m49", now_ms=NOW_MS)
        assert outbox.compact(conn, acked_before_ms=NOW_MS + 1) == 1
    assert conn.execute("SELECT COUNT(*) FROM outbox_bodies").fetchone()[0] == 0


def test_deliveries_are_batched_per_app_in_order(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        shop = apps.create_app(conn, "shop", "https://shop.example/hook", now=NOW)
        other = apps.create_app(conn, "other", now=NOW)
        assert webhooks.active_targets(conn, [shop.app.app_id, other.app.app_id]) == {
            shop.app.app_id
        }
        webhooks.queue_items(
            conn, [(shop.app.app_id, json.dumps({"n": n})) for n in range(5)], now_ms=NOW_MS
        )
        assert webhooks.form_deliveries(conn, batch_max=2, body_max=10_000, now_ms=NOW_MS) == 3
    due = webhooks.due_deliveries(conn, NOW_MS, 10)
    assert [json.loads(d.body) for d in due] == [
        [{"n": 0}, {"n": 1}],
        [{"n": 2}, {"n": 3}],
        [{"n": 4}],
    ]
    assert due[0].url == "https://shop.example/hook" and due[0].secrets == (shop.webhook_secret,)
    with transaction(conn):
        webhooks.failed(
            conn,
            due[0].delivery_id,
            status=500,
            error="HTTP 500",
            next_attempt_ms=NOW_MS + 3_600_000,
            now_ms=NOW_MS,
        )
        webhooks.failed(
            conn,
            due[1].delivery_id,
            status=None,
            error="timeout",
            next_attempt_ms=None,
            now_ms=NOW_MS,
        )
        webhooks.delivered(conn, due[2].delivery_id)
    assert webhooks.due_deliveries(conn, NOW_MS, 10) == []
    dead = webhooks.dead_letters(conn, shop.app.app_id)
    assert [d["delivery_id"] for d in dead] == [due[1].delivery_id]
    with transaction(conn):
        assert webhooks.retry_dead(conn, shop.app.app_id, now_ms=NOW_MS) == 1
        with pytest.raises(NotFoundError):
            webhooks.retry_dead(conn, shop.app.app_id, "msg_missing", now_ms=NOW_MS)
        rotated = webhooks.rotate_secret(conn, shop.app.app_id, overlap_seconds=60, now=NOW)
    again = webhooks.due_deliveries(conn, NOW_MS, 10)
    assert [d.delivery_id for d in again] == [due[1].delivery_id]
    assert again[0].secrets == (rotated.secret, shop.webhook_secret)
    assert again[0].attempts == 0


def test_an_upgrade_turns_stored_push_data_into_the_frames_rendered_today(
    tmp_path: Path,
) -> None:
    """Schema 10 stores whole frames: rows written before it resend byte-identical."""
    conn = sqlite3.connect(tmp_path / "old.sqlite3", isolation_level=None)
    for script in MIGRATIONS[:9]:  # a database of schema 9
        for statement in _statements(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 9")
    record = make_record(7)
    data = json.dumps(push_data(record, [SENDER], False), ensure_ascii=False, separators=(",", ":"))
    conn.execute(
        "INSERT INTO outbox (message_id, app_id, chain_type, chain_id, tx_hash, payload,"
        " created_at_ms) VALUES ('m-old', 'app', 'ethereum', 1, ?, ?, 1745000000123)",
        (record.tx_hash, data),
    )
    assert migrate(conn) == 9
    (payload,) = conn.execute("SELECT payload FROM outbox").fetchone()
    head, tail = push_frame(record, [SENDER], False)
    assert payload == head("m-old", 1745000000123) + tail


def test_entries_are_numbered_on_from_the_last_seq_ever_given(conn: sqlite3.Connection) -> None:
    """AUTOINCREMENT's promise holds for entries numbered before they are inserted: a
    seq is never given twice, even once its entry was compacted away."""
    with transaction(conn):
        assert outbox.next_seq(conn) == 1
        first = _insert(conn, [_entry("a", n, NOW_MS) for n in range(2)])
    assert [e.seq for e in first] == [1, 2]
    with transaction(conn):
        outbox.ack(conn, "a", message_id="m1", now_ms=NOW_MS)
        assert outbox.compact(conn, acked_before_ms=NOW_MS + 1) == 1
    with transaction(conn):
        assert outbox.next_seq(conn) == 3
        (again,) = _insert(conn, [_entry("a", 9, NOW_MS)])
    assert again.seq == 3
    with pytest.raises(sqlite3.IntegrityError), transaction(conn):  # a seq given twice fails
        outbox.insert_entries(conn, [replace(_entry("a", 10, NOW_MS), seq=3)])

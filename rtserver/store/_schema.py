"""The database schema, in one place, as an ordered list of migrations.

``PRAGMA user_version`` holds the number of migrations applied. A migration is appended,
never edited once released: the n-th entry moves a database from version n-1 to n.
"""

from __future__ import annotations

import sqlite3

from rtserver.exceptions import StoreError
from rtserver.store._record_pack import pack_row

MIGRATIONS: tuple[str, ...] = (
    # 1: apps (API keys are stored only as SHA-256 hashes).
    """
    CREATE TABLE apps (
        app_id          TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        key_hash        TEXT NOT NULL UNIQUE,
        key_prefix      TEXT NOT NULL,
        webhook_url     TEXT,
        webhook_secret  TEXT,
        created_at      INTEGER NOT NULL,
        revoked_at      INTEGER
    );
    """,
    # 2: watched addresses (the apps' persistent watch lists), normal-form addresses.
    """
    CREATE TABLE watched_addresses (
        app_id      TEXT NOT NULL REFERENCES apps(app_id),
        chain_type  TEXT NOT NULL,
        address     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (app_id, chain_type, address)
    );
    CREATE INDEX watched_addresses_by_address ON watched_addresses (chain_type, address);
    """,
    # 3: normalized transaction records and the chains' progress.
    #    ``id`` is the query API's cursor: AUTOINCREMENT so an id is never reused.
    #    ``transaction_addresses`` has one row per (address, record) the record touches;
    #    ``transaction_token_parties`` one per (party, token contract, record) of its
    #    token transfers, so queries by address (and token) walk an index newest first.
    """
    CREATE TABLE transactions (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        chain_type      TEXT NOT NULL,
        chain_id        INTEGER NOT NULL,
        tx_hash         TEXT NOT NULL,
        height          INTEGER,
        block_hash      TEXT,
        tx_time         INTEGER,
        transfer_type   TEXT,
        removed         INTEGER NOT NULL DEFAULT 0,
        body            TEXT NOT NULL,
        updated_at      INTEGER NOT NULL,
        UNIQUE (chain_type, chain_id, tx_hash)
    );
    CREATE INDEX transactions_by_height ON transactions (chain_type, chain_id, height);
    CREATE TABLE transaction_addresses (
        address     TEXT NOT NULL,
        tx_id       INTEGER NOT NULL REFERENCES transactions(id),
        chain_type  TEXT NOT NULL,
        chain_id    INTEGER NOT NULL,
        PRIMARY KEY (address, tx_id)
    ) WITHOUT ROWID;
    CREATE INDEX transaction_addresses_by_chain
        ON transaction_addresses (address, chain_type, chain_id, tx_id);
    CREATE TABLE transaction_token_parties (
        address     TEXT NOT NULL,
        token       TEXT NOT NULL,
        tx_id       INTEGER NOT NULL REFERENCES transactions(id),
        PRIMARY KEY (address, token, tx_id)
    ) WITHOUT ROWID;
    CREATE TABLE chain_checkpoints (
        chain_type      TEXT NOT NULL,
        chain_id        INTEGER NOT NULL,
        block_number    INTEGER NOT NULL,
        block_hash      TEXT NOT NULL,
        updated_at      INTEGER NOT NULL,
        PRIMARY KEY (chain_type, chain_id)
    );
    CREATE TABLE chain_blocks (
        chain_type      TEXT NOT NULL,
        chain_id        INTEGER NOT NULL,
        number          INTEGER NOT NULL,
        hash            TEXT NOT NULL,
        parent_hash     TEXT NOT NULL,
        PRIMARY KEY (chain_type, chain_id, number)
    );
    CREATE TABLE token_metadata (
        chain_type      TEXT NOT NULL,
        chain_id        INTEGER NOT NULL,
        address         TEXT NOT NULL,
        symbol          TEXT,
        decimals        INTEGER,
        fetched_at      INTEGER NOT NULL,
        PRIMARY KEY (chain_type, chain_id, address)
    );
    """,
    # 4: usage accounting (the spec's "billing statistics"), per app per UTC day.
    """
    CREATE TABLE usage_daily (
        app_id      TEXT NOT NULL,
        day         TEXT NOT NULL,
        metric      TEXT NOT NULL,
        count       INTEGER NOT NULL,
        PRIMARY KEY (app_id, day, metric)
    ) WITHOUT ROWID;
    """,
    # 5: DEX pools and each pool's recent trades (a FIFO of TransactionResult JSON).
    """
    CREATE TABLE pools (
        chain_type  TEXT NOT NULL,
        chain_id    INTEGER NOT NULL,
        address     TEXT NOT NULL,
        enabled     INTEGER NOT NULL DEFAULT 1,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (chain_type, chain_id, address)
    );
    CREATE TABLE pool_trades (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        chain_type  TEXT NOT NULL,
        chain_id    INTEGER NOT NULL,
        pool        TEXT NOT NULL,
        tx_hash     TEXT NOT NULL,
        result      TEXT NOT NULL,
        UNIQUE (chain_type, chain_id, pool, tx_hash)
    );
    CREATE INDEX pool_trades_recent ON pool_trades (chain_type, chain_id, pool, seq);
    """,
    # 6: records a chain watcher itself stored and handed to delivery. A record can be in
    #    ``transactions`` without having been delivered (the V2 detail's origin fetch caches
    #    transactions of blocks the watcher has not reached yet): the watcher still owes
    #    its delivery when it gets there.
    """
    CREATE TABLE watcher_records (
        tx_id   INTEGER PRIMARY KEY REFERENCES transactions(id)
    );
    """,
    # 7: delivery. ``outbox``: one row per (app, matched transaction push),
    #    pending until ACKed; ``seq`` orders an app's messages (oldest first).
    #    ``webhook_items``: matches waiting to be batched into a webhook delivery;
    #    ``webhook_deliveries``: batches with their persisted retry schedule, and the
    #    dead-letter list (state 'dead'). Apps gain webhook rotation/disable columns.
    """
    CREATE TABLE outbox (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id      TEXT NOT NULL UNIQUE,
        app_id          TEXT NOT NULL,
        chain_type      TEXT NOT NULL,
        chain_id        INTEGER NOT NULL,
        tx_hash         TEXT NOT NULL,
        payload         TEXT NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        acked_at_ms     INTEGER
    );
    CREATE INDEX outbox_pending ON outbox (app_id, created_at_ms) WHERE acked_at_ms IS NULL;
    CREATE INDEX outbox_by_tx ON outbox (app_id, chain_type, chain_id, tx_hash);
    CREATE INDEX outbox_acked ON outbox (acked_at_ms) WHERE acked_at_ms IS NOT NULL;
    CREATE TABLE webhook_items (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id          TEXT NOT NULL,
        payload         TEXT NOT NULL,
        created_at_ms   INTEGER NOT NULL
    );
    CREATE INDEX webhook_items_by_app ON webhook_items (app_id, seq);
    CREATE TABLE webhook_deliveries (
        delivery_id     TEXT PRIMARY KEY,
        app_id          TEXT NOT NULL,
        body            TEXT NOT NULL,
        item_count      INTEGER NOT NULL,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER,
        last_status     INTEGER,
        last_error      TEXT,
        created_at_ms   INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms);
    ALTER TABLE apps ADD COLUMN webhook_disabled_at INTEGER;
    ALTER TABLE apps ADD COLUMN webhook_disabled_reason TEXT;
    ALTER TABLE apps ADD COLUMN webhook_previous_secret TEXT;
    ALTER TABLE apps ADD COLUMN webhook_previous_until INTEGER;
    """,
    # 8: resends and retries are counted in metrics; a per-row counter cost an UPDATE of
    # every resent row (most of the writer's time when thousands reconnect at once).
    """
    ALTER TABLE outbox DROP COLUMN attempts;
    """,
    # 9: who reads which stored records (docs/address-monitoring.md, "Who reads which
    #    records"). ``since_tx_id``: the last record id when the app began watching the
    #    address; the app reads the address's records stored after it (NULL, watched
    #    before this version: all of them). ``replayed_transactions``: each app's own
    #    replays, apart from chain data, so that a replay never changes what a watcher
    #    stored or what another app replayed; their ids come from the ``transactions``
    #    sequence (one id space). ``transaction_readers``: records an app fetched itself
    #    (the V2 detail's origin fetch).
    """
    ALTER TABLE watched_addresses ADD COLUMN since_tx_id INTEGER;
    CREATE INDEX watched_addresses_by_app_address ON watched_addresses (app_id, address);
    CREATE TABLE replayed_transactions (
        app_id      TEXT NOT NULL,
        chain_type  TEXT NOT NULL,
        chain_id    INTEGER NOT NULL,
        tx_hash     TEXT NOT NULL,
        id          INTEGER NOT NULL UNIQUE,
        removed     INTEGER NOT NULL DEFAULT 0,
        body        TEXT NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (app_id, chain_type, chain_id, tx_hash)
    ) WITHOUT ROWID;
    CREATE TABLE transaction_readers (
        app_id  TEXT NOT NULL,
        tx_id   INTEGER NOT NULL REFERENCES transactions(id),
        PRIMARY KEY (app_id, tx_id)
    ) WITHOUT ROWID;
    """,
    # 10: durable streams (store/streams.py): each history or state topic's messages
    #     with a per-topic offset and the topic's epoch, rendered once per wire format.
    #     Outbox payloads become whole frames, rendered once at stage time: the rows
    #     written before hold the ``data`` of an address-monitoring push, wrapped here in
    #     that protocol's envelope as it was at schema 9 (frozen, like every migration).
    """
    CREATE TABLE stream_topics (
        topic       TEXT PRIMARY KEY,
        epoch       TEXT NOT NULL,
        top_offset  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE stream_messages (
        topic           TEXT NOT NULL,
        msg_offset      INTEGER NOT NULL,
        frames          TEXT NOT NULL,
        created_at_ms   INTEGER NOT NULL,
        PRIMARY KEY (topic, msg_offset)
    ) WITHOUT ROWID;
    CREATE INDEX stream_messages_by_age ON stream_messages (created_at_ms);
    UPDATE outbox SET payload = '{"id":"' || message_id || '","time":' || created_at_ms
        || ',"type":"transaction","code":0,"data":' || payload || ',"msg":"success"}';
    """,
    # 11: end users of an app (shared by the wallet and channel protocols) and the access
    #     tokens rtserver issues them (stored only as SHA-256 hashes, like API keys).
    """
    CREATE TABLE users (
        app_id      TEXT NOT NULL REFERENCES apps(app_id),
        user_id     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (app_id, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE access_tokens (
        token_hash  TEXT PRIMARY KEY,
        app_id      TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        revoked_at_ms INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX access_tokens_by_user ON access_tokens (app_id, user_id);
    CREATE INDEX access_tokens_revoked ON access_tokens (revoked_at_ms) WHERE revoked_at_ms IS NOT NULL;
    """,
    # 12: the wallet registry (store/wallets.py): a user's KYC state, and its Safes, one
    #     per chain, each with its signer, threshold, IBAN and social-recovery settings.
    #     A Safe address is unique per app and chain (two apps may register the same one).
    """
    ALTER TABLE users ADD COLUMN kyc_state TEXT;
    ALTER TABLE users ADD COLUMN kyc_updated_at_ms INTEGER;
    CREATE TABLE user_safes (
        app_id              TEXT NOT NULL,
        user_id             TEXT NOT NULL,
        chain_type          TEXT NOT NULL,
        chain_id            INTEGER NOT NULL,
        address             TEXT NOT NULL,
        signer_id           TEXT NOT NULL,
        threshold           INTEGER NOT NULL,
        iban                TEXT,
        bic                 TEXT,
        iban_state          TEXT,
        iban_updated_at_ms  INTEGER,
        recovery_enabled    INTEGER NOT NULL DEFAULT 0,
        recovery_address    TEXT,
        recovery_delay      INTEGER,
        recovery_pending    INTEGER NOT NULL DEFAULT 0,
        recovery_execute_after_ms INTEGER,
        created_at          INTEGER NOT NULL,
        PRIMARY KEY (app_id, user_id, chain_id),
        UNIQUE (app_id, chain_id, address),
        FOREIGN KEY (app_id, user_id) REFERENCES users (app_id, user_id)
    ) WITHOUT ROWID;
    """,
    # 13: payment proposals (store/proposals.py, docs/payments.md). ``status`` moves
    #     only forward: pending -> settled | expired | cancelled. Two pending proposals
    #     never share a receiving address on one chain (the partial unique index);
    #     the expiry timer reads the earliest pending ``expires_at_ms``. Amounts are
    #     decimal strings of base units (up to 2**256-1, beyond SQLite's integers).
    #     ``webhook_items.single``: an item delivered alone, its payload the whole body
    #     (a payment event), instead of batched into a JSON array with others.
    """
    CREATE TABLE payment_proposals (
        transaction_id      TEXT PRIMARY KEY,
        app_id              TEXT NOT NULL REFERENCES apps(app_id),
        chain_type          TEXT NOT NULL,
        chain_id            INTEGER NOT NULL,
        token               TEXT NOT NULL,
        amount              TEXT NOT NULL,
        amount_match        TEXT NOT NULL,
        receiving_address   TEXT NOT NULL,
        status              TEXT NOT NULL,
        settled_tx_hash     TEXT,
        created_at_ms       INTEGER NOT NULL,
        expires_at_ms       INTEGER NOT NULL,
        updated_at_ms       INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX payment_proposals_pending_address
        ON payment_proposals (chain_type, chain_id, receiving_address)
        WHERE status = 'pending';
    CREATE INDEX payment_proposals_pending_expiry
        ON payment_proposals (expires_at_ms) WHERE status = 'pending';
    CREATE INDEX payment_proposals_by_app ON payment_proposals (app_id, status);
    ALTER TABLE webhook_items ADD COLUMN single INTEGER NOT NULL DEFAULT 0;
    """,
    # 14: outbox bodies (store/outbox.py, insert_entries). A transfer that matches 1,000
    #    apps made 1,000 rows each holding the same 1 KiB push: the part of a payload
    #    that entries of one write share is now stored once in ``outbox_bodies`` and an
    #    entry keeps its own head (``payload``) and ``body_id`` (NULL: ``payload`` is the
    #    whole text, as before). ``outbox_by_tx`` leads with the transaction, so the
    #    entries of one transfer for many apps are neighbours in it (app first, each
    #    commit touched a page per app).
    """
    CREATE TABLE outbox_bodies (
        body_id         INTEGER PRIMARY KEY,
        text            TEXT NOT NULL
    );
    ALTER TABLE outbox ADD COLUMN body_id INTEGER;
    CREATE INDEX outbox_by_body ON outbox (body_id) WHERE body_id IS NOT NULL;
    DROP INDEX outbox_by_tx;
    CREATE INDEX outbox_by_tx ON outbox (chain_type, tx_hash, app_id, chain_id);
    """,
    # 15: index rows carry their records (store/_record_pack.py). A page of a walk by
    #    address read each record's ``transactions`` row by id: records of one address
    #    lie far apart, so at ten million records every one cost a random page read. An
    #    index row now holds the record, packed, and the columns lists filter on: a page
    #    reads neighbouring rows of one index. Rows stored before are filled from their
    #    records here (``rtserver_pack_row`` is :func:`_record_pack.pack_row`); an index
    #    row without a record (none should exist) is dropped: a list could not show it.
    """
    ALTER TABLE transaction_addresses ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE transaction_addresses ADD COLUMN tx_time INTEGER;
    ALTER TABLE transaction_addresses ADD COLUMN transfer_type TEXT;
    ALTER TABLE transaction_addresses ADD COLUMN record BLOB;
    ALTER TABLE transaction_token_parties ADD COLUMN chain_type TEXT;
    ALTER TABLE transaction_token_parties ADD COLUMN chain_id INTEGER;
    ALTER TABLE transaction_token_parties ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE transaction_token_parties ADD COLUMN tx_time INTEGER;
    ALTER TABLE transaction_token_parties ADD COLUMN transfer_type TEXT;
    ALTER TABLE transaction_token_parties ADD COLUMN record BLOB;
    DELETE FROM transaction_addresses WHERE tx_id NOT IN (SELECT id FROM transactions);
    DELETE FROM transaction_token_parties WHERE tx_id NOT IN (SELECT id FROM transactions);
    UPDATE transaction_addresses SET (removed, tx_time, transfer_type, record) = (
        SELECT t.removed, t.tx_time, t.transfer_type, rtserver_pack_row(t.body, t.chain_type,
            t.chain_id, t.tx_hash, t.height, t.tx_time, t.block_hash, t.transfer_type)
        FROM transactions t WHERE t.id = transaction_addresses.tx_id
    );
    UPDATE transaction_token_parties
    SET (chain_type, chain_id, removed, tx_time, transfer_type, record) = (
        SELECT t.chain_type, t.chain_id, t.removed, t.tx_time, t.transfer_type,
            rtserver_pack_row(t.body, t.chain_type, t.chain_id, t.tx_hash, t.height,
            t.tx_time, t.block_hash, t.transfer_type)
        FROM transactions t WHERE t.id = transaction_token_parties.tx_id
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s database to :data:`SCHEMA_VERSION`; return the version it had.

    Safe when several processes start at once: the version is read again under the write
    lock. A database newer than this code raises :class:`StoreError` instead of guessing.
    """
    conn.create_function("rtserver_pack_row", 8, pack_row, deterministic=True)
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {version} is newer than this rtserver "
                f"({SCHEMA_VERSION}); upgrade rtserver"
            )
        for number in range(version, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(version)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise StoreError(f"incomplete statement in migration: {buffer.strip()[:60]!r}")
    return statements

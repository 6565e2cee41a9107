"""The database schema, in one place, as an ordered list of migrations.

``PRAGMA user_version`` holds the number of migrations applied. A migration is appended,
never edited once released: the n-th entry moves a database from version n-1 to n.
"""

from __future__ import annotations

import sqlite3

from rtserver.exceptions import StoreError

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
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s database to :data:`SCHEMA_VERSION`; return the version it had.

    Safe when several processes start at once: the version is read again under the write
    lock. A database newer than this code raises :class:`StoreError` instead of guessing.
    """
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
    return version


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

"""Opening SQLite connections with rtserver's settings (shared by the server and the CLI)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rtserver.config import StoreConfig
from rtserver.exceptions import StoreError
from rtserver.store._schema import migrate


def connect(path: Path, config: StoreConfig, *, readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with the configured durability.

    The connection is in autocommit mode: callers open transactions explicitly (see
    :func:`transaction`), so that no implicit BEGIN holds a lock by surprise. It may be used
    from any thread, one at a time.
    """
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=config.busy_timeout_ms / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
    _set_wal(conn, config.busy_timeout_ms)
    conn.execute(f"PRAGMA synchronous = {config.synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys = ON")
    # SQLite's default is 2 MiB: past that, the writer's inserts at scattered places in
    # the indexes (an address, an app) read their pages back from the OS at every
    # commit, and storing a block slows as the database grows (measured: 500 records
    # 25 ms on a new database, 45 ms 12 blocks later; 27 ms with 64 MiB).
    conn.execute(f"PRAGMA cache_size = {-1024 * int(config.cache_mib)}")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    try:
        require_json_functions(conn)
    except StoreError:
        conn.close()
        raise
    return conn


def require_json_functions(conn: sqlite3.Connection) -> None:
    """Raise :class:`StoreError` unless this SQLite has its JSON functions (built in since
    3.38, an option before): some reads fetch many rows packed as one JSON row."""
    try:
        conn.execute("SELECT json_group_array(json(json_array(1)))").fetchone()
    except sqlite3.Error as exc:
        raise StoreError(
            f"SQLite {sqlite3.sqlite_version} lacks its JSON functions ({exc}); rtserver "
            "needs SQLite 3.38 or newer, or an older one built with JSON1"
        ) from exc


def _set_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Put the database in WAL mode (a no-op once it is).

    Switching a new database's journal mode answers "database is locked" at once,
    without the busy timeout, while another process opens it too (a server starting
    and a CLI command run next to it, on a new data directory): retried for as long
    as the busy timeout.
    """
    attempts = max(1, busy_timeout_ms // 50)
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def open_database(data_dir: Path, path: Path, config: StoreConfig) -> sqlite3.Connection:
    """Create ``data_dir`` if needed, open the database and apply pending migrations."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = connect(path, config)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def backup_database(path: Path, destination: Path, config: StoreConfig) -> int:
    """Copy the database at ``path`` to ``destination`` while servers keep using it.

    SQLite's online backup: a consistent snapshot (every committed transaction up to one
    moment, none half), copied in steps so that writers wait for at most one step. The
    copy is a plain database in rollback-journal mode, ready to be moved into place.
    ``destination`` must not exist. Returns its size in bytes.
    """
    if destination.exists():
        raise FileExistsError(f"{destination} exists: give a new file")
    source = connect(path, config, readonly=True)
    try:
        target = sqlite3.connect(destination)
        try:
            source.backup(target, pages=1024)
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
    finally:
        source.close()
    return destination.stat().st_size

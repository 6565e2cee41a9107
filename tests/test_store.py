from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from rtserver.config import StoreConfig
from rtserver.exceptions import StoreClosedError, StoreError
from rtserver.store import SCHEMA_VERSION, connect_database, open_store, transaction
from rtserver.store import apps as apps_repo
from rtserver.store._connection import connect

from conftest import make_config


def _insert(value: int):
    def job(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return job


async def _prepare(store) -> None:
    await store.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER UNIQUE)"))


async def test_concurrent_writers_share_few_commits_and_all_rows_land(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    writers = 400
    async with open_store(config) as store:
        await _prepare(store)
        commits_before = store.stats.commits
        async with trio.open_nursery() as nursery:
            for i in range(writers):
                nursery.start_soon(store.write, _insert(i))
        commits = store.stats.commits - commits_before
        count = await store.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0])
    assert count == writers
    # Group commit: hundreds of concurrent writes need only a handful of transactions.
    assert 1 <= commits <= writers // 10, commits


async def test_failing_job_rolls_back_alone(tmp_path: Path) -> None:
    async with open_store(make_config(tmp_path)) as store:
        await _prepare(store)
        results: dict[str, object] = {}

        async def attempt(name: str, job) -> None:
            try:
                results[name] = await store.write(job)
            except Exception as exc:
                results[name] = exc

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t (v) VALUES (100)")
            conn.execute("INSERT INTO t (v) VALUES (100)")  # violates UNIQUE: the job fails

        async with trio.open_nursery() as nursery:
            nursery.start_soon(attempt, "first", _insert(1))
            nursery.start_soon(attempt, "bad", half_then_fail)
            nursery.start_soon(attempt, "last", _insert(2))
        rows = await store.read(
            lambda conn: [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")]
        )
    assert results["first"] == 1 and results["last"] == 2
    assert isinstance(results["bad"], sqlite3.IntegrityError)
    assert rows == [1, 2]  # the failing job's first insert (100) was rolled back


async def test_after_commit_runs_in_commit_order_after_data_is_visible(tmp_path: Path) -> None:
    async with open_store(make_config(tmp_path)) as store:
        await _prepare(store)
        seen: list[tuple[int, int]] = []
        reader = sqlite3.connect(store.path)

        def hook(value: int) -> None:
            # Another connection already sees the row: the hook runs after the commit.
            visible = reader.execute("SELECT count(*) FROM t WHERE v = ?", (value,)).fetchone()[0]
            seen.append((value, visible))

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(lambda i=i: store.write(_insert(i), after_commit=hook))
                await trio.lowlevel.checkpoint()
        reader.close()
    assert [v for v, _ in seen] == list(range(50))
    assert all(visible == 1 for _, visible in seen)


async def test_queued_writes_commit_when_store_closes_and_later_writes_fail(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with trio.open_nursery() as nursery:
        async with open_store(config) as store:
            await _prepare(store)
            for i in range(200):
                nursery.start_soon(store.write, _insert(i))
            # Close while jobs are still queued: wait only until every writer queued its job.
            while store.stats.queued + store.stats.jobs < 201:
                await trio.lowlevel.checkpoint()
            assert store.stats.queued > 0
        with pytest.raises(StoreClosedError):
            await store.write(_insert(999))
    conn = sqlite3.connect(config.database_path)
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 200
    conn.close()


async def test_cancelled_caller_does_not_cancel_its_queued_write(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with open_store(config) as store:
        await _prepare(store)
        release = threading.Event()

        def blocker(conn: sqlite3.Connection) -> None:
            release.wait(10)  # keeps the writer busy so the next job stays queued

        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.write, blocker)
            with trio.CancelScope() as scope:
                while store.stats.queued < 1:
                    await trio.lowlevel.checkpoint()

                async def queue_then_cancel() -> None:
                    while store.stats.queued < 2:
                        await trio.lowlevel.checkpoint()
                    scope.cancel()

                nursery.start_soon(queue_then_cancel)
                await store.write(_insert(5))
            assert scope.cancelled_caught
            release.set()
        await store.write(_insert(6))  # the writer is in order: 5 was committed before 6
        rows = await store.read(
            lambda conn: [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")]
        )
    assert rows == [5, 6]


async def test_reads_are_read_only(tmp_path: Path) -> None:
    async with open_store(make_config(tmp_path)) as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await store.read(lambda conn: conn.execute("CREATE TABLE x (y)"))


def test_migrations_apply_once_and_set_user_version(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    for _ in range(2):
        conn = connect_database(config.data_dir, config.database_path, config.store)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    conn = connect_database(config.data_dir, config.database_path, config.store)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this rtserver"):
        connect_database(config.data_dir, config.database_path, config.store)


def test_api_keys_are_stored_only_as_hashes(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    conn = connect_database(config.data_dir, config.database_path, config.store)
    with transaction(conn):
        created = apps_repo.create_app(conn, "demo", now=time.time())
    dump = "\n".join(conn.iterdump())
    assert created.api_key not in dump
    assert apps_repo.authenticate(conn, created.api_key) == created.app
    assert apps_repo.authenticate(conn, created.api_key + "x") is None
    with transaction(conn):
        apps_repo.revoke_app(conn, created.app.app_id, now=time.time())
    assert apps_repo.authenticate(conn, created.api_key) is None
    conn.close()


def test_opening_a_new_database_another_process_is_switching_to_wal_waits(
    tmp_path: Path,
) -> None:
    """Two processes opening a new database at once (a server starting, a CLI command
    next to it): SQLite answers the WAL switch with "locked" at once, ignoring the busy
    timeout, while the other holds the file; the open waits for it instead of failing."""
    path = tmp_path / "db.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")  # still in rollback-journal mode
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        conn = connect(path, StoreConfig(busy_timeout_ms=5_000))
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    finally:
        release.join()
        other.close()


def test_each_connection_gets_the_configured_page_cache(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    for readonly in (False, True):
        conn = connect(path, StoreConfig(cache_mib=8), readonly=readonly)
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == -8 * 1024  # KiB
        conn.close()


def test_a_sqlite_without_json_functions_is_refused_with_a_clear_error() -> None:
    """The store packs many-row reads as one JSON row: a SQLite without its JSON functions
    fails at connect, saying so, not at the first ACK. (An authorizer denies them here.)"""
    from rtserver.store._connection import require_json_functions

    conn = sqlite3.connect(":memory:")
    require_json_functions(conn)

    def deny_json(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_FUNCTION and arg2 is not None and arg2.startswith("json"):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    conn.set_authorizer(deny_json)
    with pytest.raises(StoreError, match="JSON functions"):
        require_json_functions(conn)
    conn.close()

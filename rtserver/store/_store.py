"""The async face of the database: a reader pool and one group-committing writer.

All SQLite work happens on worker threads (``trio.to_thread``); the event loop never
blocks on the disk. Writes are *jobs*: plain functions that take a connection and run
inside a transaction. The writer takes every job queued at that moment (up to
``store.batch_max``), runs each in its own savepoint, and commits them together, so one
fsync pays for many writes and durable throughput grows with load.

Reads are grouped the same way: each of the ``store.readers`` connections has a task
that takes every read queued at that moment (up to ``_READ_BATCH``) and runs them in one
trip to its thread. A thread hop costs more than a small indexed query, so when
thousands of clients reconnect at once (an authentication and a resend read each) this
is what keeps reads from queueing behind one another.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import trio

from rtserver.config import Config
from rtserver.exceptions import StoreClosedError
from rtserver.store._connection import connect, open_database

T = TypeVar("T")

log = logging.getLogger("rtserver.store")

#: Seconds closing may spend committing jobs still queued when the store is closed.
_DRAIN_TIMEOUT = 30.0
#: Most reads one reader connection runs in one trip to its thread. A trip's end waits
#: for the event loop's next round, which under load runs thousands of tasks first:
#: with 64, the resend reads of 10,000 reconnecting clients waited 1.5 s each in the
#: queue (about 1,400 reads/s through 4 readers, at 15 µs of CPU per read).
_READ_BATCH = 512


@dataclass
class StoreStats:
    """Counters read by ``/metrics`` and by tests (plain ints: no metrics library here)."""

    jobs: int = 0
    failed_jobs: int = 0
    commits: int = 0
    failed_commits: int = 0
    queued: int = 0


@dataclass(eq=False)
class _Job(Generic[T]):
    run: Callable[[sqlite3.Connection], T]
    after_commit: Callable[[T], None] | None
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Read:
    query: Callable[..., Any]
    args: tuple[Any, ...]
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


class Store:
    """Reads and writes on worker threads; see the module docstring for the model.

    Get one from :func:`open_store`; it is closed when that context exits.
    """

    def __init__(self, config: Config, writer: sqlite3.Connection) -> None:
        self._config = config.store
        self._path = config.database_path
        self._writer_conn = writer
        self._send, self._receive = trio.open_memory_channel[_Job[Any]](config.store.queue_max)
        self._reads_send, self._reads = trio.open_memory_channel[_Read](config.store.queue_max)
        self._reader_conns: list[sqlite3.Connection] = []
        self._closing = False
        self._writer_done = trio.Event()
        self.stats = StoreStats()

    @property
    def path(self) -> str:
        return str(self._path)

    async def write(
        self,
        job: Callable[[sqlite3.Connection], T],
        *,
        after_commit: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``job(conn)`` in a write transaction; return its result once committed.

        ``job`` runs on the writer thread inside a savepoint: if it raises, its changes
        are rolled back and the exception is re-raised here, while the other jobs of the
        same batch still commit. ``after_commit(result)`` runs on the event loop right
        after the commit, in commit order, before any later job's; it must not block
        (it is where committed events are handed to the hub).

        Once queued, a job commits even if the caller is cancelled while waiting.
        Raises :class:`StoreClosedError` after the store began closing.
        """
        if self._closing:
            raise StoreClosedError("the store is closing")
        entry: _Job[T] = _Job(job, after_commit)
        try:
            await self._send.send(entry)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosedError("the store is closing") from None
        self.stats.queued += 1
        await entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[no-any-return]

    async def read(self, query: Callable[..., T], *args: Any) -> T:
        """Run ``query(conn, *args)`` on one of the read-only connections; return its result.

        Reads see every committed write (WAL snapshot at the start of the query). A
        caller cancelled while waiting returns at once; its query may still run.
        Raises :class:`StoreClosedError` once the store is closed.
        """
        read = _Read(query, args)
        try:
            await self._reads_send.send(read)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreClosedError("the store is closed") from None
        await read.done.wait()
        if read.error is not None:
            raise read.error
        return read.result  # type: ignore[no-any-return]

    async def check_writable(self) -> None:
        """Raise unless a write transaction can commit now (used by ``/readyz``)."""
        await self.write(_touch)

    # -- lifecycle ---------------------------------------------------------------------

    def _open_readers(self) -> None:
        for _ in range(self._config.readers):
            self._reader_conns.append(connect(self._path, self._config, readonly=True))

    async def _run_reader(self, conn: sqlite3.Connection) -> None:
        """One reader connection's task: every read queued, one thread trip per batch."""
        reads = self._reads
        while True:
            try:
                batch = [await reads.receive()]
            except trio.EndOfChannel:
                return
            while len(batch) < _READ_BATCH:
                try:
                    batch.append(reads.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            # Shielded: the readers are cancelled only after the store closed, and a
            # batch taken off the queue must answer its callers.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_run_reads, conn, batch)
            for read in batch:
                read.done.set()

    def _close_connections(self) -> None:
        for conn in self._reader_conns:
            conn.close()
        self._writer_conn.execute("PRAGMA optimize")
        self._writer_conn.close()

    async def _run_writer(self) -> None:
        receive = self._receive
        try:
            while True:
                try:
                    batch = [await receive.receive()]
                except trio.EndOfChannel:
                    return
                while len(batch) < self._config.batch_max:
                    try:
                        batch.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await trio.to_thread.run_sync(self._commit, batch)
                self._finish(batch)
        finally:
            # Cancelled from outside (the server torn down without its graceful close):
            # nothing will run the jobs still queued, so their callers are told now
            # instead of waiting forever (a shielded last write would hang the exit).
            self._closing = True
            self._send.close()
            while True:
                try:
                    job = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                job.error = StoreClosedError("the store closed before this write ran")
                job.done.set()
            receive.close()
            self._writer_done.set()

    def _commit(self, batch: list[_Job[Any]]) -> None:
        conn = self._writer_conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail(batch, exc)
            return
        for job in batch:
            conn.execute("SAVEPOINT job")
            try:
                job.result = job.run(conn)
            except Exception as exc:
                job.error = exc
                conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._fail(batch, exc)
            return
        self.stats.commits += 1

    def _fail(self, batch: list[_Job[Any]], exc: sqlite3.Error) -> None:
        log.error("commit of %d write jobs failed: %s", len(batch), exc)
        self.stats.failed_commits += 1
        for job in batch:
            job.error = exc

    def _finish(self, batch: list[_Job[Any]]) -> None:
        for job in batch:
            self.stats.jobs += 1
            self.stats.queued -= 1
            if job.error is not None:
                self.stats.failed_jobs += 1
            elif job.after_commit is not None:
                try:
                    job.after_commit(job.result)
                except Exception:
                    # The data is committed; a failing hand-off must not fail the batch.
                    log.exception("after-commit hook failed")
            job.done.set()


def _run_reads(conn: sqlite3.Connection, batch: list[_Read]) -> None:
    for read in batch:
        try:
            read.result = read.query(conn, *read.args)
        except Exception as exc:
            read.error = exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")


def _touch(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA user_version").fetchone()
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _ready_probe(x)")
    conn.execute("INSERT INTO _ready_probe VALUES (1)")
    conn.execute("DELETE FROM _ready_probe")


@asynccontextmanager
async def open_store(config: Config) -> AsyncIterator[Store]:
    """Open (and migrate) the database; on exit, commit every queued write, then close.

    Closing waits for jobs queued before it, even when the body raised, so that a write
    accepted before a shutdown or a crash of another service is not lost.
    """
    writer = await trio.to_thread.run_sync(
        open_database, config.data_dir, config.database_path, config.store
    )
    store = Store(config, writer)
    try:
        await trio.to_thread.run_sync(store._open_readers)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store._run_writer)
            for conn in store._reader_conns:
                nursery.start_soon(store._run_reader, conn)
            try:
                yield store
            finally:
                store._closing = True
                store._reads_send.close()
                store._send.close()
                with trio.CancelScope(shield=True), trio.move_on_after(_DRAIN_TIMEOUT):
                    await store._writer_done.wait()
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(store._close_connections)

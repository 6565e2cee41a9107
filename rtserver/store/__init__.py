"""Embedded SQLite storage: schema, connections, the group-committing writer.

The public surface is :func:`open_store` and :class:`Store` for the server, and
:func:`connect_database` plus :func:`transaction` for synchronous callers (the CLI).
Repositories (``rtserver.store.apps`` and those later concerns add) are plain functions
over a ``sqlite3.Connection`` so both kinds of caller share them. They read no clock: the
time of a change is a parameter (``now`` in Unix seconds, ``now_ms`` in milliseconds) that
the caller takes from its :class:`rtserver.clock.Clock`.
"""

from rtserver.store._connection import backup_database, transaction
from rtserver.store._connection import open_database as connect_database
from rtserver.store._schema import SCHEMA_VERSION
from rtserver.store._store import Store, StoreStats, open_store

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "StoreStats",
    "backup_database",
    "connect_database",
    "open_store",
    "transaction",
]

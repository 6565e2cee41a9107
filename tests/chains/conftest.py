"""Fixtures for the chain watcher tests: a real Anvil node, a server watching it, a recording sink."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from anvil import Anvil, anvil_binary, start_anvil

from rtserver.components import Component
from rtserver.config import ChainConfig
from rtserver.core import Core
from rtserver.events import TransactionMatch
from rtserver.server import DEFAULT_COMPONENTS

from conftest import RunningServer, make_config, run_server

CHAIN_TYPE = "anvil"
APP_ID = "app-test"

pytestmark = pytest.mark.anvil


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if anvil_binary() is None:
        skip = pytest.mark.skip(reason="Anvil not installed (run ./scripts/test)")
        for item in items:
            if "chains" in item.nodeid.split("/"):
                item.add_marker(skip)


@dataclass
class Published:
    match: TransactionMatch
    at: float  # time.perf_counter() when published (after commit)


@dataclass
class RecordingSink:
    """A MatchSink that remembers what was staged and published, and wakes waiters."""

    staged: list[TransactionMatch] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event)

    def stage(self, conn: sqlite3.Connection, matches: Sequence[TransactionMatch]) -> object:
        # Runs on the writer thread inside the watcher's transaction.
        assert conn.in_transaction
        self.staged.extend(matches)
        return list(matches)

    def publish(self, staged: object) -> None:
        now = time.perf_counter()
        for match in staged:  # type: ignore[attr-defined]
            self.published.append(Published(match, now))
        self._changed.set()
        self._changed = trio.Event()

    def matches(self, tx_hash: str | None = None) -> list[TransactionMatch]:
        return [
            p.match for p in self.published if tx_hash is None or p.match.record.tx_hash == tx_hash
        ]

    async def wait_for(
        self, predicate: Callable[[TransactionMatch], bool], *, within: float = 20.0
    ) -> Published:
        """The first published match satisfying ``predicate`` (waits for it)."""
        with trio.fail_after(within):
            while True:
                for item in self.published:
                    if predicate(item.match):
                        return item
                await self._changed.wait()

    async def wait_tx(self, tx_hash: str, *, within: float = 20.0, **expect: Any) -> Published:
        def ok(m: TransactionMatch) -> bool:
            return m.record.tx_hash == tx_hash and all(
                getattr(m, k) == v if hasattr(m, k) else getattr(m.record, k) == v
                for k, v in expect.items()
            )

        return await self.wait_for(ok, within=within)


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    node = start_anvil(tmp_path / "anvil")
    try:
        yield node
    finally:
        node.stop()


def chain_config(node: Anvil, **overrides: Any) -> ChainConfig:
    values: dict[str, Any] = {
        "chain_type": CHAIN_TYPE,
        "chain_id": node.chain_id,
        "rpc_urls": (node.url,),
        "poll_interval": 0.1,
        "rpc_timeout": 5.0,
    }
    values.update(overrides)
    return ChainConfig(**values)


@dataclass
class Watching:
    """A server following one chain, with a recording sink."""

    server: RunningServer
    sink: RecordingSink

    @property
    def core(self) -> Any:
        return self.server.core

    def watch(self, *addresses: str, app_id: str = APP_ID) -> None:
        for address in addresses:
            self.core.watched.add(app_id, CHAIN_TYPE, address)

    async def wait_processed(self, number: int, within: float = 20.0) -> None:
        """Wait until the chain's checkpoint reached block ``number``."""
        with trio.fail_after(within):
            while True:
                checkpoint = await self.core.store.read(_checkpoint)
                if checkpoint is not None and checkpoint >= number:
                    return
                await trio.sleep(0.02)


def _checkpoint(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT MAX(block_number) FROM chain_checkpoints").fetchone()
    return None if row is None else row[0]


@asynccontextmanager
async def watching(
    tmp_path: Path, chain: ChainConfig, *, watch: Sequence[str] = ()
) -> AsyncIterator[Watching]:
    """Run an in-process server that follows ``chain``.

    The recording sink and the ``watch`` addresses are in place before the watcher
    starts (a component factory runs before any service), so nothing is missed.
    """
    config = make_config(tmp_path / "data").replace(chains=(chain,))
    sink = RecordingSink()

    def setup(core: Core) -> Component:
        core.match_sink.add(sink)
        for address in watch:
            core.watched.add(APP_ID, CHAIN_TYPE, address)
        return Component("test-chain-setup")

    async with run_server(config, (*DEFAULT_COMPONENTS, setup)) as server:
        yield Watching(server, sink)

"""Restarts in-process: resume from the checkpoint; re-processing blocks changes and emits nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from anvil import Anvil

from chains.conftest import CHAIN_TYPE, chain_config, watching
from rtserver.store.transactions import store_records


def _rows(conn: sqlite3.Connection) -> list[tuple[int, str, str, int, int]]:
    return conn.execute(
        "SELECT id, tx_hash, body, removed, updated_at FROM transactions ORDER BY id"
    ).fetchall()


def _rewind(conn: sqlite3.Connection, number: int) -> None:
    conn.execute("UPDATE chain_checkpoints SET block_number = ?", (number,))
    conn.execute("DELETE FROM chain_blocks WHERE number > ?", (number,))


async def test_reprocessing_blocks_changes_nothing_and_emits_nothing(
    tmp_path: Path, anvil: Anvil
) -> None:
    watched = anvil.accounts[3]
    chain = chain_config(anvil, start_block="1")
    async with watching(tmp_path, chain, watch=(watched,)) as w:
        sent = [await anvil.transfer(anvil.accounts[0], watched, v) for v in (1, 2, 3)]
        for tx_hash in sent:
            await w.sink.wait_tx(tx_hash)
        head = await anvil.block_number()
        await w.wait_processed(head)
        before = await w.core.store.read(_rows)
    assert len(before) == 3

    # As if the process died right after committing block 1 (the checkpoint is only
    # ever behind the records, never ahead): blocks 2.. are processed a second time.
    conn = sqlite3.connect(tmp_path / "data" / "rtserver.sqlite3")
    with conn:
        _rewind(conn, 1)
    conn.close()
    async with watching(tmp_path, chain, watch=(watched,)) as w:
        later = await anvil.transfer(anvil.accounts[0], watched, 4)
        await w.sink.wait_tx(later)
        await w.wait_processed(await anvil.block_number())
        assert [m.record.tx_hash for m in w.sink.matches()] == [later.lower()]
        after = await w.core.store.read(_rows)
    assert after[:3] == before  # same ids, bodies, flags, even updated_at
    assert after[3][1] == later.lower()


async def test_restart_resumes_after_the_checkpoint(tmp_path: Path, anvil: Anvil) -> None:
    watched = anvil.accounts[4]
    chain = chain_config(anvil)
    async with watching(tmp_path, chain, watch=(watched,)) as w:
        first = await anvil.transfer(anvil.accounts[0], watched, 1)
        await w.sink.wait_tx(first)
    # While the server is down: transfers and empty blocks.
    missed = [await anvil.transfer(anvil.accounts[0], watched, v) for v in (2, 3)]
    await anvil.mine(5)
    async with watching(tmp_path, chain, watch=(watched,)) as w:
        for tx_hash in missed:
            assert (await w.sink.wait_tx(tx_hash)).match.is_reorg_resend is False
        await w.wait_processed(await anvil.block_number())
        assert w.sink.matches(first) == []
        count = await w.core.store.read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM transactions WHERE chain_type = ?", (CHAIN_TYPE,)
            ).fetchone()[0]
        )
        assert count == 3


async def test_record_cached_by_the_origin_fetch_is_still_delivered(
    tmp_path: Path, anvil: Anvil
) -> None:
    """The V2 detail may cache a transaction before the watcher reaches its block."""
    watched = anvil.accounts[5]
    await anvil.mine(3)
    chain = chain_config(anvil, confirmations=2)
    async with watching(tmp_path, chain, watch=(watched,)) as w:
        tx_hash = await anvil.transfer(anvil.accounts[0], watched, 8)
        source = w.core.transaction_sources[(CHAIN_TYPE, anvil.chain_id)]
        fetched = await source.fetch_transaction(tx_hash)
        assert fetched is not None
        now = w.core.clock.time()
        (outcome,) = await w.core.store.write(lambda conn: store_records(conn, [fetched], now=now))
        assert outcome.created
        await anvil.mine(2)
        published = await w.sink.wait_tx(tx_hash)
        assert published.match.is_reorg_resend is False
        assert published.match.record.id == outcome.record.id
        await anvil.mine(2)
        await w.wait_processed(await anvil.block_number() - 2)
        assert len(w.sink.matches(tx_hash)) == 1

"""Reorgs on a real Anvil node (``anvil_reorg``): orphaned records marked, reappearing ones resent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from anvil import Anvil

from chains.conftest import CHAIN_TYPE, chain_config, watching
from rtserver.protocols.address_monitoring._naming import push_data, transaction_result
from rtserver.store import chain_state
from rtserver.store.transactions import get_record


def _hashes(conn: sqlite3.Connection) -> dict[int, str]:
    return {b.number: b.hash for b in chain_state.recent_blocks(conn, CHAIN_TYPE, 31337)}


async def test_reorg_marks_orphans_removed_and_resends_moved_records(
    tmp_path: Path, anvil: Anvil
) -> None:
    watched = anvil.accounts[8]
    mover, vanisher = anvil.accounts[9], anvil.accounts[0]
    async with watching(tmp_path, chain_config(anvil)) as w:
        w.watch(watched)
        await anvil.mine(1)
        fork_base = await anvil.block_number()  # block m: will be replaced too
        moved = await anvil.transfer(mover, watched, 11)  # block m+1, moves to m
        raw = await anvil.rpc("eth_getRawTransactionByHash", moved)
        gone = await anvil.transfer(vanisher, watched, 22)  # block m+2, vanishes
        first = (await w.sink.wait_tx(moved)).match
        await w.sink.wait_tx(gone)
        assert first.record.height == fork_base + 1 and not first.is_reorg_resend
        await w.wait_processed(fork_base + 2)
        old_hashes = await w.core.store.read(_hashes)

        # Replace blocks m..m+2: the moved tx goes into the new block m, the other is dropped.
        await anvil.reorg(3, [(raw, 0)])
        assert await anvil.rpc("eth_getTransactionByHash", gone) is None
        await anvil.mine(1)  # the next block reveals the reorg (parent hash mismatch)

        resent = (await w.sink.wait_tx(moved, is_reorg_resend=True)).match
        assert resent.record.removed is False
        assert resent.record.height == fork_base
        assert resent.record.id == first.record.id  # same row, same cursor id
        assert resent.listen_addresses == (watched,)
        orphan = (await w.sink.wait_tx(gone, is_reorg_resend=True)).match
        assert orphan.record.removed is True
        assert push_data(orphan.record, orphan.listen_addresses, True)["removed"] is True
        assert transaction_result(orphan.record)["removed"] is True

        stored_gone = await w.core.store.read(get_record, CHAIN_TYPE, anvil.chain_id, gone)
        assert stored_gone is not None and stored_gone.removed
        stored_moved = await w.core.store.read(get_record, CHAIN_TYPE, anvil.chain_id, moved)
        assert stored_moved is not None and not stored_moved.removed
        assert stored_moved.height == fork_base

        reorgs = w.core.metrics.registry.get_sample_value(
            "rtserver_chain_reorgs_total", {"chain": f"{CHAIN_TYPE}:31337"}
        )
        assert reorgs == 1

        # The kept hashes follow the new chain.
        head = await anvil.block_number()
        await w.wait_processed(head)
        new_hashes = await w.core.store.read(_hashes)
        for number in range(fork_base, fork_base + 3):
            block = await anvil.rpc("eth_getBlockByNumber", hex(number), False)
            assert new_hashes[number] == block["hash"].lower() != old_hashes[number]

        # Each change was emitted once; later blocks emit nothing more for them.
        await anvil.mine(2)
        await w.wait_processed(head + 2)
        assert len(w.sink.matches(moved)) == 2 and len(w.sink.matches(gone)) == 2
        assert (
            len(
                await w.core.store.read(
                    lambda c: c.execute("SELECT id FROM transactions").fetchall()
                )
            )
            == 2
        )


async def test_replaced_tip_is_noticed_through_new_heads(tmp_path: Path, anvil: Anvil) -> None:
    """With ws_url, a reorg that replaces the tip at the same height needs no further block."""
    watched = anvil.accounts[7]
    chain = chain_config(anvil, ws_url=anvil.ws_url, poll_interval=30.0)
    async with watching(tmp_path, chain, watch=(watched,)) as w:
        gone = await anvil.transfer(anvil.accounts[0], watched, 5)
        await w.sink.wait_tx(gone)
        head = await anvil.block_number()
        await anvil.reorg(
            1, [({"from": anvil.accounts[1], "to": anvil.accounts[2], "value": "0x1"}, 0)]
        )
        assert await anvil.block_number() == head
        orphan = (await w.sink.wait_tx(gone, is_reorg_resend=True, within=10)).match
        assert orphan.record.removed is True

"""RPC faults (timeouts, 429, garbage, partial batches) and failover never make the watcher skip a block."""

from __future__ import annotations

import itertools
import logging
import sqlite3
from pathlib import Path

import pytest
import trio
from anvil import Anvil

from chains.conftest import CHAIN_TYPE, chain_config, watching
from chains.faulty_rpc import FaultyRpc
from rtserver.chains import _watcher
from rtserver.store import chain_state

from conftest import free_port


def _blocks(conn: sqlite3.Connection) -> list[chain_state.BlockRef]:
    return chain_state.recent_blocks(conn, CHAIN_TYPE, 31337)


def _error_count(core: object, kind: str) -> float:
    value = core.metrics.registry.get_sample_value(  # type: ignore[attr-defined]
        "rtserver_chain_rpc_errors_total", {"chain": f"{CHAIN_TYPE}:31337", "kind": kind}
    )
    return value or 0.0


async def test_timeouts_429_and_garbage_do_not_skip_a_block(
    tmp_path: Path, anvil: Anvil, nursery: trio.Nursery
) -> None:
    schedule = [
        "ok",
        "timeout",
        "ok",
        "429",
        "reset",
        "ok",
        "garbage",
        "partial",
        "ok",
        "500",
        "wrong",
        "ok",
    ]
    proxy = FaultyRpc(anvil.url, schedule, hang=2.0)
    await nursery.start(proxy.serve)
    watched = anvil.accounts[5]
    start = await anvil.block_number() + 1
    chain = chain_config(anvil, rpc_urls=(proxy.url,), rpc_timeout=0.5, start_block=str(start))
    async with watching(tmp_path, chain) as w:
        w.watch(watched)
        sent: list[str] = []

        async def transfer_and_empty_block() -> None:
            sent.append(await anvil.transfer(anvil.accounts[0], watched, len(sent) + 1))
            await anvil.mine(1)

        for _ in range(8):
            await transfer_and_empty_block()
        # How many requests the watcher needs depends on timing (a batch may cover several
        # blocks): more blocks until it met every fault of the schedule.
        with trio.fail_after(60):
            while not all(proxy.faults[f] > 0 for f in schedule):
                await transfer_and_empty_block()
                await trio.sleep(0.2)
        for tx_hash in sent:
            await w.sink.wait_tx(tx_hash, within=60)
        head = await anvil.block_number()
        await w.wait_processed(head, within=60)

        # Every block from the start to the head was processed, each linked to its parent.
        blocks = await w.core.store.read(_blocks)
        assert [b.number for b in blocks] == list(range(start, head + 1))
        for parent, child in itertools.pairwise(blocks):
            assert child.parent_hash == parent.hash
        for block in blocks:
            assert (
                block.hash
                == (await anvil.rpc("eth_getBlockByNumber", hex(block.number), False))["hash"]
            )
        # Every transfer stored once, with the right amount.
        assert sorted(int(w.sink.matches(h)[0].record.amount or 0) for h in sent) == list(
            range(1, len(sent) + 1)
        )
        assert all(len(w.sink.matches(h)) == 1 for h in sent)
        for kind in ("timeout", "rate_limited", "malformed", "http_status", "transport"):
            assert _error_count(w.core, kind) > 0, kind
    assert all(proxy.faults[f] > 0 for f in schedule)


async def test_failover_to_the_next_rpc_url(tmp_path: Path, anvil: Anvil) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    watched = anvil.accounts[6]
    async with watching(tmp_path, chain_config(anvil, rpc_urls=(dead, anvil.url))) as w:
        w.watch(watched)
        tx_hash = await anvil.transfer(anvil.accounts[0], watched, 3)
        match = (await w.sink.wait_tx(tx_hash)).match
        assert match.record.amount == "3"
        assert _error_count(w.core, "transport") >= 1


async def test_catch_up_beyond_max_catchup_blocks_skips_loudly(
    tmp_path: Path, anvil: Anvil, caplog: object
) -> None:
    early_watched, late_watched = anvil.accounts[7], anvil.accounts[8]
    early = await anvil.transfer(anvil.accounts[0], early_watched, 1)  # block 1
    await anvil.mine(30)
    late = await anvil.transfer(anvil.accounts[0], late_watched, 2)
    head = await anvil.block_number()
    chain = chain_config(anvil, start_block="1", max_catchup_blocks=10, batch_blocks=4)
    async with watching(tmp_path, chain, watch=(early_watched, late_watched)) as w:
        await w.sink.wait_tx(late)
        await w.wait_processed(head)
        skipped = w.core.metrics.registry.get_sample_value(
            "rtserver_chain_skipped_blocks_total", {"chain": f"{CHAIN_TYPE}:31337"}
        )
        assert skipped == head - 10
        blocks = await w.core.store.read(_blocks)
        assert blocks[0].number == head - 10 + 1
        assert w.sink.matches(early) == []
    assert "SKIPPING blocks 1.." in caplog.text  # type: ignore[attr-defined]


async def test_nodes_without_eth_get_block_receipts(
    tmp_path: Path, anvil: Anvil, nursery: trio.Nursery
) -> None:
    proxy = FaultyRpc(anvil.url, ["ok"], unsupported=frozenset({"eth_getBlockReceipts"}))
    await nursery.start(proxy.serve)
    watched = anvil.accounts[4]
    async with watching(
        tmp_path, chain_config(anvil, rpc_urls=(proxy.url,)), watch=(watched,)
    ) as w:
        asked: list[int] = []
        for v in (1, 2):
            tx_hash = await anvil.transfer(anvil.accounts[0], watched, v)
            record = (await w.sink.wait_tx(tx_hash)).match.record
            assert record.gas_used == "21000" and record.tx_status == "success"
            asked.append(proxy.calls["eth_getBlockReceipts"])
    # Asked in the first batch (with its blocks), then never again: only the fallback.
    assert asked[0] >= 1 and asked[1] == asked[0]
    assert proxy.calls["eth_getTransactionReceipt"] >= 2


async def test_readyz_reports_a_lagging_watcher(
    tmp_path: Path, anvil: Anvil, nursery: trio.Nursery
) -> None:
    proxy = FaultyRpc(anvil.url, ["ok"], hang=1.0)
    await nursery.start(proxy.serve)
    check = f"chain {CHAIN_TYPE}:31337"
    chain = chain_config(anvil, rpc_urls=(proxy.url,), rpc_timeout=0.3, max_lag_blocks=3)
    async with watching(tmp_path, chain) as w, w.server.client() as client:
        await w.wait_processed(await anvil.block_number())
        assert (await client.get("/readyz")).status_code == 200
        # The node answers eth_blockNumber but no block: the watcher falls behind.
        proxy.blocked.add("eth_getBlockByNumber")
        await anvil.mine(5)
        with trio.fail_after(20):
            while (response := await client.get("/readyz")).status_code == 200:
                await trio.sleep(0.05)
        assert response.status_code == 503
        assert "blocks behind the head (max_lag_blocks = 3)" in response.json()["checks"][check]
        proxy.blocked.clear()
        await w.wait_processed(await anvil.block_number(), within=30)
        with trio.fail_after(20):
            while (response := await client.get("/readyz")).status_code != 200:
                await trio.sleep(0.05)
        assert response.json()["checks"][check] == "ok"


async def test_readyz_notices_a_dead_node_within_unready_after(
    tmp_path: Path, anvil: Anvil
) -> None:
    check = f"chain {CHAIN_TYPE}:31337"
    chain = chain_config(anvil, unready_after=1.0)
    async with watching(tmp_path, chain) as w, w.server.client() as client:
        await w.wait_processed(await anvil.block_number())
        assert (await client.get("/readyz")).status_code == 200
        anvil.stop()  # the node dies: every call is refused from now on
        # Noticed once the RPC has failed for unready_after (1 s), not after a caller's
        # retries ran out (~6 s here) plus 30 s as before: the bound is the behaviour.
        with trio.fail_after(5):
            while (response := await client.get("/readyz")).status_code == 200:
                await trio.sleep(0.05)
        assert response.status_code == 503
        assert response.json()["checks"][check].startswith("RPC failing for")


async def test_a_long_catch_up_logs_its_progress(
    tmp_path: Path, anvil: Anvil, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_watcher, "CATCH_UP_LOG_INTERVAL", 0.0)  # a line per batch
    await anvil.mine(60)
    chain = chain_config(anvil, start_block="0", batch_blocks=20)
    with caplog.at_level(logging.INFO, logger="rtserver.chains"):
        async with watching(tmp_path, chain) as w:
            await w.wait_processed(60)
    progress = [r for r in caplog.records if "catching up" in r.getMessage()]
    assert len(progress) >= 2
    first = progress[0].fields  # type: ignore[attr-defined]
    assert first["chain"] == f"{CHAIN_TYPE}:31337" and first["blocks_done"] > 0
    assert first["blocks_left"] > 0 and "blocks_per_s" in first
    done = [r for r in caplog.records if "caught up" in r.getMessage()]
    assert done and done[-1].fields["blocks_left"] == 0  # type: ignore[attr-defined]

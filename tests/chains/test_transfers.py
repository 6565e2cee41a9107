"""Native, ERC-20, failed and internal transfers seen on a real Anvil node, with the spec's fields."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest
import trio
from anvil import Anvil

from chains.conftest import APP_ID, CHAIN_TYPE, chain_config, watching
from chains.ws_proxy import WsProxy
from rtserver.protocols.address_monitoring._naming import push_data
from rtserver.store.transactions import get_record

from conftest import free_port

ETH = 10**18


def _token_row(conn: sqlite3.Connection, address: str) -> tuple[str | None, int | None] | None:
    row = conn.execute(
        "SELECT symbol, decimals FROM token_metadata WHERE address = ?", (address,)
    ).fetchone()
    return None if row is None else (row[0], row[1])


async def test_native_transfer_is_stored_with_the_spec_fields(tmp_path: Path, anvil: Anvil) -> None:
    sender, receiver = anvil.accounts[0], anvil.accounts[1]
    async with watching(tmp_path, chain_config(anvil, poll_interval=1.0)) as w:
        w.watch(receiver.upper().replace("0X", "0x"))  # watched in another case: still matches
        latencies = []
        for _ in range(3):
            sent = time.perf_counter()
            tx_hash = await anvil.transfer(sender, receiver, ETH)
            published = await w.sink.wait_tx(tx_hash)
            latencies.append(published.at - sent)
        print(
            f"\ntransfer -> stored+published latency, polling every 1.0 s: "
            f"{', '.join(f'{x * 1000:.0f} ms' for x in latencies)}"
        )

        match = published.match
        assert match.app_id == APP_ID
        assert match.listen_addresses == (receiver,)
        assert match.is_reorg_resend is False
        record = match.record
        receipt = await anvil.receipt(tx_hash)
        tx = await anvil.rpc("eth_getTransactionByHash", tx_hash)
        block = await anvil.rpc("eth_getBlockByNumber", receipt["blockNumber"], False)
        assert record.chain_type == CHAIN_TYPE and record.chain_id == anvil.chain_id
        assert record.tx_hash == tx_hash.lower()
        assert record.height == int(receipt["blockNumber"], 16)
        assert record.block_hash == receipt["blockHash"].lower()
        assert record.tx_time == int(block["timestamp"], 16)
        assert record.sender == sender and record.fee_payer == sender
        assert record.receiver == receiver
        assert record.transfer_type == "native"
        assert record.amount == str(ETH)
        assert record.symbol == "ETH" and record.decimals == 18
        assert record.tx_status == "success"
        assert record.gas_limit == str(int(tx["gas"], 16))
        assert record.gas_used == "21000"
        price = int(receipt["effectiveGasPrice"], 16)
        assert record.gas_price == str(price)
        assert record.tx_fee == str(21000 * price)
        assert record.max_fee_per_gas == str(int(tx["maxFeePerGas"], 16))
        assert record.max_priority_fee_per_gas == str(int(tx["maxPriorityFeePerGas"], 16))
        assert record.nonce == str(int(tx["nonce"], 16))
        assert record.method_id is None
        assert record.token_transfers == () and record.internal_transactions == ()
        assert record.id is not None

        stored = await w.core.store.read(get_record, CHAIN_TYPE, anvil.chain_id, tx_hash.lower())
        assert stored == record and stored.id == record.id and not stored.removed
        push = push_data(record, match.listen_addresses, match.is_reorg_resend)
        assert push["txhash"] == tx_hash.lower() and push["listenAddress"] == [receiver]
        assert push["tokenTransferDetails"] is None and "removed" not in push

        # The V2 detail's origin fetch gives the same record; an unknown hash gives None.
        source = w.core.transaction_sources[(CHAIN_TYPE, anvil.chain_id)]
        fetched = await source.fetch_transaction(tx_hash.upper().replace("0X", ""))
        assert fetched == record
        assert await source.fetch_transaction("0x" + "ab" * 32) is None

        # Readiness and metrics report the chain.
        async with w.server.client() as client:
            ready = (await client.get("/readyz")).json()
            assert ready["checks"][f"chain {CHAIN_TYPE}:{anvil.chain_id}"] == "ok"
            metrics = (await client.get("/metrics")).text
        head = await anvil.block_number()
        assert (
            f'rtserver_chain_head_block{{chain="{CHAIN_TYPE}:{anvil.chain_id}"}} {head}.0'
            in metrics
        )
        assert "rtserver_chain_rpc_duration_seconds_bucket" in metrics
        assert 'rtserver_chain_lag_blocks{chain="anvil:31337"}' in metrics

        # An unwatched transfer is not stored.
        other = await anvil.transfer(sender, anvil.accounts[5], 1)
        await w.wait_processed(int((await anvil.receipt(other))["blockNumber"], 16))
        assert await w.core.store.read(get_record, CHAIN_TYPE, anvil.chain_id, other) is None


async def test_native_transfer_with_ws_url_wakes_the_watcher(tmp_path: Path, anvil: Anvil) -> None:
    sender, receiver = anvil.accounts[0], anvil.accounts[2]
    # Polling every 30 s: only the newHeads subscription can make this quick.
    chain = chain_config(anvil, poll_interval=30.0, ws_url=anvil.ws_url)
    async with watching(tmp_path, chain) as w:
        w.watch(receiver)
        latencies = []
        for _ in range(5):
            sent = time.perf_counter()
            tx_hash = await anvil.transfer(sender, receiver, 7)
            published = await w.sink.wait_tx(tx_hash, within=10)
            latencies.append(published.at - sent)
        print(
            f"\ntransfer -> stored+published latency with ws_url (newHeads): "
            f"{', '.join(f'{x * 1000:.0f} ms' for x in latencies)}"
        )
        assert published.match.record.amount == "7"


async def test_erc20_transfers_with_token_metadata(tmp_path: Path, anvil: Anvil) -> None:
    owner, alice = anvil.accounts[0], anvil.accounts[3]
    async with watching(tmp_path, chain_config(anvil)) as w:
        token = await anvil.deploy(
            "TestToken", ["string", "string", "uint8", "uint256"], ["Test Token", "TT", 6, 10**15]
        )
        odd = await anvil.deploy("OddToken", ["uint256"], [10**9])
        w.watch(alice)
        tx_hash = await anvil.call(
            owner, token, "transfer(address,uint256)", ["address", "uint256"], [alice, 1_234_567]
        )
        record = (await w.sink.wait_tx(tx_hash)).match.record
        assert record.transfer_type == "token"
        assert record.sender == owner and record.receiver == token
        assert record.amount == "0" and record.symbol == "ETH"
        assert record.method_id == "0xa9059cbb"
        assert record.method_call == "transfer(address,uint256)"
        assert record.tx_status == "success"
        (transfer,) = record.token_transfers
        assert transfer.from_address == owner and transfer.to_address == alice
        assert transfer.token_contract_address == token
        assert transfer.amount == "1234567"
        assert transfer.symbol == "TT" and transfer.decimals == 6
        assert transfer.is_from_contract is False and transfer.is_to_contract is False
        assert push_data(record, [alice], False)["tokenTransferDetails"][0]["symbol"] == "TT"
        assert await w.core.store.read(_token_row, token) == ("TT", 6)

        # bytes32 symbol, reverting decimals().
        tx_hash = await anvil.call(
            owner, odd, "transfer(address,uint256)", ["address", "uint256"], [alice, 99]
        )
        (transfer,) = (await w.sink.wait_tx(tx_hash)).match.record.token_transfers
        assert transfer.symbol == "ODD" and transfer.decimals is None
        assert transfer.amount == "99" and transfer.token_contract_address == odd
        assert await w.core.store.read(_token_row, odd) == ("ODD", None)

        # Tokens sent to a contract (the token itself here): is_to_contract.
        tx_hash = await anvil.call(
            alice, token, "transfer(address,uint256)", ["address", "uint256"], [odd, 5]
        )
        (transfer,) = (await w.sink.wait_tx(tx_hash)).match.record.token_transfers
        assert transfer.from_address == alice and transfer.is_from_contract is False
        assert transfer.to_address == odd and transfer.is_to_contract is True


async def test_failed_transaction_is_stored_as_failed(tmp_path: Path, anvil: Anvil) -> None:
    sender = anvil.accounts[4]
    async with watching(tmp_path, chain_config(anvil)) as w:
        splitter = await anvil.deploy("Splitter")
        w.watch(sender)
        tx_hash = await anvil.call(sender, splitter, "fail()", [], [], value=5, gas=100_000)
        record = (await w.sink.wait_tx(tx_hash)).match.record
        assert record.tx_status == "failed"
        assert record.receiver == splitter and record.amount == "5"
        receipt = await anvil.receipt(tx_hash)
        assert record.gas_used == str(int(receipt["gasUsed"], 16))
        assert record.tx_fee == str(
            int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        )


async def test_internal_transfers_through_a_contract_call(tmp_path: Path, anvil: Anvil) -> None:
    sender, payee_a, payee_b = anvil.accounts[0], anvil.accounts[6], anvil.accounts[7]
    async with watching(tmp_path, chain_config(anvil, trace_internal=True)) as w:
        splitter = await anvil.deploy("Splitter")
        # payee_b only appears inside the call: the trace is what makes it match.
        w.watch(payee_b)
        tx_hash = await anvil.call(
            sender,
            splitter,
            "split(address,address)",
            ["address", "address"],
            [payee_a, payee_b],
            value=1001,
        )
        match = (await w.sink.wait_tx(tx_hash)).match
        assert match.listen_addresses == (payee_b,)
        internal = sorted(match.record.internal_transactions, key=lambda i: i.to_address or "")
        assert [
            (i.from_address, i.to_address, i.amount, i.tx_status, i.depth) for i in internal
        ] == sorted(
            [(splitter, payee_a, "500", "success", 1), (splitter, payee_b, "501", "success", 1)],
            key=lambda t: t[1],
        )
        assert (
            push_data(match.record, [payee_b], False)["internalTransactionDetails"][0]["from"]
            == splitter
        )


async def test_nothing_watched_nothing_stored(tmp_path: Path, anvil: Anvil) -> None:
    async with watching(tmp_path, chain_config(anvil)) as w:
        await anvil.transfer(anvil.accounts[0], anvil.accounts[1], 1)
        await w.wait_processed(await anvil.block_number())
        count = await w.core.store.read(
            lambda c: c.execute("SELECT COUNT(*) FROM transactions").fetchone()[0]
        )
        assert count == 0 and w.sink.published == []


async def test_origin_fetch_of_a_pending_transaction(tmp_path: Path, anvil: Anvil) -> None:
    async with watching(tmp_path, chain_config(anvil)) as w:
        await anvil.rpc("evm_setAutomine", False)
        tx_hash = await anvil.transfer(anvil.accounts[0], anvil.accounts[1], 42)
        source = w.core.transaction_sources[(CHAIN_TYPE, anvil.chain_id)]
        pending = await source.fetch_transaction(tx_hash)
        assert pending is not None
        assert pending.tx_status == "pending" and pending.height is None
        assert pending.amount == "42" and pending.receiver == anvil.accounts[1]
        await anvil.mine(1)
        mined = await source.fetch_transaction(tx_hash)
        assert mined is not None and mined.tx_status == "success" and mined.height is not None


async def test_unreachable_ws_url_falls_back_to_polling(tmp_path: Path, anvil: Anvil) -> None:
    watched = anvil.accounts[3]
    dead_ws = f"ws://127.0.0.1:{free_port()}"
    async with watching(tmp_path, chain_config(anvil, ws_url=dead_ws), watch=(watched,)) as w:
        tx_hash = await anvil.transfer(anvil.accounts[0], watched, 9)
        assert (await w.sink.wait_tx(tx_hash)).match.record.amount == "9"


async def test_confirmations_hold_a_block_back(tmp_path: Path, anvil: Anvil) -> None:
    watched = anvil.accounts[2]
    async with watching(tmp_path, chain_config(anvil, confirmations=2), watch=(watched,)) as w:
        await anvil.mine(3)  # the chain starts shorter than the confirmations: nothing to do yet
        tx_hash = await anvil.transfer(anvil.accounts[0], watched, 1)
        mined_in = int((await anvil.receipt(tx_hash))["blockNumber"], 16)
        await w.wait_processed(mined_in - 2)
        await anvil.mine(1)
        await w.wait_processed(mined_in - 1)
        assert w.sink.matches(tx_hash) == []  # one confirmation only: not yet
        await anvil.mine(1)
        match = (await w.sink.wait_tx(tx_hash)).match
        assert match.record.height == mined_in


async def test_100k_watched_addresses_do_not_slow_a_block(tmp_path: Path, anvil: Anvil) -> None:
    watched = anvil.accounts[1]
    crowd = [f"0x{i:040x}" for i in range(1, 100_001)]
    async with watching(
        tmp_path, chain_config(anvil, poll_interval=0.05), watch=(*crowd, watched)
    ) as w:
        latencies = []
        for _ in range(5):
            sent = time.perf_counter()
            tx_hash = await anvil.transfer(anvil.accounts[0], watched, 1)
            latencies.append((await w.sink.wait_tx(tx_hash)).at - sent)
        print(
            f"\n100,001 watched addresses, polling every 50 ms: transfer -> published "
            f"{', '.join(f'{x * 1000:.0f} ms' for x in latencies)}"
        )


async def test_a_block_made_while_the_heads_socket_subscribes_is_not_left_to_the_poll(
    tmp_path: Path, anvil: Anvil, nursery: trio.Nursery
) -> None:
    """A block mined after the socket opened but before the node confirmed the
    subscription is announced to nobody: once subscribed, the watcher asks for the head
    instead of waiting for its next poll (30 s here)."""
    proxy = WsProxy(anvil.ws_url)
    proxy.hold = trio.Event()
    await nursery.start(proxy.serve)
    watched = anvil.accounts[7]
    chain = chain_config(anvil, ws_url=proxy.url, poll_interval=30.0)
    async with watching(tmp_path, chain, watch=(watched,)) as w:
        await w.wait_processed(await anvil.block_number())
        with trio.fail_after(10):
            while proxy.connections < 1:
                await trio.sleep(0.01)
        tx_hash = await anvil.transfer(anvil.accounts[0], watched, 1)
        await trio.sleep(0.5)
        assert w.sink.matches(tx_hash) == []  # no head announced, no poll due
        proxy.hold.set()
        await w.sink.wait_tx(tx_hash, within=10)


async def test_dropped_ws_falls_back_to_polling_and_reconnects(
    tmp_path: Path, anvil: Anvil, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rtserver.chains")
    proxy = WsProxy(anvil.ws_url)
    await nursery.start(proxy.serve)
    watched = anvil.accounts[6]
    chain = chain_config(anvil, ws_url=proxy.url, poll_interval=0.5)
    async with watching(tmp_path, chain, watch=(watched,)) as w:
        tx_hash = await anvil.transfer(anvil.accounts[0], watched, 1)
        await w.sink.wait_tx(tx_hash)
        proxy.accepting = False
        proxy.drop()
        # Polling alone still sees the next transfer.
        tx_hash = await anvil.transfer(anvil.accounts[0], watched, 2)
        await w.sink.wait_tx(tx_hash)
        assert "newHeads socket" in caplog.text and "dropped" in caplog.text
        proxy.accepting = True
        with trio.fail_after(30):
            while proxy.connections < 2:
                await trio.sleep(0.05)
        tx_hash = await anvil.transfer(anvil.accounts[0], watched, 3)
        await w.sink.wait_tx(tx_hash)
    assert caplog.text.count("subscribed to newHeads") >= 2

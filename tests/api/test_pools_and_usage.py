from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from _api import ADMIN, ALICE, BOB, ApiClient, api, evm_record, insert  # noqa: F401 (fixtures)
from anvil import anvil_binary, start_anvil

from rtserver.clock import Clock
from rtserver.config import ChainConfig, Config
from rtserver.events import TransactionMatch
from rtserver.protocols.address_monitoring._naming import transaction_result
from rtserver.records import TransactionRecord
from rtserver.usage import WS_MESSAGES, UsageCounter

from conftest import make_config, run_cli, run_server

POOL = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"


async def trade(api: ApiClient, records: list[TransactionRecord], pool: str = POOL) -> None:
    """Hand pool matches to the core's sink the way a watcher does: in its write job."""
    core = api.server.core
    stored = await insert(api.server, records)

    def job(conn: sqlite3.Connection) -> object:
        matches = [TransactionMatch(r, (pool,), pool_address=pool) for r in stored]
        return core.match_sink.stage(conn, matches)

    await core.store.write(job, after_commit=core.match_sink.publish)


async def trades(api: ApiClient, **params: str) -> list[dict[str, object]]:
    r = await api.client.get(f"/tx/api/v1/dex-pools/{POOL}/trades", params=params)
    assert r.status_code == 200, r.text
    assert r.json()["code"] == 0 and r.json()["message"] == "ok"
    return r.json()["data"]["items"]  # type: ignore[no-any-return]


async def test_pool_keeps_latest_100_trades_newest_first(api: ApiClient) -> None:
    added = await api.client.post(
        "/admin/v1/pools",
        json={"chain_type": "ethereum", "chain_id": 1, "address": POOL.upper().replace("0X", "0x")},
        headers=ADMIN,
    )
    assert added.status_code == 201 and added.json()["address"] == POOL
    assert api.server.core.watched.watches("ethereum", POOL)
    await trade(api, [evm_record(n, receiver=POOL, token="0x" + "70" * 20) for n in range(1, 106)])

    items = await trades(api, chainType="ethereum", chainId="1")
    assert len(items) == 100
    assert [i["height"] for i in items] == [1000 + n for n in range(105, 5, -1)]
    first = items[0]
    assert first["chainType"] == "ethereum" and first["txHash"] == evm_record(105).tx_hash
    assert first["tokenTransferDetails"][0]["symbol"] == "TKN"  # type: ignore[index]
    assert set(first["tokenTransferDetails"][0]) == {  # type: ignore[index]
        "from",
        "to",
        "isFromContract",
        "isToContract",
        "tokenContractAddress",
        "symbol",
        "amount",
        "decimals",
    }
    # Undefined optional fields are omitted; null ones are kept.
    assert "txVersion" not in first and "l1OriginHash" not in first
    assert first["feePayer"] is None
    assert len(await trades(api, chain_type="ethereum", chain_id="1", limit="5")) == 5

    # Persisted: the FIFO is in the database, not in memory.
    conn = sqlite3.connect(api.server.core.config.database_path)
    count = conn.execute("SELECT count(*) FROM pool_trades").fetchone()[0]
    conn.close()
    assert count == 100

    # A trade a reorg removed leaves the pool; a disabled pool keeps no new trades.
    (last,) = await insert(api.server, [evm_record(105, receiver=POOL, token="0x" + "70" * 20)])
    await trade(api, [replace(last, removed=True)])
    assert (await trades(api, chainType="ethereum", chainId="1"))[0]["height"] == 1104
    disabled = await api.client.post(f"/admin/v1/pools/ethereum/1/{POOL}/disable", headers=ADMIN)
    assert disabled.json()["enabled"] is False
    assert not api.server.core.watched.watches("ethereum", POOL)
    await trade(api, [evm_record(500, receiver=POOL)])
    assert (await trades(api, chainType="ethereum", chainId="1"))[0]["height"] == 1104


async def test_pool_trades_errors(api: ApiClient) -> None:
    missing = await api.client.get(
        f"/tx/api/v1/dex-pools/{POOL}/trades", params={"chainType": "ethereum", "chainId": "1"}
    )
    assert missing.status_code == 404 and missing.json()["code"] == 404
    for params, text in (
        ({"chainId": "1"}, "chainType is required"),
        ({"chainType": "ethereum"}, "chainId is required"),
        (
            {"chainType": "ethereum", "chainId": "1", "limit": "101"},
            "limit must be between 1 and 100",
        ),
        (
            {"chainType": "ethereum", "chainId": "1", "limit": "0"},
            "limit must be between 1 and 100",
        ),
    ):
        r = await api.client.get(f"/tx/api/v1/dex-pools/{POOL}/trades", params=params)
        assert r.status_code == 400 and r.json()["message"] == text, r.text
    r = await api.client.get(
        "/tx/api/v1/dex-pools/0x123/trades", params={"chainType": "ethereum", "chainId": "1"}
    )
    assert r.status_code == 400 and "poolAddress" in r.json()["message"]


async def test_pools_from_the_cli_reach_a_running_server(api: ApiClient) -> None:
    data_dir = str(api.server.core.config.data_dir)
    added = await trio.to_thread.run_sync(
        lambda: run_cli("pools", "add", "bsc", "56", BOB, "--data-dir", data_dir)
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["enabled"] is True
    await api.server.core.refresh_index()
    assert api.server.core.watched.watches("bsc", BOB)
    listed = await trio.to_thread.run_sync(lambda: run_cli("pools", "list", "--data-dir", data_dir))
    assert [p["address"] for p in json.loads(listed.stdout)] == [BOB]
    bad = await trio.to_thread.run_sync(
        lambda: run_cli("pools", "add", "bsc", "56", "0xnope", "--data-dir", data_dir)
    )
    assert bad.returncode == 2 and "invalid bsc address" in bad.stderr


async def test_usage_counts_requests_per_app_per_day(api: ApiClient) -> None:
    for _ in range(3):
        await api.post("/tx/api/v1/transfers/query", {"address": ALICE})
    other_id, other_key = await api.new_app()
    await api.post(
        "/tx/api/v1/transfers/query", {"address": ALICE}, headers={"X-API-Key": other_key}
    )
    await api.server.core.usage.flush(api.server.core.store)

    r = await api.client.get(f"/admin/v1/apps/{api.app_id}/usage", headers=ADMIN)
    (today,) = r.json()["days"]
    assert today["requests"] == 3 and today["ws_messages"] == 0
    cli = await trio.to_thread.run_sync(
        lambda: run_cli(
            "apps", "usage", other_id, "--data-dir", str(api.server.core.config.data_dir)
        )
    )
    assert json.loads(cli.stdout)["days"][0]["requests"] == 1
    unknown = await api.client.get("/admin/v1/apps/app_nope/usage", headers=ADMIN)
    assert unknown.status_code == 404


@pytest.mark.skipif(anvil_binary() is None, reason="Anvil not installed")
async def test_evm_with_a_chain_id_names_the_configured_evm_chain(tmp_path: Path) -> None:
    """The spec's own example asks ``chainType=evm&chainId=1`` for a pool on Ethereum."""
    node = start_anvil(tmp_path / "anvil", chain_id=1)
    try:
        chain = ChainConfig(chain_type="ethereum", chain_id=1, rpc_urls=(node.url,))
        config = make_config(tmp_path / "data", admin_token="secret-admin").replace(chains=(chain,))
        await _evm_names_the_configured_chain(config)
    finally:
        node.stop()


async def _evm_names_the_configured_chain(config: Config) -> None:
    async with run_server(config) as server, server.client() as client:
        added = await client.post(
            "/admin/v1/pools",
            json={"chain_type": "ethereum", "chain_id": 1, "address": POOL},
            headers=ADMIN,
        )
        assert added.status_code == 201, added.text
        url = f"/tx/api/v1/dex-pools/{POOL}/trades"
        for params in (
            {"chainType": "evm", "chainId": "1", "limit": "50"},
            {"chainType": "EVM", "chainId": "1"},
            {"chain_type": "ethereum", "chain_id": "1"},
        ):
            r = await client.get(url, params=params)
            assert r.status_code == 200, (params, r.text)
            assert r.json() == {"code": 0, "message": "ok", "data": {"items": []}}
        # evm with a chain id no EVM chain is configured for stays "evm": no such pool.
        other = await client.get(url, params={"chainType": "evm", "chainId": "56"})
        assert other.status_code == 404
        # Registering through the same resolution: the pool lands on the watcher's chain.
        again = await client.post(
            "/admin/v1/pools",
            json={"chain_type": "evm", "chain_id": 1, "address": ALICE},
            headers=ADMIN,
        )
        assert again.status_code == 201 and again.json()["chain_type"] == "ethereum"
        assert server.core.watched.watches("ethereum", ALICE)


async def test_pool_items_follow_the_spec_example_for_an_erc20_transfer(api: ApiClient) -> None:
    await api.client.post(
        "/admin/v1/pools",
        json={"chain_type": "ethereum", "chain_id": 1, "address": POOL},
        headers=ADMIN,
    )
    usdc = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
    # transfer(pool, 1000000) sent to the token contract: the transaction's "to" is USDC.
    token_transfer = replace(evm_record(1, ALICE, POOL, token=usdc), method_id="0xa9059cbb")
    assert token_transfer.receiver == usdc
    native = evm_record(2, ALICE, POOL)
    await trade(api, [token_transfer, native])
    items = await trades(api, chainType="ethereum", chainId="1")
    by_hash = {i["txHash"]: i for i in items}
    item = by_hash[token_transfer.tx_hash]
    # As the spec's pool example: the token's recipient (the pool), and "Token".
    assert item["receiver"] == POOL and item["transferType"] == "Token"
    assert item["tokenTransferDetails"][0]["tokenContractAddress"] == usdc  # type: ignore[index]
    assert by_hash[native.tx_hash]["receiver"] == POOL
    assert by_hash[native.tx_hash]["transferType"] == "Native"
    # The other namings keep the transaction's own "to" (the token contract).
    stored = await api.post(
        "/tx/api/v1/transfers/details",
        {"chain_type": "ethereum", "chain_id": 1, "tx_hash": token_transfer.tx_hash},
    )
    assert stored.json()["data"] == [] or stored.json()["data"][0]["receiver"] == usdc
    assert transaction_result(token_transfer)["receiver"] == usdc
    assert transaction_result(token_transfer)["transferType"] == "token"


def test_usage_counts_go_to_the_utc_day_of_each_call() -> None:
    now = [1_764_460_799.5]  # 2025-11-29T23:59:59.5Z
    counter = UsageCounter(Clock(wall=lambda: now[0], monotonic=lambda: 0.0))
    counter.count("a", WS_MESSAGES, 2)
    now[0] += 1.0  # past midnight
    counter.count("a", WS_MESSAGES, 3)
    now[0] -= 1.0  # a clock set back still counts on its own day
    counter.count("a", WS_MESSAGES)
    assert counter._pending == Counter(
        {("a", "2025-11-29", WS_MESSAGES): 3, ("a", "2025-11-30", WS_MESSAGES): 3}
    )

"""The API over real chain data: Anvil transfers, followed by the watcher, queried over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from anvil import Anvil, anvil_binary, start_anvil

from rtserver.addresses import to_checksum_address
from rtserver.config import ApiConfig, ChainConfig

from conftest import RunningServer, make_config, run_server

pytestmark = pytest.mark.skipif(anvil_binary() is None, reason="Anvil not installed")

ADMIN = {"Authorization": "Bearer secret-admin"}


@dataclass
class Live:
    anvil: Anvil
    server: RunningServer
    client: httpx.AsyncClient

    async def query(self, **body: Any) -> list[dict[str, Any]]:
        r = await self.client.post("/tx/api/v1/transfers/query", json=body)
        assert r.status_code == 200 and r.json()["code"] == 1, r.text
        return r.json()["data"]  # type: ignore[no-any-return]

    async def wait_stored(self, tx_hash: str, address: str) -> dict[str, Any]:
        """The record of ``tx_hash`` once the watcher stored it (by querying the API)."""
        with trio.fail_after(20):
            while True:
                for item in await self.query(chain_type="anvil", address=address, limit=100):
                    if item["tx_hash"] == tx_hash:
                        return item
                await trio.sleep(0.05)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    node = start_anvil(tmp_path / "anvil")
    try:
        chain = ChainConfig(
            chain_type="anvil", chain_id=node.chain_id, rpc_urls=(node.url,), poll_interval=0.05
        )
        config = make_config(tmp_path / "data", admin_token="secret-admin").replace(
            chains=(chain,), api=ApiConfig(pool_trades_max=3)
        )
        async with run_server(config) as server, server.client() as client:
            created = await client.post("/admin/v1/apps", json={"name": "e2e"}, headers=ADMIN)
            client.headers["X-API-Key"] = created.json()["api_key"]
            yield Live(node, server, client)
    finally:
        node.stop()


async def watch(live: Live, *addresses: str) -> None:
    r = await live.client.post(
        "/tx/api/v1/addresses",
        json={
            "wallets": [
                {"chain_type": "anvil", "address": [to_checksum_address(a) for a in addresses]}
            ]
        },
    )
    assert r.json() == {"code": 0, "message": "ok", "data": "success"}


async def test_watched_transfers_are_queryable_with_the_spec_fields(live: Live) -> None:
    a = live.anvil
    owner, alice, bob = a.accounts[0], a.accounts[1], a.accounts[2]
    await watch(live, alice)
    native = await a.transfer(owner, alice, 10**18)
    unwatched = await a.transfer(owner, bob, 5)
    token = await a.deploy(
        "TestToken", ["string", "string", "uint8", "uint256"], ["Test Token", "TT", 6, 10**15]
    )
    token_tx = await a.call(
        owner, token, "transfer(address,uint256)", ["address", "uint256"], [alice, 777]
    )

    item = await live.wait_stored(native, alice)
    receipt = await a.receipt(native)
    assert item["height"] == int(receipt["blockNumber"], 16)
    assert item["sender"] == owner and item["receiver"] == alice
    assert item["amount"] == str(10**18) and item["transfer_type"] == "native"
    assert item["tx_status"] == "success" and item["chain_id"] == a.chain_id
    assert isinstance(item["id"], int)

    await live.wait_stored(token_tx, alice)
    tokens = await live.query(chain_type="anvil", address=alice, token=token)
    assert [t["tx_hash"] for t in tokens] == [token_tx]
    # The token filter takes the EIP-55 form too.
    checksummed = to_checksum_address(token)
    assert await live.query(chain_type="anvil", address=alice, token=checksummed) == tokens
    transfer = tokens[0]["token_transfers"][0]
    assert transfer["amount"] == "777" and transfer["symbol"] == "TT" and transfer["decimals"] == 6
    natives = await live.query(address=alice, tx_type="native")
    assert [n["tx_hash"] for n in natives] == [native]
    # Not watched: not stored, so not listed.
    assert await live.query(address=bob) == []
    details = await live.client.post(
        "/tx/api/v1/transfers/details",
        json={
            "chain_type": "anvil",
            "chain_id": a.chain_id,
            "tx_hash": [token_tx, native, unwatched],
        },
    )
    assert [d["tx_hash"] for d in details.json()["data"]] == [token_tx, native]


async def test_pagination_walk_while_blocks_arrive(live: Live) -> None:
    a = live.anvil
    owner, alice = a.accounts[0], a.accounts[1]
    await watch(live, alice)
    sent = [await a.transfer(owner, alice, n + 1) for n in range(23)]
    await live.wait_stored(sent[-1], alice)
    existing = [i["tx_hash"] for i in await live.query(address=alice, limit=100)]
    assert existing == list(reversed(sent))

    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        body: dict[str, Any] = {"chain_type": "anvil", "address": alice, "limit": 5}
        if cursor is not None:
            body["id"] = cursor
        page = await live.query(**body)
        walked += page
        if len(page) < 5:
            break
        cursor = page[-1]["id"]
        await a.transfer(owner, alice, 999)  # a new block between pages
    ids = [w["id"] for w in walked]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    # The walk started before the new blocks: it returns exactly the records that existed.
    assert [w["tx_hash"] for w in walked] == existing


async def test_v2_detail_fetches_unstored_transactions_from_the_node(live: Live) -> None:
    a = live.anvil
    owner, carol = a.accounts[0], a.accounts[4]
    tx_hash = await a.transfer(owner, carol, 42)  # nobody watches carol
    receipt = await a.receipt(tx_hash)
    params = {"chain_type": "anvil", "chain_id": str(a.chain_id), "tx_hash": tx_hash[2:].upper()}
    r = await live.client.get("/tx/api/v1/transfers/detail", params=params)
    assert r.json()["code"] == 0 and r.json()["msg"] == "success"
    data = r.json()["data"]
    assert data["txhash"] == tx_hash and data["amount"] == "42"
    assert data["height"] == int(receipt["blockNumber"], 16)
    assert data["gasUsed"] == str(int(receipt["gasUsed"], 16))
    assert data["txTime"] % 1000 == 0 and data["listenAddress"] is None
    # Cached after the origin fetch.
    details = await live.client.post(
        "/tx/api/v1/transfers/details",
        json={"chain_type": "anvil", "chain_id": a.chain_id, "tx_hash": tx_hash},
    )
    assert [d["tx_hash"] for d in details.json()["data"]] == [tx_hash]
    unknown = await live.client.get(
        "/tx/api/v1/transfers/detail", params={**params, "tx_hash": "0x" + "12" * 32}
    )
    assert unknown.json() == {"code": 0, "msg": "success", "data": None}
    forced = await live.client.get(
        "/tx/api/v1/transfers/detail", params={**params, "no_cache": "1"}
    )
    assert forced.json()["data"]["txhash"] == tx_hash


async def test_pool_keeps_its_newest_trades_from_the_chain(live: Live) -> None:
    a = live.anvil
    owner, pool = a.accounts[0], a.accounts[5]
    added = await live.client.post(
        "/admin/v1/pools",
        json={"chain_type": "anvil", "chain_id": a.chain_id, "address": pool},
        headers=ADMIN,
    )
    assert added.status_code == 201
    sent = [await a.transfer(owner, pool, n + 1) for n in range(5)]
    url = f"/tx/api/v1/dex-pools/{pool}/trades"
    params = {"chainType": "anvil", "chainId": str(a.chain_id)}
    with trio.fail_after(20):
        while True:
            items = (await live.client.get(url, params=params)).json()["data"]["items"]
            if items and items[0]["txHash"] == sent[-1]:
                break
            await trio.sleep(0.05)
    # pool_trades_max = 3: the two oldest were evicted.
    assert [i["txHash"] for i in items] == list(reversed(sent[-3:]))
    assert items[0]["chainType"] == "anvil" and items[0]["amount"] == "5"

"""Isolation between apps: who reads which stored record, and what a replay may change.

The rule (docs/address-monitoring.md, "Who reads which records"): an app reads a stored
chain record when it concerns an address the app watched when the record was stored,
when it was delivered to the app (an outbox entry) or fetched by it (V2 detail); and its
own replays. A replay never changes a stored chain record or another app's replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from _api import ADMIN, ALICE, BOB, CAROL, evm_record, insert, push_message, watch
from delivery.helpers import command, connect, connected

from rtserver.config import ApiConfig
from rtserver.records import TransactionRecord
from rtserver.store import chain_state

from conftest import RunningServer, make_config, run_server

DAVE = "0x" + "d4" * 20


@dataclass
class Apps:
    """One server, two apps: ``a`` (which will watch ALICE) and ``b``."""

    server: RunningServer
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    a_key: str
    b_key: str


@asynccontextmanager
async def two_apps(tmp_path: Path, **api: Any) -> AsyncIterator[Apps]:
    config = make_config(tmp_path / "data", admin_token="secret-admin")
    if api:
        config = config.replace(api=ApiConfig(**api))
    async with run_server(config) as server, server.client() as a, server.client() as b:
        keys = []
        for client, name in ((a, "a"), (b, "b")):
            created = await client.post("/admin/v1/apps", json={"name": name}, headers=ADMIN)
            keys.append(created.json()["api_key"])
            client.headers["X-API-Key"] = keys[-1]
        yield Apps(server, a, b, keys[0], keys[1])


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Apps]:
    async with two_apps(tmp_path) as found:
        yield found


async def listed(client: httpx.AsyncClient, address: str) -> list[dict[str, Any]]:
    r = await client.post("/tx/api/v1/transfers/query", json={"address": address})
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


async def multi(client: httpx.AsyncClient, *addresses: str) -> list[dict[str, Any]]:
    body = {"addresses": [{"chain_type": "ethereum", "chain_id": 1, "address": list(addresses)}]}
    r = await client.post("/tx/api/v1/transfers/multi-chain", json=body)
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


async def details(client: httpx.AsyncClient, *hashes: str) -> list[dict[str, Any]]:
    body = {"chain_type": "ethereum", "chain_id": 1, "tx_hash": list(hashes)}
    r = await client.post("/tx/api/v1/transfers/details", json=body)
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


async def detail_v2(client: httpx.AsyncClient, tx_hash: str) -> Any:
    params = {"chain_type": "ethereum", "chain_id": "1", "tx_hash": tx_hash}
    r = await client.get("/tx/api/v1/transfers/detail", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def get_tx_hash(server: RunningServer, key: str, tx_hash: str) -> dict[str, Any]:
    async with trio.open_nursery() as nursery:
        ws = await connect(nursery, server.url, key)
        await connected(ws)
        reply = await command(
            ws,
            {
                "id": "g",
                "type": "getTxHash",
                "data": {"chain_type": "ethereum", "chain_id": 1, "txHash": tx_hash},
            },
        )
        await ws.aclose()
    return reply


async def replay(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post("/tx/api/v1/transaction/ws/replay", json=body)


# -- item 8: who reads which stored records -----------------------------------------------


async def test_an_app_does_not_read_records_stored_for_another_apps_watch_list(
    apps: Apps,
) -> None:
    await watch(apps.a, ALICE)
    (record,) = await insert(apps.server, [evm_record(1, ALICE, CAROL)])  # A's transfer

    # A reads it through every read path.
    assert [d["tx_hash"] for d in await listed(apps.a, ALICE)] == [record.tx_hash]
    assert [d["tx_hash"] for d in await multi(apps.a, ALICE)] == [record.tx_hash]
    assert [d["tx_hash"] for d in await details(apps.a, record.tx_hash)] == [record.tx_hash]
    assert (await detail_v2(apps.a, record.tx_hash))["txhash"] == record.tx_hash
    assert (await get_tx_hash(apps.server, apps.a_key, record.tx_hash))["code"] == 0

    # B, which watches neither party, learns nothing: not even that it is stored.
    assert await listed(apps.b, ALICE) == []
    assert await listed(apps.b, CAROL) == []
    assert await multi(apps.b, ALICE, CAROL) == []
    assert await details(apps.b, record.tx_hash) == []
    assert await detail_v2(apps.b, record.tx_hash) is None  # as for an unknown hash
    reply = await get_tx_hash(apps.server, apps.b_key, record.tx_hash)
    assert (reply["code"], reply["msg"], reply["data"]) == (404, "transaction not found", None)


async def test_watching_an_address_later_does_not_reveal_its_older_records(apps: Apps) -> None:
    await watch(apps.a, ALICE)
    (old,) = await insert(apps.server, [evm_record(1, ALICE, CAROL)])  # stored for A
    await watch(apps.b, CAROL)  # B starts watching CAROL after that
    (new,) = await insert(apps.server, [evm_record(2, ALICE, CAROL)])

    # B sees what was stored while it watched, not what exists because A watched before.
    assert [d["tx_hash"] for d in await listed(apps.b, CAROL)] == [new.tx_hash]
    assert [d["tx_hash"] for d in await details(apps.b, old.tx_hash, new.tx_hash)] == [new.tx_hash]
    assert (await get_tx_hash(apps.server, apps.b_key, old.tx_hash))["code"] == 404
    # A's view of its address is whole; lists are by watched address, so CAROL lists
    # nothing for A, while by hash A reads both (it watched ALICE when they were stored).
    assert [d["tx_hash"] for d in await listed(apps.a, ALICE)] == [new.tx_hash, old.tx_hash]
    assert await listed(apps.a, CAROL) == []
    assert len(await details(apps.a, old.tx_hash, new.tx_hash)) == 2


async def test_records_visibility_global_is_the_spec_behaviour(tmp_path: Path) -> None:
    async with two_apps(tmp_path, records_visibility="global") as apps:
        await watch(apps.a, ALICE)
        (record,) = await insert(apps.server, [evm_record(1, ALICE, CAROL)])
        assert [d["tx_hash"] for d in await listed(apps.b, ALICE)] == [record.tx_hash]
        assert [d["tx_hash"] for d in await details(apps.b, record.tx_hash)] == [record.tx_hash]
        assert (await get_tx_hash(apps.server, apps.b_key, record.tx_hash))["code"] == 0


# -- item 7: replay never overwrites another app's or the watcher's records ---------------


async def test_replay_cannot_change_a_record_the_watcher_stored(apps: Apps) -> None:
    await watch(apps.a, ALICE)
    (record,) = await insert(apps.server, [evm_record(1, ALICE, CAROL)])
    before_list = await listed(apps.a, ALICE)
    before_details = await details(apps.a, record.tx_hash)

    forged = push_message(
        record,
        "forged-1",
        amount="1",
        height=999_999,
        receiver=DAVE,
        sender=DAVE,
        txStatus="failed",
    )
    answer = await replay(apps.b, forged)
    assert answer.status_code == 200, answer.text

    # A's records are exactly as they were, by every path.
    assert await listed(apps.a, ALICE) == before_list
    assert await details(apps.a, record.tx_hash) == before_details
    a_view = await get_tx_hash(apps.server, apps.a_key, record.tx_hash)
    assert a_view["data"]["amount"] == record.amount and a_view["data"]["receiver"] == CAROL
    # B's replay is B's own record: B reads what it sent, never A's.
    (b_view,) = await details(apps.b, record.tx_hash)
    assert (b_view["amount"], b_view["receiver"], b_view["height"]) == ("1", DAVE, 999_999)
    assert await listed(apps.b, ALICE) == []


async def test_replay_cannot_inject_records_into_another_apps_view(apps: Apps) -> None:
    await watch(apps.a, ALICE)
    fake = evm_record(7, DAVE, ALICE)  # a transfer to A's address that never happened
    assert (await replay(apps.b, push_message(fake, "fake-7"))).status_code == 200
    assert await listed(apps.a, ALICE) == []
    assert await details(apps.a, fake.tx_hash) == []
    assert (await get_tx_hash(apps.server, apps.a_key, fake.tx_hash))["code"] == 404
    assert await detail_v2(apps.a, fake.tx_hash) is None
    # A's own replay of the same hash is A's, and B's copy stays B's.
    mine = push_message(fake, "mine-7", amount="5")
    assert (await replay(apps.a, mine)).status_code == 200
    assert [d["amount"] for d in await details(apps.a, fake.tx_hash)] == ["5"]
    assert [d["amount"] for d in await details(apps.b, fake.tx_hash)] == [fake.amount]


async def test_a_replayed_record_is_never_a_reorg_candidate(apps: Apps) -> None:
    """The watcher's reorg walk reads stored chain records by height; a forged replay
    among them would be "orphaned" and pushed to every app watching its addresses."""
    await watch(apps.a, ALICE)
    fake = evm_record(8, DAVE, ALICE)
    assert (await replay(apps.b, push_message(fake, "fake-8"))).status_code == 200
    assert fake.height is not None
    candidates = await apps.server.core.store.read(
        chain_state.live_records_between, "ethereum", 1, fake.height - 1, fake.height
    )
    assert candidates == []


def _implausible(record: TransactionRecord) -> list[tuple[str, Any]]:
    good = push_message(record)
    data = good["data"]
    out: list[tuple[str, Any]] = [
        ("type", {**good, "type": "connected"}),
        ("type", {k: v for k, v in good.items() if k != "type"}),
    ]
    bad_fields: dict[str, list[Any]] = {
        "height": [-1, 2**63, "x", 1.5, True],
        "chain_id": [-5, 0, 2**63, "one", None],
        "txhash": ["not-a-hash", "0x1234", "", None, 5],
        "chain_type": ["nochain", "", None, 1],
        "sender": ["0xnope", "x" * 300, 12],
        "receiver": ["not-an-address"],
        "fee_payer": ["0x123"],
        "amount": ["-1", "1.5", "1e18", "abc", 10],
        "txFee": ["-5", "ten"],
        "gasUsed": ["0x10"],
        "decimals": [-1, 1000, "eighteen"],
        "txTime": [-1, "now", 2**63],
        "txStatus": ["weird", 1],
        "transfer_type": ["x" * 300, 1],
        "symbol": ["x" * 300, []],
        "is_reorg_resend": ["yes"],
        "listenAddress": ["0x" + "a1" * 20, ["0xnope"], [1]],
        "tokenTransferDetails": [
            "x",
            [1],
            [{"from": "0xnope"}],
            [{"tokenContractAddress": "bad"}],
            [{"amount": "-3"}],
            [{"decimals": -1}],
        ],
        "internalTransactionDetails": [[{"to": "zz"}], [{"amount": "1.0"}]],
    }
    for name, values in bad_fields.items():
        out.extend((name, {**good, "data": {**data, name: value}}) for value in values)
    return out


async def test_replay_rejects_implausible_fields_and_stores_nothing(apps: Apps) -> None:
    record = evm_record(3, ALICE, BOB)
    await watch(apps.b, ALICE)
    for name, body in _implausible(record):
        r = await replay(apps.b, body)
        assert r.status_code == 400, (name, body.get("data", {}).get(name), r.text[:300])
        assert r.json()["code"] == 400 and name in r.json()["message"], (name, r.json())
    assert await details(apps.b, record.tx_hash) == []
    # The same message, well-formed, is accepted.
    assert (await replay(apps.b, push_message(record))).status_code == 200
    assert [d["tx_hash"] for d in await details(apps.b, record.tx_hash)] == [record.tx_hash]

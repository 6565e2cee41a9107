from __future__ import annotations

from dataclasses import replace

from _api import (  # noqa: F401 (fixtures)
    ALICE,
    BOB,
    CAROL,
    TOKEN,
    ApiClient,
    api,
    evm_record,
    insert,
    watch,
)

from rtserver.records import TransactionRecord


async def watching(api: ApiClient) -> None:
    """The app watches every address these tests store records of: an app reads only the
    records of addresses it watched when they were stored (test_isolation.py)."""
    for chain_type in ("ethereum", "bsc", "gnosis"):
        await watch(api.client, ALICE, BOB, CAROL, chain_type=chain_type)


async def query(api: ApiClient, **body: object) -> list[dict[str, object]]:
    r = await api.post("/tx/api/v1/transfers/query", body)
    assert r.status_code == 200, r.text
    envelope = r.json()
    assert envelope["code"] == 1 and envelope["msg"] == "success"
    return envelope["data"]  # type: ignore[no-any-return]


async def test_query_returns_transaction_details_newest_first(api: ApiClient) -> None:
    await watching(api)
    stored = await insert(api.server, [evm_record(n) for n in range(1, 4)])
    data = await query(
        api, chain_type="ethereum", chain_id=1, address=ALICE.upper().replace("0X", "0x")
    )
    assert [d["tx_hash"] for d in data] == [r.tx_hash for r in reversed(stored)]
    first = data[0]
    assert first["id"] == stored[-1].id
    for key in (
        "chain_type",
        "chain_id",
        "height",
        "tx_time",
        "sender",
        "receiver",
        "amount",
        "symbol",
        "decimals",
        "tx_status",
        "transfer_type",
        "token_transfers",
        "from_details",
        "to_details",
        "internal_transactions",
        "gas_used",
        "nonce",
    ):
        assert key in first
    assert first["amount"] == str(3 * 10**18) and isinstance(first["amount"], str)
    assert "block_hash" not in first and "removed" not in first


async def test_pagination_walk_returns_every_record_once_while_new_ones_arrive(
    api: ApiClient,
) -> None:
    await watching(api)
    stored = await insert(api.server, [evm_record(n) for n in range(1, 48)])
    expected = [r.tx_hash for r in reversed(stored)]
    seen: list[str] = []
    cursor = None
    next_n = 100
    while True:
        body: dict[str, object] = {"chain_type": "ethereum", "address": BOB, "limit": 10}
        if cursor is not None:
            body["id"] = cursor
        page = await query(api, **body)
        seen += [str(d["tx_hash"]) for d in page]
        if len(page) < 10:
            break
        cursor = page[-1]["id"]
        # New blocks arrive between pages: they are newer than the cursor.
        await insert(api.server, [evm_record(next_n)])
        next_n += 1
    assert seen == expected


async def test_filters_chain_token_and_type(api: ApiClient) -> None:
    await watching(api)
    await insert(
        api.server,
        [
            evm_record(1),
            evm_record(2, token=TOKEN),
            evm_record(3, chain_type="bsc", chain_id=56),
            evm_record(4, sender=CAROL, receiver=ALICE, token="0x" + "99" * 20),
        ],
    )
    everywhere = await query(api, address=ALICE)
    assert [d["chain_type"] for d in everywhere] == ["ethereum", "bsc", "ethereum", "ethereum"]
    assert len(await query(api, address=ALICE, chain_type="bsc")) == 1
    assert len(await query(api, address=ALICE, chain_type="ethereum", chain_id=56)) == 0
    tokens = await query(api, address=ALICE, chain_type="ethereum", token=TOKEN)
    assert [d["token_transfers"][0]["token_contract_address"] for d in tokens] == [TOKEN]  # type: ignore[index]
    natives = await query(api, address=ALICE, chain_type="ethereum", tx_type="native")
    assert [d["height"] for d in natives] == [1001]
    assert len(await query(api, address=ALICE, tx_type="")) == 4


async def test_removed_records_leave_lists_but_stay_readable_by_hash(api: ApiClient) -> None:
    await watching(api)
    (record,) = await insert(api.server, [evm_record(1)])
    await insert(api.server, [replace(record, removed=True)])
    assert await query(api, address=ALICE) == []
    r = await api.post(
        "/tx/api/v1/transfers/details",
        {"chain_type": "ethereum", "chain_id": 1, "tx_hash": record.tx_hash},
    )
    assert r.json()["data"][0]["removed"] is True


async def test_limit_and_cursor_validation(api: ApiClient) -> None:
    for limit in (0, 101, "ten", True, 1.5):
        r = await api.post("/tx/api/v1/transfers/query", {"address": ALICE, "limit": limit})
        assert r.status_code == 400, limit
        assert r.json()["code"] == 400
        assert "limit" in r.json()["message"]
    r = await api.post("/tx/api/v1/transfers/query", {"address": ALICE, "limit": 0})
    assert r.json()["message"] == "limit must be between 1 and 100"
    r = await api.post("/tx/api/v1/transfers/query", {"address": ALICE, "id": -5})
    assert r.status_code == 400 and "id" in r.json()["msg"]
    r = await api.post("/tx/api/v1/transfers/query", {"address": ALICE, "chain_type": "nope"})
    assert r.status_code == 400 and "chain_type" in r.json()["message"]
    r = await api.post("/tx/api/v1/transfers/query", {"chain_type": "ethereum"})
    assert r.status_code == 400 and r.json()["message"].startswith("address")


async def test_multi_chain_merges_groups_newest_first_without_duplicates(api: ApiClient) -> None:
    await watching(api)
    stored = await insert(
        api.server,
        [
            evm_record(1),  # alice -> bob on ethereum
            evm_record(2, chain_type="bsc", chain_id=56),
            evm_record(3, sender=CAROL, receiver=ALICE),
            evm_record(4, sender=CAROL, receiver=CAROL, chain_type="gnosis", chain_id=100),
        ],
    )
    groups = [
        {"chain_type": "ethereum", "chain_id": 1, "address": [ALICE, BOB]},
        {"chain_type": "bsc", "chain_id": 56, "address": [BOB]},
    ]
    r = await api.post("/tx/api/v1/transfers/multi-chain", {"addresses": groups, "limit": 20})
    assert r.json()["code"] == 1
    assert [d["id"] for d in r.json()["data"]] == [stored[2].id, stored[1].id, stored[0].id]
    page = await api.post(
        "/tx/api/v1/transfers/multi-chain", {"addresses": groups, "limit": 2, "id": stored[2].id}
    )
    assert [d["id"] for d in page.json()["data"]] == [stored[1].id, stored[0].id]

    eleven = [{"chain_type": "ethereum", "chain_id": 1, "address": [ALICE]}] * 11
    r = await api.post("/tx/api/v1/transfers/multi-chain", {"addresses": eleven})
    assert r.status_code == 400 and "at most 10" in r.json()["message"]
    many = [{"chain_type": "ethereum", "chain_id": 1, "address": [ALICE] * 21}]
    r = await api.post("/tx/api/v1/transfers/multi-chain", {"addresses": many})
    assert (
        r.status_code == 400 and "addresses[0].address must have at most 20" in r.json()["message"]
    )
    r = await api.post(
        "/tx/api/v1/transfers/multi-chain",
        {"addresses": [{"chain_type": "ethereum", "address": [ALICE]}]},
    )
    assert r.status_code == 400 and r.json()["message"] == "addresses[0].chain_id is required"


async def test_details_by_one_hash_or_many(api: ApiClient) -> None:
    await watching(api)
    stored = await insert(api.server, [evm_record(n) for n in (1, 2)])
    one = await api.post(
        "/tx/api/v1/transfers/details",
        {"chain_type": "ethereum", "chain_id": 1, "tx_hash": stored[0].tx_hash[2:].upper()},
    )
    assert one.json()["code"] == 1 and [d["id"] for d in one.json()["data"]] == [stored[0].id]
    unknown = "0x" + "ee" * 32
    many = await api.post(
        "/tx/api/v1/transfers/details",
        {
            "chain_type": "ethereum",
            "chain_id": 1,
            "tx_hash": [stored[1].tx_hash, unknown, stored[0].tx_hash],
        },
    )
    assert [d["tx_hash"] for d in many.json()["data"]] == [stored[1].tx_hash, stored[0].tx_hash]
    bad = await api.post(
        "/tx/api/v1/transfers/details", {"chain_type": "ethereum", "chain_id": 1, "tx_hash": "0x12"}
    )
    assert bad.status_code == 400 and "tx_hash" in bad.json()["message"]


class FakeChain:
    """Stands in for a watcher's origin fetch (the real one is tested with Anvil)."""

    def __init__(self, records: dict[str, TransactionRecord]) -> None:
        self.records = records
        self.asked: list[str] = []

    async def fetch_transaction(self, tx_hash: str) -> TransactionRecord | None:
        self.asked.append(tx_hash)
        return self.records.get(tx_hash)


async def detail(api: ApiClient, tx_hash: str, **extra: str) -> dict[str, object]:
    r = await api.client.get(
        "/tx/api/v1/transfers/detail",
        params={"chain_type": "ethereum", "chain_id": "1", "tx_hash": tx_hash, **extra},
    )
    assert r.status_code == 200, r.text
    assert r.json()["code"] == 0 and r.json()["msg"] == "success"
    return r.json()["data"]  # type: ignore[no-any-return]


async def test_v2_detail_reads_store_then_origin_and_caches(api: ApiClient) -> None:
    await watching(api)
    (stored,) = await insert(api.server, [evm_record(1)])
    data = await detail(api, stored.tx_hash[2:])
    assert data["txhash"] == stored.tx_hash and data["txTime"] == stored.tx_time * 1000  # type: ignore[operator]
    assert data["listenAddress"] is None and data["is_reorg_resend"] is False

    # Not configured and not stored: the chain cannot be asked, so nothing is known.
    assert await detail(api, "0x" + "ab" * 32) is None

    fresh = evm_record(7)
    pending = replace(evm_record(8), height=None, tx_status="pending", block_hash=None)
    chain = FakeChain(
        {
            fresh.tx_hash: fresh,
            pending.tx_hash: pending,
            stored.tx_hash: replace(stored, nonce="99"),
        }
    )
    api.server.core.transaction_sources[("ethereum", 1)] = chain
    assert await detail(api, "0x" + "cd" * 32) is None
    assert (await detail(api, fresh.tx_hash))["txhash"] == fresh.tx_hash
    assert (await detail(api, pending.tx_hash))["txStatus"] == "pending"
    body = {"chain_type": "ethereum", "chain_id": 1, "tx_hash": [fresh.tx_hash, pending.tx_hash]}
    listed = (await api.post("/tx/api/v1/transfers/details", body)).json()["data"]
    # Mined: cached. Pending: not cached (it would go stale once mined).
    assert [d["tx_hash"] for d in listed] == [fresh.tx_hash]
    # A stored record is served from the store unless no_cache forces the origin.
    chain.asked.clear()
    assert (await detail(api, stored.tx_hash))["nonce"] == "1"
    assert chain.asked == []
    assert (await detail(api, stored.tx_hash, no_cache="true"))["nonce"] == "99"
    assert chain.asked == [stored.tx_hash]
    assert (await detail(api, stored.tx_hash))["nonce"] == "99"


async def test_v2_detail_errors(api: ApiClient) -> None:
    r = await api.client.get(
        "/tx/api/v1/transfers/detail",
        params={"chain_type": "ethereum", "tx_hash": "0x" + "ab" * 32},
    )
    assert r.status_code == 400 and r.json()["message"] == "chain_id is required"
    r = await api.client.get(
        "/tx/api/v1/transfers/detail",
        params={"chain_type": "ethereum", "chain_id": "x", "tx_hash": "0x" + "ab" * 32},
    )
    assert r.status_code == 400 and "chain_id must be an integer" in r.json()["message"]
    r = await api.client.get(
        "/tx/api/v1/transfers/detail",
        params={
            "chain_type": "ethereum",
            "chain_id": "1",
            "tx_hash": "0x" + "ab" * 32,
            "no_cache": "1",
        },
    )
    assert r.status_code == 400 and "not configured" in r.json()["message"]

"""Helpers for the address-monitoring API tests: a server with an app and its key, records.

Imported by the test modules (a second ``conftest.py`` would shadow the root one)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rtserver.protocols.address_monitoring._naming import push_data
from rtserver.records import TokenTransfer, TransactionRecord
from rtserver.store.transactions import store_records

from conftest import RunningServer, make_config, run_server

ADMIN = {"Authorization": "Bearer secret-admin"}


@dataclass
class ApiClient:
    server: RunningServer
    app_id: str
    key: str
    client: httpx.AsyncClient

    async def post(self, path: str, body: object, **kw: object) -> httpx.Response:
        return await self.client.post(path, json=body, **kw)  # type: ignore[arg-type]

    async def new_app(self, name: str = "other") -> tuple[str, str]:
        created = await self.client.post("/admin/v1/apps", json={"name": name}, headers=ADMIN)
        assert created.status_code == 201, created.text
        return created.json()["app_id"], created.json()["api_key"]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiClient]:
    config = make_config(tmp_path / "data", admin_token="secret-admin")
    async with run_server(config) as server, server.client() as client:
        created = await client.post("/admin/v1/apps", json={"name": "demo"}, headers=ADMIN)
        body = created.json()
        client.headers["X-API-Key"] = body["api_key"]
        yield ApiClient(server, body["app_id"], body["api_key"], client)


ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20
TOKEN = "0x" + "70" * 20


def evm_record(
    n: int,
    sender: str = ALICE,
    receiver: str = BOB,
    *,
    chain_type: str = "ethereum",
    chain_id: int = 1,
    token: str | None = None,
) -> TransactionRecord:
    """A plausible EVM record number ``n`` (hash, height and time derive from ``n``)."""
    transfers: tuple[TokenTransfer, ...] = ()
    if token is not None:
        transfers = (
            TokenTransfer(
                from_address=sender,
                to_address=receiver,
                token_contract_address=token,
                symbol="TKN",
                amount=str(10**6 * n),
                decimals=6,
            ),
        )
    return TransactionRecord(
        chain_type=chain_type,
        chain_id=chain_id,
        tx_hash="0x" + f"{n:064x}",
        height=1000 + n,
        tx_time=1_745_000_000 + n,
        sender=sender,
        receiver=token or receiver,
        transfer_type="token" if token else "native",
        amount="0" if token else str(10**18 * n),
        symbol="ETH",
        decimals=18,
        tx_status="success",
        tx_fee="21000000000000",
        gas_limit="21000",
        gas_used="21000",
        gas_price="1000000000",
        nonce=str(n),
        token_transfers=transfers,
        block_hash="0x" + f"{n:064x}"[::-1],
    )


async def insert(
    server: RunningServer, records: Sequence[TransactionRecord]
) -> list[TransactionRecord]:
    def job(conn: sqlite3.Connection) -> list[TransactionRecord]:
        outcomes = store_records(conn, records, now=server.core.clock.time())
        return [outcome.record for outcome in outcomes]

    return await server.core.store.write(job)


def push_message(record: TransactionRecord, message_id: str = "replayed-1", **data: Any) -> Any:
    """A complete ``transaction`` message (the replay body) of ``record``, ``data`` overridden."""
    return {
        "id": message_id,
        "time": 1745000000000,
        "type": "transaction",
        "code": 0,
        "data": {**push_data(record, [record.sender or ""], False), **data},
        "msg": "success",
    }


async def watch(client: httpx.AsyncClient, *addresses: str, chain_type: str = "ethereum") -> None:
    """Put ``addresses`` on the watch list of the client's app."""
    r = await client.post(
        "/tx/api/v1/addresses",
        json={"wallets": [{"chain_type": chain_type, "address": list(addresses)}]},
    )
    assert r.status_code == 200, r.text

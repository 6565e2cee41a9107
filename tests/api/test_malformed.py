"""The malformed-input corpus: every endpoint, every kind of garbage, nothing changes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import trio
from _api import (  # noqa: F401 (fixtures)
    ADMIN,
    ALICE,
    ApiClient,
    api,
    evm_record,
    insert,
    push_message,
)
from delivery.helpers import command, connect, connected

POST_ENDPOINTS = [
    ("POST", "/tx/api/v1/addresses"),
    ("POST", "/tx/api/v1/addresses/batch-delete"),
    ("PATCH", "/tx/api/v1/addresses"),
    ("POST", "/tx/api/v1/addresses/contains"),
    ("POST", "/tx/api/v1/transfers/query"),
    ("POST", "/tx/api/v1/transfers/multi-chain"),
    ("POST", "/tx/api/v1/transfers/details"),
    ("POST", "/tx/api/v1/transaction/ws/replay"),
]
GET_ENDPOINTS = [
    "/tx/api/v1/transfers/detail",
    "/tx/api/v1/dex-pools/0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8/trades",
]

RAW_BODIES: list[bytes] = [
    b"",
    b"not json",
    b"{",
    b"\xff\xfe\x00garbage",
    b"[]",
    b"null",
    b'"a string"',
    b"42",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
]
FIELD_VALUES: list[object] = [
    None,
    True,
    -1,
    1.5,
    "",
    "\u0000\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "🦄" * 300,
    "x" * 100_000,
    [],
    [None] * 10_000,
    ["0x" + "ab" * 20] * 5_000,
    {"nested": {"deeper": [1, 2, {"x": None}]}},
    # Beyond SQLite's 64-bit INTEGER: must be a 400 where parsed, not a 500 in the query.
    2**63,
    -(2**63) - 1,
    10**40,
]
FIELDS = [
    "wallets",
    "address",
    "chain_type",
    "chain_id",
    "adds",
    "removes",
    "limit",
    "id",
    "tx_type",
    "token",
    "addresses",
    "tx_hash",
]


def bodies() -> list[bytes]:
    out = list(RAW_BODIES)
    for field in FIELDS:
        for value in FIELD_VALUES:
            out.append(json.dumps({field: value}).encode())
            out.append(
                json.dumps(
                    {"chain_type": "ethereum", "chain_id": 1, "address": ALICE, field: value}
                ).encode()
            )
        out.append(
            json.dumps(
                {
                    "wallets": [
                        {"chain_type": "ethereum", "address": value} for value in FIELD_VALUES
                    ]
                }
            ).encode()
        )
        out.append(
            json.dumps(
                {
                    "addresses": [
                        {"chain_type": "ethereum", "chain_id": 1, "address": value}
                        for value in FIELD_VALUES
                    ]
                }
            ).encode()
        )
    return out


def snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            # Usage counts every authenticated request, including rejected ones.
            if row[0] not in ("usage_daily", "sqlite_sequence")
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def check_error(response_status: int, text: str, where: str) -> None:
    assert 400 <= response_status < 500, (where, response_status, text[:300])
    body = json.loads(text)
    assert isinstance(body["code"], int) and body["code"] == response_status, (where, body)
    assert isinstance(body["message"], str) and body["message"], where
    assert "Traceback" not in body["message"]


async def test_every_endpoint_rejects_the_corpus_and_changes_nothing(api: ApiClient) -> None:
    await insert(api.server, [evm_record(1)])
    await api.post(
        "/tx/api/v1/addresses", {"wallets": [{"chain_type": "ethereum", "address": [ALICE]}]}
    )
    db = api.server.core.config.database_path
    before = snapshot(db)
    checked = 0
    for method, path in POST_ENDPOINTS:
        for body in bodies():
            r = await api.client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            if r.status_code == 200:
                # Garbage beside valid fields may leave a valid query or an empty PATCH
                # (unknown keys are ignored); it must still change nothing.
                valid_ok = method == "PATCH" or path.endswith(("/query", "/contains"))
                assert valid_ok, (method, path, body[:200])
                continue
            check_error(r.status_code, r.text, f"{method} {path} {body[:120]!r}")
            checked += 1
    for path in GET_ENDPOINTS:
        for value in ("", "x" * 2_000, "🦄", "-1", "1e5", "0x", "null", "%00"):
            params = {
                "chain_type": value,
                "chain_id": value,
                "tx_hash": value,
                "chainType": value,
                "chainId": value,
                "limit": value,
                "no_cache": value,
            }
            r = await api.client.get(path, params=params)
            check_error(r.status_code, r.text, f"GET {path} {value[:20]!r}")
            checked += 1
    assert snapshot(db) == before
    assert checked > 1000
    assert (await api.client.get("/healthz")).status_code == 200


async def test_oversized_body_gets_413_in_the_api_envelope(api: ApiClient) -> None:
    big = b'{"wallets": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = await api.client.post(
        "/tx/api/v1/addresses", content=big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["code"] == 413 and "limit" in r.json()["message"]


BIG = 2**63  # one past SQLite's largest INTEGER


async def test_numbers_out_of_range_answer_400_where_they_are_parsed(api: ApiClient) -> None:
    """Every number a client sends is range-checked when read: a 400 naming the field,
    never the 500 of a statement that cannot bind it (or a stored implausible value)."""
    await insert(api.server, [evm_record(1)])
    group = {"chain_type": "ethereum", "chain_id": 1, "address": [ALICE]}
    replayed = evm_record(2)
    cases: list[tuple[str, str, object, str]] = [
        ("POST", "/tx/api/v1/transfers/query", {"address": ALICE, "id": BIG}, "id"),
        ("POST", "/tx/api/v1/transfers/query", {"address": ALICE, "id": -3}, "id"),
        ("POST", "/tx/api/v1/transfers/query", {"address": ALICE, "chain_id": BIG}, "chain_id"),
        ("POST", "/tx/api/v1/transfers/query", {"address": ALICE, "chain_id": 0}, "chain_id"),
        ("POST", "/tx/api/v1/transfers/multi-chain", {"addresses": [group], "id": BIG}, "id"),
        (
            "POST",
            "/tx/api/v1/transfers/multi-chain",
            {"addresses": [{**group, "chain_id": -1}]},
            "chain_id",
        ),
        (
            "POST",
            "/tx/api/v1/transfers/details",
            {"chain_type": "ethereum", "chain_id": BIG, "tx_hash": replayed.tx_hash},
            "chain_id",
        ),
        ("GET", "/tx/api/v1/transfers/detail?chain_type=ethereum&chain_id=-5&tx_hash=0x1", "", ""),
        (
            "POST",
            "/tx/api/v1/transaction/ws/replay",
            push_message(replayed, chain_id=BIG),
            "chain_id",
        ),
        (
            "POST",
            "/tx/api/v1/transaction/ws/replay",
            push_message(replayed, chain_id=-5),
            "chain_id",
        ),
        ("POST", "/tx/api/v1/transaction/ws/replay", push_message(replayed, height=BIG), "height"),
        ("POST", "/tx/api/v1/transaction/ws/replay", push_message(replayed, height=-1), "height"),
        ("POST", "/tx/api/v1/transaction/ws/replay", push_message(replayed, txTime=BIG), "txTime"),
        (
            "POST",
            "/tx/api/v1/transaction/ws/replay",
            push_message(replayed, decimals=BIG),
            "decimals",
        ),
        (
            "POST",
            "/admin/v1/pools",
            {"chain_type": "ethereum", "chain_id": BIG, "address": ALICE},
            "chain_id",
        ),
        (
            "POST",
            "/admin/v1/pools",
            {"chain_type": "ethereum", "chain_id": 0, "address": ALICE},
            "chain_id",
        ),
        ("POST", f"/admin/v1/pools/ethereum/{BIG}/{ALICE}/disable", None, "chain_id"),
        ("DELETE", f"/admin/v1/pools/ethereum/{BIG}/{ALICE}", None, "chain_id"),
    ]
    db = api.server.core.config.database_path
    before = snapshot(db)
    for method, path, body, field in cases:
        headers = ADMIN if path.startswith("/admin") else {}
        kwargs: dict[str, object] = {} if body is None or method == "GET" else {"json": body}
        r = await api.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 400, (method, path, body, r.status_code, r.text[:300])
        if path.startswith("/admin"):  # the admin API's own error shape
            message = r.json()["error"]["message"]
        else:
            check_error(r.status_code, r.text, path)
            message = r.json()["message"]
        assert field in message, (path, message)
    assert snapshot(db) == before

    async with trio.open_nursery() as nursery:
        ws = await connect(nursery, api.server.url, api.key)
        await connected(ws)
        for chain_id in (BIG, -(2**63) - 1, 0, -1):
            reply = await command(
                ws,
                {
                    "id": "g",
                    "type": "getTxHash",
                    "data": {"chain_type": "ethereum", "chain_id": chain_id, "txHash": "0x1"},
                },
            )
            assert (reply["code"], reply["data"]) == (400, None), reply
            assert "chain_id" in reply["msg"], reply
        await ws.aclose()

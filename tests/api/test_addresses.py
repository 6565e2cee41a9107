from __future__ import annotations

import logging
from pathlib import Path

import pytest
from _api import ADMIN, ApiClient, api  # noqa: F401 (fixtures)

from rtserver.config import ApiConfig, ChainConfig

from conftest import make_config, rtserver_client, run_server

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
BAD_CHECKSUM = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
SOLANA = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"
TRON_AS_EVM = "0x" + "ab" * 20
BTC = ["1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"]


async def contains(api: ApiClient, chain_type: str, address: str, key: str | None = None) -> bool:
    headers = {"X-API-Key": key} if key else {}
    r = await api.post(
        "/tx/api/v1/addresses/contains",
        {"chain_type": chain_type, "address": address},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["code"] == 0 and r.json()["message"] == "ok"
    return bool(r.json()["data"]["is_exist"])


async def test_add_contains_remove_across_chain_formats(api: ApiClient) -> None:
    body = {
        "wallets": [
            {"chain_type": "Ethereum", "address": [CHECKSUMMED, CHECKSUMMED.lower()]},
            {"chain_type": "tron", "address": [TRON]},
            {"chain_type": "solana", "address": [SOLANA]},
            {"chain_type": "bitcoin", "address": BTC},
        ]
    }
    added = await api.post("/tx/api/v1/addresses", body)
    assert added.status_code == 200
    assert added.json() == {"code": 0, "message": "ok", "data": "success"}
    # Adding twice is harmless.
    assert (await api.post("/tx/api/v1/addresses", body)).status_code == 200

    index = api.server.core.watched
    assert index.watches("ethereum", CHECKSUMMED.lower())
    assert index.watches("tron", TRON) and index.watches("solana", SOLANA)
    assert await contains(api, "ethereum", CHECKSUMMED)
    assert await contains(api, "ETHEREUM", CHECKSUMMED.upper().replace("0X", "0x"))
    assert await contains(api, "bitcoin", BTC[1].upper())
    assert not await contains(api, "bsc", CHECKSUMMED)

    removed = await api.post(
        "/tx/api/v1/addresses/batch-delete",
        {"wallets": [{"chain_type": "ethereum", "address": [CHECKSUMMED]}]},
    )
    assert removed.json() == {"code": 0, "message": "ok", "data": "success"}
    assert not index.watches("ethereum", CHECKSUMMED)
    assert not await contains(api, "ethereum", CHECKSUMMED)
    assert await contains(api, "tron", TRON)


async def test_patch_adds_and_removes_in_one_request(api: ApiClient) -> None:
    one, two = "0x" + "11" * 20, "0x" + "22" * 20
    await api.post("/tx/api/v1/addresses", {"wallets": [{"chain_type": "bsc", "address": [one]}]})
    r = await api.client.patch(
        "/tx/api/v1/addresses", json={"chain_type": "bsc", "adds": [two], "removes": [one]}
    )
    assert r.json() == {"code": 0, "message": "ok", "data": "success"}
    assert await contains(api, "bsc", two) and not await contains(api, "bsc", one)
    both = await api.client.patch(
        "/tx/api/v1/addresses", json={"chain_type": "bsc", "adds": [two], "removes": [two]}
    )
    assert both.status_code == 400 and "both adds and removes" in both.json()["message"]
    # Defaults: both lists empty is a harmless no-op.
    noop = await api.client.patch("/tx/api/v1/addresses", json={"chain_type": "bsc"})
    assert noop.status_code == 200


async def test_validation_errors_name_the_field_and_change_nothing(api: ApiClient) -> None:
    cases = [
        ({"wallets": [{"chain_type": "ethereum", "address": [BAD_CHECKSUM]}]}, "checksum"),
        ({"wallets": [{"chain_type": "dogechain", "address": [CHECKSUMMED]}]}, "chain_type"),
        ({"wallets": []}, "wallets must have at least 1 item"),
        ({"wallets": [{"chain_type": "ethereum", "address": []}]}, "wallets[0].address"),
        (
            {
                "wallets": [
                    {"chain_type": "tron", "address": ["TJDENsfBJs4RFETt1X1uyT9pBxdnAbFnbn"]}
                ]
            },
            "wallets[0].address[0]",
        ),
        ({"wallets": [{"chain_type": "ethereum", "address": ["0x1234"]}]}, "40 hex digits"),
        # One good and one bad address: nothing is added.
        (
            {"wallets": [{"chain_type": "ethereum", "address": [CHECKSUMMED, "nope"]}]},
            "wallets[0].address[1]",
        ),
    ]
    for body, expected in cases:
        r = await api.post("/tx/api/v1/addresses", body)
        assert r.status_code == 400, (body, r.text)
        error = r.json()
        assert error["code"] == 400 and error["data"] is None
        assert expected in error["message"], (expected, error)
    assert len(api.server.core.watched) == 0
    assert not await contains(api, "ethereum", CHECKSUMMED)


async def test_batch_limits_are_enforced(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", admin_token="secret-admin")
    config = config.replace(api=ApiConfig(max_addresses_per_request=3, max_wallet_groups=2))
    async with run_server(config) as server, server.client() as client:
        key = (await client.post("/admin/v1/apps", json={"name": "x"}, headers=ADMIN)).json()[
            "api_key"
        ]
        addrs = ["0x" + f"{i:040x}" for i in range(4)]
        too_many = await client.post(
            "/tx/api/v1/addresses",
            json={"wallets": [{"chain_type": "ethereum", "address": addrs}]},
            headers={"X-API-Key": key},
        )
        assert too_many.status_code == 400
        assert "at most 3" in too_many.json()["message"]
        groups = [{"chain_type": "ethereum", "address": [a]} for a in addrs[:3]]
        too_many_groups = await client.post(
            "/tx/api/v1/addresses", json={"wallets": groups}, headers={"X-API-Key": key}
        )
        assert too_many_groups.status_code == 400
        assert "wallets must have at most 2 items" in too_many_groups.json()["message"]


async def test_contains_is_isolated_per_app_unless_configured_global(tmp_path: Path) -> None:
    for global_contains in (False, True):
        config = make_config(tmp_path / f"data-{global_contains}", admin_token="secret-admin")
        config = config.replace(api=ApiConfig(contains_global=global_contains))
        async with run_server(config) as server, server.client() as client:
            keys = [
                (await client.post("/admin/v1/apps", json={"name": n}, headers=ADMIN)).json()[
                    "api_key"
                ]
                for n in ("a", "b")
            ]
            await client.post(
                "/tx/api/v1/addresses",
                json={"wallets": [{"chain_type": "ethereum", "address": [CHECKSUMMED]}]},
                headers={"X-API-Key": keys[0]},
            )
            r = await client.post(
                "/tx/api/v1/addresses/contains",
                json={"chain_type": "ethereum", "address": CHECKSUMMED},
                headers={"X-API-Key": keys[1]},
            )
            assert r.json()["data"]["is_exist"] is global_contains


async def test_missing_unknown_and_revoked_keys_get_401(api: ApiClient) -> None:
    body = {"wallets": [{"chain_type": "ethereum", "address": [CHECKSUMMED]}]}
    async with rtserver_client(api.server.url) as anonymous:
        missing = await anonymous.post("/tx/api/v1/addresses", json=body)
        unknown = await anonymous.post(
            "/tx/api/v1/addresses", json=body, headers={"X-API-Key": "rtk_nope"}
        )
        assert missing.status_code == 401 and "X-API-Key" in missing.json()["message"]
        assert unknown.status_code == 401 and unknown.json()["code"] == 401
        await api.client.post(f"/admin/v1/apps/{api.app_id}/revoke", headers=ADMIN)
        revoked = await anonymous.post(
            "/tx/api/v1/addresses", json=body, headers={"X-API-Key": api.key}
        )
        assert revoked.status_code == 401


async def test_an_address_on_a_chain_type_nobody_follows_is_accepted_with_a_warning(
    api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    core = api.server.core
    body = {"wallets": [{"chain_type": "ethereum", "address": [CHECKSUMMED, TRON_AS_EVM]}]}
    with caplog.at_level(logging.WARNING, logger="rtserver.core"):
        added = await api.post("/tx/api/v1/addresses", body)
    # The document's answer is unchanged: a success.
    assert added.json() == {"code": 0, "message": "ok", "data": "success"}
    (warning,) = [r for r in caplog.records if "never match" in r.getMessage()]
    assert "'ethereum'" in warning.getMessage() and "followed: none" in warning.getMessage()
    counted = core.metrics.registry.get_sample_value(
        "rtserver_watched_unfollowed_total", {"chain_type": "ethereum"}
    )
    assert counted == 2
    # A chain type a configured chain follows is quiet.
    core.config = core.config.replace(chains=(ChainConfig(chain_type="ethereum", chain_id=1),))
    assert core.check_followed("app", "ethereum", 5)
    assert not core.check_followed("app", "anvil", 0)  # nothing added: nothing to say

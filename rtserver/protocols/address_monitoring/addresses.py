"""Address management: the app's persistent watch list (``/tx/api/v1/addresses``).

Every request is validated whole before anything is written (one bad address rejects
the request and changes nothing); the write is one job, and the in-memory index the
watchers match against is updated right after it commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from quart import Blueprint, Response

from rtserver.core import Core
from rtserver.exceptions import InvalidInputError
from rtserver.http import get_core, get_list, get_object, read_json_object
from rtserver.protocols.address_monitoring._auth import authenticate_request
from rtserver.protocols.address_monitoring._envelopes import ok
from rtserver.protocols.address_monitoring._params import address_param, chain_type_param
from rtserver.store import watched

blueprint = Blueprint("address_monitoring_addresses", __name__, url_prefix="/tx/api/v1")

#: (chain_type, normal-form addresses) groups of one request.
_Groups = list[tuple[str, list[str]]]


@blueprint.post("/addresses")
async def add_addresses() -> Response:
    app = await authenticate_request()
    groups = _wallet_groups(await read_json_object())
    await _apply(get_core(), app.app_id, adds=groups, removes=[])
    return ok("success")


@blueprint.post("/addresses/batch-delete")
async def remove_addresses() -> Response:
    app = await authenticate_request()
    groups = _wallet_groups(await read_json_object())
    await _apply(get_core(), app.app_id, adds=[], removes=groups)
    return ok("success")


@blueprint.patch("/addresses")
async def patch_addresses() -> Response:
    app = await authenticate_request()
    body = await read_json_object()
    core = get_core()
    limit = core.config.api.max_addresses_per_request
    chain_type = chain_type_param(body)
    assert chain_type is not None
    adds = _addresses(chain_type, get_list(body, "adds", required=False, max_items=limit), "adds")
    removes = _addresses(
        chain_type, get_list(body, "removes", required=False, max_items=limit), "removes"
    )
    if len(adds) + len(removes) > limit:
        raise InvalidInputError(
            f"adds and removes together must have at most {limit} addresses", field="adds"
        )
    both = set(adds) & set(removes)
    if both:
        raise InvalidInputError(
            f"address {sorted(both)[0]!r} is in both adds and removes", field="removes"
        )
    await _apply(core, app.app_id, adds=[(chain_type, adds)], removes=[(chain_type, removes)])
    return ok("success")


@blueprint.post("/addresses/contains")
async def contains_address() -> Response:
    app = await authenticate_request()
    body = await read_json_object()
    chain_type = chain_type_param(body)
    assert chain_type is not None
    address = address_param(chain_type, body.get("address"), "address")
    core = get_core()
    owner = None if core.config.api.contains_global else app.app_id
    exists = await core.store.read(watched.is_watched, chain_type, address, owner)
    return ok({"is_exist": exists})


def _wallet_groups(body: Mapping[str, Any]) -> _Groups:
    config = get_core().config.api
    wallets = get_list(body, "wallets", min_items=1, max_items=config.max_wallet_groups)
    groups: _Groups = []
    total = 0
    for index, item in enumerate(wallets):
        where = f"wallets[{index}]."
        group = get_object(item, f"wallets[{index}]")
        chain_type = chain_type_param(group, where=where)
        assert chain_type is not None
        raw = get_list(
            group, "address", min_items=1, max_items=config.max_addresses_per_request, where=where
        )
        total += len(raw)
        if total > config.max_addresses_per_request:
            raise InvalidInputError(
                f"a request may carry at most {config.max_addresses_per_request} addresses",
                field="wallets",
            )
        groups.append((chain_type, _addresses(chain_type, raw, where + "address")))
    return groups


def _addresses(chain_type: str, raw: Iterable[Any], key: str) -> list[str]:
    return list(
        dict.fromkeys(address_param(chain_type, a, f"{key}[{i}]") for i, a in enumerate(raw))
    )


async def _apply(core: Core, app_id: str, *, adds: _Groups, removes: _Groups) -> None:
    def job(conn: sqlite3.Connection) -> None:
        now = core.clock.time()
        for chain_type, addresses in adds:
            watched.add_addresses(conn, app_id, chain_type, addresses, now=now)
        for chain_type, addresses in removes:
            watched.remove_addresses(conn, app_id, chain_type, addresses)

    def update_index(_: None) -> None:
        for chain_type, addresses in adds:
            core.check_followed(app_id, chain_type, len(addresses))
            for address in addresses:
                core.watched.add(app_id, chain_type, address)
        for chain_type, addresses in removes:
            for address in addresses:
                core.watched.remove(app_id, chain_type, address)

    await core.store.write(job, after_commit=update_index)

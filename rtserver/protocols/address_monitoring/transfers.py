"""Transfer queries (``/tx/api/v1/transfers/...``): lists by address, details by hash.

``/query``, ``/multi-chain`` and ``/details`` answer ``TransactionDetail`` objects with
``code: 1``; ``GET /detail`` answers the V2 naming with ``code: 0`` and, when the record
is not stored (or ``no_cache`` is set), asks the chain for it.

Every read is the calling app's view (``api.records_visibility``): a stored record the
app may not read is answered as if it were not stored (docs/address-monitoring.md).
"""

from __future__ import annotations

import logging
import sqlite3

from quart import Blueprint, Response, request

from rtserver.core import Core
from rtserver.exceptions import ChainError, InvalidInputError
from rtserver.http import (
    error_response,
    get_chain_id,
    get_core,
    get_int,
    get_list,
    get_object,
    get_str,
    read_json_object,
)
from rtserver.protocols.address_monitoring._auth import authenticate_request
from rtserver.protocols.address_monitoring._envelopes import detail_success, list_success
from rtserver.protocols.address_monitoring._naming import transaction_detail, v2_detail
from rtserver.protocols.address_monitoring._params import (
    address_param,
    chain_type_param,
    tx_hash_param,
    viewer,
)
from rtserver.records import TransactionRecord
from rtserver.store import transfer_queries
from rtserver.store.transactions import add_reader, store_records, visible_record
from rtserver.store.transfer_queries import AddressQuery

log = logging.getLogger("rtserver.api")

blueprint = Blueprint("address_monitoring_transfers", __name__, url_prefix="/tx/api/v1/transfers")

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_GROUPS = 10
MAX_GROUP_ADDRESSES = 20


@blueprint.post("/query")
async def query() -> Response:
    app = await authenticate_request()
    body = await read_json_object()
    chain_id = get_chain_id(body, required=False)
    chain_type = chain_type_param(body, chain_id=chain_id, required=False)
    token = get_str(body, "token", required=False)
    q = AddressQuery(
        address=address_param(chain_type, body.get("address"), "address"),
        chain_type=chain_type,
        chain_id=chain_id,
        transfer_type=get_str(body, "tx_type", required=False, max_length=64) or None,
        token=address_param(chain_type, token, "token") if token else None,
        limit=_limit(body),
        before_id=_cursor(body),
    )
    core = get_core()
    records = await core.store.read(transfer_queries.query_by_address, q, viewer(core, app.app_id))
    return list_success([transaction_detail(r) for r in records])


@blueprint.post("/multi-chain")
async def multi_chain() -> Response:
    app = await authenticate_request()
    body = await read_json_object()
    limit = _limit(body)
    before_id = _cursor(body)
    groups = get_list(body, "addresses", min_items=1, max_items=MAX_GROUPS)
    queries: list[AddressQuery] = []
    for index, item in enumerate(groups):
        where = f"addresses[{index}]."
        group = get_object(item, f"addresses[{index}]")
        chain_id = get_chain_id(group, where=where)
        chain_type = chain_type_param(group, chain_id=chain_id, where=where)
        raw = get_list(group, "address", min_items=1, max_items=MAX_GROUP_ADDRESSES, where=where)
        for i, value in enumerate(raw):
            address = address_param(chain_type, value, f"{where}address[{i}]")
            queries.append(AddressQuery(address, limit, chain_type, chain_id, before_id))
    core = get_core()
    records = await core.store.read(
        transfer_queries.query_many, queries, limit, viewer(core, app.app_id)
    )
    return list_success([transaction_detail(r) for r in records])


@blueprint.post("/details")
async def details() -> Response:
    app = await authenticate_request()
    body = await read_json_object()
    chain_id = get_chain_id(body)
    chain_type = chain_type_param(body, chain_id=chain_id)
    assert chain_type is not None and chain_id is not None
    raw = body.get("tx_hash")
    if isinstance(raw, list):
        limit = get_core().config.api.max_detail_hashes
        get_list(body, "tx_hash", min_items=1, max_items=limit)
        hashes = [tx_hash_param(chain_type, h, f"tx_hash[{i}]") for i, h in enumerate(raw)]
    elif raw is None:
        raise InvalidInputError("tx_hash is required", field="tx_hash")
    else:
        hashes = [tx_hash_param(chain_type, raw, "tx_hash")]
    core = get_core()
    records = await core.store.read(
        transfer_queries.records_by_hash, viewer(core, app.app_id), chain_type, chain_id, hashes
    )
    return list_success([transaction_detail(r) for r in records])


@blueprint.get("/detail")
async def detail() -> Response:
    app = await authenticate_request()
    args = request.args
    chain_id = get_chain_id(args)
    chain_type = chain_type_param(args, chain_id=chain_id)
    assert chain_type is not None and chain_id is not None
    tx_hash = tx_hash_param(chain_type, args.get("tx_hash"), "tx_hash")
    no_cache = args.get("no_cache", "").strip().lower() in ("true", "1")
    core = get_core()
    if not no_cache:
        # A stored record the app may not read is fetched from the chain like an unknown
        # one: same answer, same path, so nothing tells that another app watches it.
        record = await core.store.read(
            visible_record, viewer(core, app.app_id), chain_type, chain_id, tx_hash
        )
        if record is not None:
            return detail_success(v2_detail(record))
    source = core.transaction_sources.get((chain_type, chain_id))
    if source is None:
        if no_cache:
            raise InvalidInputError(
                f"no_cache needs a configured chain; {chain_type}:{chain_id} is not configured",
                field="chain_id",
            )
        return detail_success(None)
    try:
        record = await source.fetch_transaction(tx_hash)
    except ChainError as exc:
        log.warning("origin fetch of %s on %s:%s failed: %s", tx_hash, chain_type, chain_id, exc)
        return error_response(502, f"the {chain_type}:{chain_id} node could not be asked: {exc}")
    if record is None:
        return detail_success(None)
    return detail_success(v2_detail(await _cache(core, app.app_id, record)))


async def _cache(core: Core, app_id: str, record: TransactionRecord) -> TransactionRecord:
    """Store a record fetched from the chain, unless it is still pending; the app that
    fetched it reads it from then on (by hash: lists stay by watched address).

    Caching is safe before the watcher reaches the block: the watcher keeps its own list
    of records it delivered and still delivers this one. A pending transaction is not
    stored, or the cache would answer "pending" after it was mined.
    """
    if record.height is None:
        return record

    def job(conn: sqlite3.Connection) -> TransactionRecord:
        stored = store_records(conn, [record], now=core.clock.time())[0].record
        assert stored.id is not None
        add_reader(conn, app_id, stored.id)
        return stored

    return await core.store.write(job)


def _limit(body: dict[str, object]) -> int:
    value = get_int(
        body, "limit", required=False, default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT
    )
    assert value is not None
    return value


def _cursor(body: dict[str, object]) -> int | None:
    return get_int(body, "id", required=False, minimum=1)

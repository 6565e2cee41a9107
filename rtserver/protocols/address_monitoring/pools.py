"""``GET /tx/api/v1/dex-pools/{poolAddress}/trades``: a pool's recent trades (public)."""

from __future__ import annotations

from quart import Blueprint, Response, request

from rtserver.exceptions import NotFoundError
from rtserver.http import get_chain_id, get_core, get_int
from rtserver.protocols.address_monitoring._envelopes import ok
from rtserver.protocols.address_monitoring._params import address_param, chain_type_param
from rtserver.store import pools

blueprint = Blueprint("address_monitoring_pools", __name__, url_prefix="/tx/api/v1/dex-pools")


@blueprint.get("/<pool_address>/trades")
async def trades(pool_address: str) -> Response:
    args = request.args
    # The spec names them chainType/chainId and also accepts the snake_case names.
    chain_type_name = (
        "chain_type" if "chainType" not in args and "chain_type" in args else "chainType"
    )
    chain_id_name = "chain_id" if "chainId" not in args and "chain_id" in args else "chainId"
    chain_id = get_chain_id(args, chain_id_name)
    chain_type = chain_type_param(args, chain_type_name, chain_id=chain_id)
    assert chain_type is not None and chain_id is not None
    pool = address_param(chain_type, pool_address, "poolAddress")
    core = get_core()
    limit = get_int(
        args,
        "limit",
        required=False,
        default=100,
        minimum=1,
        maximum=core.config.api.pool_trades_max,
    )
    items = await core.store.read(pools.recent_trades, chain_type, chain_id, pool, limit)
    if items is None:
        raise NotFoundError(f"no pool {pool} on {chain_type}:{chain_id}")
    return ok({"items": items})

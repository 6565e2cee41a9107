"""The demo page of ``rtserver dev`` (dev mode only: ``rtserver serve`` never has it).

``GET /demo`` is a static page (``rtserver/static/demo.html``) that opens a socket of
every protocol rtserver speaks with the demo's credentials, and shows what each pushes:
the address-monitoring stream of the demo app, the wallet socket of the demo user (its
Safe is the demo address), a payment-status socket per payment it asks for, and the
demo user's channel socket. Its button sends a test transfer on the local chain
(``POST /demo/transfer``: from a funded Anvil account, through the chain's JSON-RPC).

The credentials come from ``GET /demo/session``. Handing an API key and users' tokens
to any page that asks is acceptable only because this is a local development server on
a throw-away chain; that is why this component exists only under ``rtserver dev``.
"""

from __future__ import annotations

from typing import Any

import httpx
from quart import Blueprint, Response

from rtserver.components import Component, ComponentFactory
from rtserver.core import Core
from rtserver.dev import CHAIN_ID, DEMO_ADDRESS, SENDER, DemoSetup
from rtserver.exceptions import ConfigError
from rtserver.http import error_response, get_core, json_response
from rtserver.http.pages import static_response
from rtserver.user_auth import mint_hs256

#: What the button sends: 1 ETH, in wei.
TRANSFER_WEI = 10**18
#: Lifetime of the wallet JWT the page is given, seconds (a new one at each page load).
_JWT_TTL = 3600.0
#: How long the local node may take to accept a transfer.
_RPC_TIMEOUT = 10.0


def demo_component(setup: DemoSetup) -> ComponentFactory:
    """The demo page, its credentials and its transfer endpoint, for ``setup``'s app."""

    def factory(core: Core) -> Component:
        return Component("dev-demo", blueprints=(_blueprint(setup),))

    return factory


def _blueprint(setup: DemoSetup) -> Blueprint:
    demo = Blueprint("demo", __name__, url_prefix="/demo")

    @demo.get("")
    async def page() -> Response:
        return static_response("demo.html")

    @demo.get("/session")
    async def session() -> Response:
        return json_response(_session(get_core(), setup))

    @demo.post("/transfer")
    async def transfer() -> Response:
        core = get_core()
        rpc_url = core.config.chains[0].rpc_urls[0]
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_sendTransaction",
            "params": [{"from": SENDER, "to": DEMO_ADDRESS, "value": hex(TRANSFER_WEI)}],
        }
        try:
            async with httpx.AsyncClient(timeout=_RPC_TIMEOUT) as client:
                answer = (await client.post(rpc_url, json=body)).json()
        except (httpx.HTTPError, ValueError) as exc:
            return error_response(502, f"the local chain did not take the transfer: {exc}")
        tx_hash = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(tx_hash, str):
            error = answer.get("error") if isinstance(answer, dict) else answer
            return error_response(502, f"the local chain refused the transfer: {error}")
        return json_response(
            {"tx_hash": tx_hash, "from": SENDER, "to": DEMO_ADDRESS, "value": str(TRANSFER_WEI)}
        )

    return demo


def _session(core: Core, setup: DemoSetup) -> dict[str, Any]:
    """Everything the page needs to open each protocol's socket as the demo app/user."""
    try:
        wallet_jwt: str | None = mint_hs256(
            core.config.jwt, setup.user_id, ttl=_JWT_TTL, now=core.clock.time()
        )
    except ConfigError:
        wallet_jwt = None  # a configured [jwt] without an HS256 secret: no token to mint
    return {
        "app_id": setup.app_id,
        "api_key": setup.api_key,
        "chain_type": "anvil",
        "chain_id": CHAIN_ID,
        "address": DEMO_ADDRESS,
        "sender": SENDER,
        "transfer_wei": str(TRANSFER_WEI),
        "user_id": setup.user_id,
        "wallet_jwt": wallet_jwt,
        "channel_token": setup.channel_token,
    }


__all__ = ["TRANSFER_WEI", "demo_component"]

"""The OpenAPI 3.1 description of every HTTP endpoint the server registers.

Built from declared schemas (``_schemas``) by a few builders, not kept as a JSON file:
each API's error shape, auth scheme and common failures are written once and applied to
every operation of that API, so an operation states only what is its own. The document
is built once per process (:func:`openapi_document`) and served as it is.

WebSocket endpoints are described as the ``GET`` of their upgrade request (query
parameters, headers, the refusals of the handshake); their frames are specified in the
documents under ``docs/`` that each description names.

A new endpoint gets its entry in the function of its API (a page or its files, like
``/docs/api``, in :func:`_operations`; an admin route in ``_ADMIN_ROUTES``), and any new
body its schema in ``_schemas``: ``tests/test_openapi.py`` names each registered route
that has none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtserver.http.openapi._schemas import (
    INTEGER,
    STRING,
    Schema,
    all_schemas,
    am_detail,
    am_list,
    am_ok,
    array,
    channel_success,
    closed,
    nullable,
    ref,
)

Operation = dict[str, Any]

#: What each failure means, as every API answers it (in its own error shape).
_FAILURES = {
    400: "Invalid input: the message names the field.",
    401: "Missing, unknown or revoked credentials.",
    403: "Forbidden.",
    404: "Not found.",
    409: "Conflict with the current state.",
    413: "The body is larger than `server.max_body_bytes`.",
    426: "A plain GET: the endpoint is a WebSocket.",
    429: "A limit was reached.",
    502: "The chain node could not be asked.",
    503: "The server is shutting down.",
}

#: The security requirements, by who calls.
Security = list[dict[str, list[str]]]
API_KEY: Security = [{"ApiKey": []}]
APP_BEARER: Security = [{"AppKeyBearer": []}]
ADMIN_TOKEN: Security = [{"AdminToken": []}]
USER_JWT: Security = [{"UserJwt": []}]
NO_AUTH: Security = []

_TAGS = [
    ("Operations", "Liveness, readiness, metrics and this reference."),
    (
        "Address monitoring",
        "`/tx/api/v1`: watch lists, transfer queries, pools and the transaction stream "
        "(docs/address-monitoring.md; `X-API-Key`).",
    ),
    (
        "Payment status",
        "`/api/identipay/v1` and the status socket (docs/payments.md; the app's API key "
        "as `Authorization: Bearer`).",
    ),
    (
        "Channels",
        "`/api/v1/ws`: the channel socket, publishing and diagnostics (docs/channels.md).",
    ),
    (
        "Wallet",
        "`/ws` and its HTTP fallback `/v1.2/users/me` (docs/wallet.md; an end user's JWT).",
    ),
    ("Admin: apps", "`/admin/v1`: apps, usage (`Authorization: Bearer <server.admin_token>`)."),
    ("Admin: webhooks", "An app's webhook endpoint, signing secret and dead letters."),
    ("Admin: pools", "DEX pools whose recent trades rtserver keeps."),
    ("Admin: users", "End users: channel access tokens, the wallet registry."),
]


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The whole description (built once; callers must not change it)."""
    paths: dict[str, dict[str, Operation]] = {}
    for build in (_operations, _address_monitoring, _payments, _channels, _wallet, _admin):
        for path, method, operation in build():
            paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rtserver HTTP API",
            "version": "0.1.0",
            "description": (
                "Every HTTP endpoint of rtserver: the four protocols' APIs, the admin API "
                "and the operations endpoints. Each API answers errors in its own shape "
                "(the `*Error` schemas); any endpoint may also answer 500 in that shape. "
                "Every response carries `X-Request-Id`. WebSocket endpoints are described "
                "by their upgrade request; their messages are specified in docs/."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [{"name": name, "description": text} for name, text in _TAGS],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": all_schemas(),
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


_SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An app's API key (`rtserver apps create`, `POST /admin/v1/apps`).",
    },
    "ApiKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "api_key",
        "description": "The API key in the query, on the transaction stream's handshake only.",
    },
    "AppKeyBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An app's API key as `Authorization: Bearer <key>`.",
    },
    "AdminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`server.admin_token`; without one configured the admin API answers 403.",
    },
    "UserJwt": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An end user's JWT from the app's auth server, verified with `[jwt]`.",
    },
}


# -- builders ------------------------------------------------------------------------------


def _json(schema: Schema, description: str, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"application/json": media}}


def _failures(error_schema: str, statuses: tuple[int, ...]) -> dict[str, Any]:
    return {str(status): _json(ref(error_schema), _FAILURES[status]) for status in sorted(statuses)}


def _parameter(
    where: str, name: str, description: str, schema: Schema, required: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
    }


def _path_param(name: str, description: str, schema: Schema = STRING) -> dict[str, Any]:
    return _parameter("path", name, description, schema, True)


def _query(
    name: str, description: str, schema: Schema = STRING, required: bool = False
) -> dict[str, Any]:
    return _parameter("query", name, description, schema, required)


def _header(name: str, description: str, schema: Schema = STRING) -> dict[str, Any]:
    return _parameter("header", name, description, schema, False)


def _operation(
    tag: str,
    operation_id: str,
    summary: str,
    *,
    ok: tuple[int, dict[str, Any]],
    errors: str,
    failures: tuple[int, ...] = (),
    security: Security,
    description: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
    body: Schema | None = None,
    body_example: Any = None,
) -> Operation:
    """One operation: its success, and ``failures`` in the ``errors`` shape (a body adds
    400 and 413: every body is read as one JSON object within ``server.max_body_bytes``)."""
    status, response = ok
    if body is not None:
        failures = (*failures, 400, 413)
    operation: Operation = {
        "tags": [tag],
        "operationId": operation_id,
        "summary": summary,
        "security": security,
        "responses": {str(status): response, **_failures(errors, tuple(set(failures)))},
    }
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        media: dict[str, Any] = {"schema": body}
        if body_example is not None:
            media["example"] = body_example
        operation["requestBody"] = {"required": True, "content": {"application/json": media}}
    return operation


def _websocket(
    tag: str,
    operation_id: str,
    summary: str,
    *,
    spec: str,
    errors: str,
    refusals: tuple[int, ...],
    plain_get: tuple[int, str, str],
    parameters: list[dict[str, Any]] | None = None,
    security: Security = NO_AUTH,
) -> Operation:
    """A WebSocket endpoint as its upgrade request: ``101`` when accepted, ``refusals``
    as HTTP answers of the handshake, and what a ``GET`` without ``Upgrade`` gets."""
    plain_status, plain_text, plain_errors = plain_get
    responses = {
        "101": {"description": "Switching Protocols: the socket is open (messages: " + spec + ")."},
        **_failures(errors, refusals),
    }
    responses[str(plain_status)] = _json(ref(plain_errors), plain_text)
    return {
        "tags": [tag],
        "operationId": operation_id,
        "summary": summary,
        "description": (
            "A WebSocket endpoint: send the upgrade request (`Connection: Upgrade`, "
            "`Upgrade: websocket`). OpenAPI does not model frames; the messages are "
            f"specified in {spec}."
        ),
        "security": security,
        "parameters": parameters or [],
        "responses": responses,
        "x-websocket": True,
    }


def _builder(
    tag: str, errors: str, security: Security, wrap: Callable[[str], Schema] = ref
) -> Callable[..., Operation]:
    """The operations of one API: ``build(operation_id, summary, schema, status=200,
    security=..., **kw)``; ``wrap`` turns ``schema`` into the success body's schema."""

    def build(
        operation_id: str,
        summary: str,
        schema: str,
        status: int = 200,
        security: Security = security,
        **kw: Any,
    ) -> Operation:
        return _operation(
            tag,
            operation_id,
            summary,
            ok=(status, _json(wrap(schema), summary)),
            errors=errors,
            security=security,
            **kw,
        )

    return build


_Entry = tuple[str, str, Operation]


# -- operations -------------------------------------------------------------------------


def _operations() -> list[_Entry]:
    tag, errors = "Operations", "Error"
    return [
        (
            "/healthz",
            "get",
            _operation(
                tag,
                "healthz",
                "Liveness",
                description="200 while the process serves requests; says nothing of its dependencies.",
                ok=(200, _json(ref("Health"), "Alive.", {"status": "ok"})),
                errors=errors,
                security=NO_AUTH,
            ),
        ),
        (
            "/readyz",
            "get",
            {
                **_operation(
                    tag,
                    "readyz",
                    "Readiness",
                    description="Runs every readiness check (the store, each chain's head).",
                    ok=(200, _json(ref("Readiness"), "Every check passes.")),
                    errors=errors,
                    security=NO_AUTH,
                ),
                "responses": {
                    "200": _json(ref("Readiness"), "Every check passes."),
                    "503": _json(ref("Readiness"), "A check fails, or the server is stopping."),
                },
            },
        ),
        (
            "/metrics",
            "get",
            _operation(
                tag,
                "metrics",
                "Prometheus metrics",
                ok=(
                    200,
                    {
                        "description": "The metrics in the Prometheus text format (`rtserver_` prefix).",
                        "content": {"text/plain": {"schema": STRING}},
                    },
                ),
                errors=errors,
                security=NO_AUTH,
            ),
        ),
        (
            "/openapi.json",
            "get",
            _operation(
                tag,
                "openapi",
                "This description",
                ok=(200, _json({"type": "object"}, "The OpenAPI 3.1 document.")),
                errors=errors,
                security=NO_AUTH,
            ),
        ),
        *(
            (
                path,
                "get",
                _operation(
                    tag,
                    operation_id,
                    summary,
                    ok=(
                        200,
                        {"description": summary, "content": {media: {"schema": STRING}}},
                    ),
                    errors=errors,
                    security=NO_AUTH,
                ),
            )
            for path, operation_id, summary, media in (
                ("/docs/api", "reference_page", "This reference as a page", "text/html"),
                (
                    "/docs/api/reference.js",
                    "reference_script",
                    "The page's script",
                    "text/javascript",
                ),
                ("/docs/api/reference.css", "reference_style", "The page's style", "text/css"),
                (
                    "/dashboard",
                    "dashboard_page",
                    "The dashboard page (asks for the admin token)",
                    "text/html",
                ),
            )
        ),
        *_demo(),
        (
            "/assets/{name}",
            "get",
            _operation(
                tag,
                "asset",
                "A file of the pages (`rtserver/static/`)",
                ok=(
                    200,
                    {
                        "description": "The file.",
                        "content": {
                            m: {"schema": STRING}
                            for m in ("text/html", "text/javascript", "text/css")
                        },
                    },
                ),
                errors=errors,
                failures=(404,),
                security=NO_AUTH,
                parameters=[_path_param("name", "The file's name.")],
            ),
        ),
    ]


def _demo() -> list[_Entry]:
    """The demo page's routes: registered by ``rtserver dev`` only (a local dev server;
    the page is given the demo's credentials)."""
    tag, note = "Dev demo", "Only under `rtserver dev` (404 from any other server)."
    return [
        (
            "/demo",
            "get",
            _operation(
                tag,
                "demo_page",
                "The demo page",
                description=note,
                ok=(
                    200,
                    {"description": "The page.", "content": {"text/html": {"schema": STRING}}},
                ),
                errors="Error",
                failures=(404,),
                security=NO_AUTH,
            ),
        ),
        (
            "/demo/session",
            "get",
            _operation(
                tag,
                "demo_session",
                "The demo's app, user and credentials (for the page's sockets)",
                description=note,
                ok=(200, _json(ref("DemoSession"), "The demo's credentials.")),
                errors="Error",
                failures=(404,),
                security=NO_AUTH,
            ),
        ),
        (
            "/demo/transfer",
            "post",
            _operation(
                tag,
                "demo_transfer",
                "Send 1 ETH from a funded account of the local chain to the watched address",
                description=note + " No body.",
                ok=(200, _json(ref("DemoTransfer"), "Sent; mined by the local chain.")),
                errors="Error",
                failures=(404, 502),
                security=NO_AUTH,
            ),
        ),
    ]


# -- address monitoring -----------------------------------------------------------------

_AM = "Address monitoring"
_AM_ERRORS = "AddressMonitoringError"
_CHAIN_TYPE_QUERY = {"type": "string", "examples": ["ethereum"]}


def _am(operation_id: str, summary: str, data: Schema, **kw: Any) -> Operation:
    envelope = kw.pop("envelope", am_ok)
    return _operation(
        _AM,
        operation_id,
        summary,
        ok=(200, _json(envelope(data), "Done.")),
        errors=_AM_ERRORS,
        failures=(401, *kw.pop("failures", ())),
        security=API_KEY,
        **kw,
    )


def _transfer_query_body() -> Schema:
    return closed(
        {"address": STRING},
        {
            "chain_type": _CHAIN_TYPE_QUERY,
            "chain_id": INTEGER,
            "tx_type": {"type": "string", "description": "A transfer type (`native`, `token`)."},
            "token": {"type": "string", "description": "A token contract address."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            "id": {"type": "integer", "minimum": 1, "description": "Cursor: the last `id` seen."},
        },
    )


def _address_monitoring() -> list[_Entry]:
    p = "/tx/api/v1"
    details = array(ref("TransactionDetail"))
    return [
        (
            f"{p}/addresses",
            "post",
            _am(
                "add_addresses",
                "Watch addresses",
                {"const": "success"},
                description="Validated whole before anything is written; idempotent.",
                body=ref("WalletGroups"),
                body_example={
                    "wallets": [{"chain_type": "ethereum", "address": ["0x" + "a1" * 20]}]
                },
            ),
        ),
        (
            f"{p}/addresses",
            "patch",
            _am(
                "patch_addresses",
                "Add and remove addresses of one chain type",
                {"const": "success"},
                body=closed(
                    {"chain_type": _CHAIN_TYPE_QUERY},
                    {"adds": array(STRING), "removes": array(STRING)},
                ),
            ),
        ),
        (
            f"{p}/addresses/batch-delete",
            "post",
            _am(
                "remove_addresses",
                "Stop watching addresses",
                {"const": "success"},
                body=ref("WalletGroups"),
            ),
        ),
        (
            f"{p}/addresses/contains",
            "post",
            _am(
                "contains_address",
                "Whether an address is watched",
                closed({"is_exist": {"type": "boolean"}}),
                body=closed({"chain_type": _CHAIN_TYPE_QUERY, "address": STRING}),
            ),
        ),
        (
            f"{p}/transfers/query",
            "post",
            _am(
                "query_transfers",
                "An address's transactions, newest first",
                details,
                envelope=am_list,
                body=_transfer_query_body(),
            ),
        ),
        (
            f"{p}/transfers/multi-chain",
            "post",
            _am(
                "query_transfers_multi_chain",
                "Transactions of addresses on several chains, newest first",
                details,
                envelope=am_list,
                body=closed(
                    {
                        "addresses": array(
                            closed(
                                {
                                    "chain_type": _CHAIN_TYPE_QUERY,
                                    "chain_id": INTEGER,
                                    "address": array(STRING, minItems=1, maxItems=20),
                                }
                            ),
                            minItems=1,
                            maxItems=10,
                        )
                    },
                    {"limit": {"type": "integer", "minimum": 1, "maximum": 100}, "id": INTEGER},
                ),
            ),
        ),
        (
            f"{p}/transfers/details",
            "post",
            _am(
                "transfer_details",
                "Stored transactions by hash",
                details,
                envelope=am_list,
                body=closed(
                    {
                        "chain_type": _CHAIN_TYPE_QUERY,
                        "chain_id": INTEGER,
                        "tx_hash": {"oneOf": [STRING, array(STRING, minItems=1)]},
                    }
                ),
            ),
        ),
        (
            f"{p}/transfers/detail",
            "get",
            _am(
                "transfer_detail",
                "One transaction (V2 naming), from the store or the chain",
                nullable(ref("TransactionDetailV2")),
                envelope=am_detail,
                description="When the record is not stored (or `no_cache`), the configured "
                "chain's node is asked; `data` is null when no chain knows it.",
                failures=(400, 502),
                parameters=[
                    _query(
                        "chain_type",
                        "The chain type (`evm` + `chain_id` names the configured one).",
                        required=True,
                    ),
                    _query("chain_id", "The chain id.", INTEGER, required=True),
                    _query("tx_hash", "The transaction hash.", required=True),
                    _query("no_cache", "`true` asks the chain even when stored."),
                ],
            ),
        ),
        (
            f"{p}/dex-pools/{{poolAddress}}/trades",
            "get",
            _operation(
                _AM,
                "pool_trades",
                "A pool's recent trades (public)",
                ok=(200, _json(am_ok(closed({"items": array(ref("PoolTrade"))})), "Newest first.")),
                errors=_AM_ERRORS,
                failures=(400, 404),
                security=NO_AUTH,
                parameters=[
                    _path_param("poolAddress", "The pool's address."),
                    _query(
                        "chainType", "The chain type (`chain_type` also accepted).", required=True
                    ),
                    _query(
                        "chainId",
                        "The chain id (`chain_id` also accepted).",
                        INTEGER,
                        required=True,
                    ),
                    _query(
                        "limit",
                        "At most this many (default 100, at most `api.pool_trades_max`).",
                        INTEGER,
                    ),
                ],
            ),
        ),
        (
            f"{p}/transaction/ws/status",
            "get",
            _am(
                "stream_status",
                "The app's open stream connections",
                closed(
                    {
                        "appId": STRING,
                        "connectedClients": INTEGER,
                        "clients": array(STRING),
                        "details": array(
                            closed(
                                {
                                    "clientId": STRING,
                                    "connectedAt": {"type": "integer", "description": "Unix ms."},
                                    "uptime": {"type": "integer", "description": "Seconds."},
                                    "pendingTxCount": INTEGER,
                                }
                            )
                        ),
                    }
                ),
            ),
        ),
        (
            f"{p}/transaction/ws/replay",
            "post",
            _am(
                "stream_replay",
                "Push a transaction message to the calling app again",
                closed(
                    {"processed": {"const": True}, "txhash": STRING},
                    {"messageId": STRING},
                ),
                description="Stores the record as the app's own, commits a pending message "
                "(or re-pushes the message `id` names), pushes it to the app's connections and "
                "queues its webhook. Other apps do not receive replays.",
                body={
                    "type": "object",
                    "required": ["type", "data"],
                    "properties": {
                        "id": STRING,
                        "type": {"const": "transaction"},
                        "data": ref("PushData"),
                    },
                },
            ),
        ),
        (
            f"{p}/transaction/ws",
            "get",
            _websocket(
                _AM,
                "transaction_stream",
                "The transaction stream (WebSocket)",
                spec="docs/address-monitoring.md and ../shared/spec/address-monitoring-api.txt",
                errors=_AM_ERRORS,
                refusals=(400, 401, 503),
                plain_get=(426, "A plain GET (no `Upgrade: websocket`).", _AM_ERRORS),
                security=[{"ApiKey": []}, {"ApiKeyQuery": []}],
                parameters=[
                    _query("api_key", "The API key, for browsers (they cannot set headers)."),
                    _header(
                        "X-ResendDuration", "How far back to resend unACKed messages (seconds)."
                    ),
                ],
            ),
        ),
    ]


# -- payment status ---------------------------------------------------------------------

_PAY = "Payment status"
_TX_ID = _path_param(
    "txId", "The proposal's transaction id (a UUID).", {"type": "string", "format": "uuid"}
)


def _payments() -> list[_Entry]:
    p = "/api/identipay/v1"

    op = _builder(_PAY, "PaymentError", APP_BEARER)

    return [
        (
            f"{p}/proposals",
            "post",
            op(
                "create_proposal",
                "Create a payment proposal",
                "Proposal",
                201,
                failures=(401, 409, 429),
                description="409: a pending proposal already receives at that address on that "
                "chain; 429: beyond `payments.max_pending_per_app`.",
                body=ref("ProposalRequest"),
                body_example={
                    "chainType": "anvil",
                    "chainId": 31337,
                    "token": "native",
                    "amount": "1000",
                    "receivingAddress": "0x" + "a1" * 20,
                    "expiresIn": 900,
                },
            ),
        ),
        (
            f"{p}/proposals/{{txId}}",
            "get",
            op(
                "read_proposal",
                "Read a proposal",
                "Proposal",
                200,
                failures=(400, 401, 404),
                parameters=[_TX_ID],
            ),
        ),
        (
            f"{p}/proposals/{{txId}}/cancel",
            "post",
            op(
                "cancel_proposal",
                "Cancel a pending proposal",
                "Proposal",
                200,
                failures=(400, 401, 404, 409),
                parameters=[_TX_ID],
            ),
        ),
        (
            f"{p}/transactions/{{txId}}/status",
            "get",
            op(
                "poll_status",
                "Poll a payment's status",
                "PaymentStatus",
                200,
                failures=(400, 401, 404),
                description="The document's polling endpoint (CORS per `payments.cors_origins`).",
                parameters=[_TX_ID],
            ),
        ),
        (
            f"{p}/transactions/{{txId}}/status",
            "options",
            {
                "tags": [_PAY],
                "operationId": "poll_status_preflight",
                "summary": "CORS preflight of the polling endpoint",
                "security": NO_AUTH,
                "parameters": [_TX_ID],
                "responses": {"204": {"description": "Allowed methods and headers."}},
            },
        ),
        (
            "/ws/transactions/{txId}",
            "get",
            _websocket(
                _PAY,
                "status_socket",
                "A payment's status socket (WebSocket, no auth)",
                spec="docs/payments.md and ../shared/spec/payment-status-ws.txt",
                errors="PaymentError",
                refusals=(429,),
                plain_get=(
                    400,
                    "A plain GET: the path accepts only WebSocket upgrades.",
                    "PaymentError",
                ),
                parameters=[_TX_ID],
            ),
        ),
    ]


# -- channels ----------------------------------------------------------------------------

_CH = "Channels"


def _channels() -> list[_Entry]:
    p = "/api/v1/ws"

    op = _builder(_CH, "ChannelError", APP_BEARER, lambda name: channel_success(ref(name)))

    return [
        (
            f"{p}/publish",
            "post",
            op(
                "publish",
                "Publish an event to a channel",
                "Published",
                security=[*APP_BEARER, *ADMIN_TOKEN],
                failures=(401,),
                body=ref("PublishRequest"),
                body_example={
                    "channel": "settings",
                    "event": "SETTINGS_CHANGED",
                    "data": {},
                    "user_id": "42",
                },
            ),
        ),
        (
            f"{p}/connected-users",
            "get",
            op(
                "connected_users",
                "The app's connected user ids",
                "ConnectedUsers",
                security=[*APP_BEARER, *ADMIN_TOKEN],
                failures=(400, 401),
                parameters=[_query("app_id", "Required with the admin token.")],
            ),
        ),
        (
            f"{p}/connections",
            "get",
            op(
                "connections",
                "Every open channel socket (admin)",
                "ChannelConnections",
                security=ADMIN_TOKEN,
                failures=(401,),
            ),
        ),
        (
            p,
            "get",
            _websocket(
                _CH,
                "channel_socket",
                "The channel socket (WebSocket)",
                spec="docs/channels.md and ../shared/spec/channel-realtime-ws.txt",
                errors="ChannelError",
                refusals=(400, 401, 403, 503),
                plain_get=(404, "A plain GET: the socket has no HTTP route.", "ChannelError"),
                parameters=[
                    _query(
                        "token",
                        "An access token rtserver issued, or a JWT (`channels.jwt`).",
                        required=True,
                    ),
                    _query(
                        "settings_since", "`<epoch>:<offset>`: catch up the `settings` channel."
                    ),
                ],
            ),
        ),
        (
            f"{p}/test",
            "get",
            _websocket(
                _CH,
                "channel_socket_debug",
                "A channel socket for any user, no token (only with `channels.debug_endpoints`)",
                spec="docs/channels.md",
                errors="ChannelError",
                refusals=(400, 404, 503),
                plain_get=(404, "A plain GET: the socket has no HTTP route.", "ChannelError"),
                parameters=[
                    _query("app_id", "The app.", required=True),
                    _query("user_id", "The user.", required=True),
                    _query(
                        "settings_since", "`<epoch>:<offset>`: catch up the `settings` channel."
                    ),
                ],
            ),
        ),
    ]


# -- wallet ------------------------------------------------------------------------------

_WA = "Wallet"
_BLOCKCHAIN_ID = _header("X-Blockchain-Id", "The chain (default: `wallet.default_chain_id`).")


def _wallet() -> list[_Entry]:
    p = "/v1.2/users/me"

    def op(operation_id: str, summary: str, data: str, **kw: Any) -> Operation:
        return _operation(
            _WA,
            operation_id,
            summary,
            ok=(200, _json(ref(data), summary)),
            errors="WalletError",
            failures=(400, 401, 404, *kw.pop("failures", ())),
            security=USER_JWT,
            **kw,
        )

    return [
        (
            p,
            "get",
            op("wallet_user", "The user (`user_data`)", "UserData", parameters=[_BLOCKCHAIN_ID]),
        ),
        (
            f"{p}/balances",
            "get",
            op(
                "wallet_balances",
                "The Safe's balances (`balance_data`)",
                "BalanceData",
                failures=(502,),
                parameters=[_BLOCKCHAIN_ID],
            ),
        ),
        (
            f"{p}/transactions",
            "get",
            op(
                "wallet_transactions",
                "The Safe's transactions (`transaction_data`)",
                "TransactionData",
                parameters=[
                    _BLOCKCHAIN_ID,
                    _query("limit", "At most this many (`wallet.transactions_max`).", INTEGER),
                    _query("startDate", "ISO 8601 date or date-time, inclusive."),
                    _query("endDate", "ISO 8601 date or date-time, inclusive."),
                ],
            ),
        ),
        (
            "/ws",
            "get",
            _websocket(
                _WA,
                "wallet_socket",
                "The wallet socket (WebSocket; the JWT comes in the first message)",
                spec="docs/wallet.md and ../shared/spec/wallet-realtime-ws.txt",
                errors="WalletError",
                refusals=(503,),
                plain_get=(404, "A plain GET: the socket has no HTTP route.", "Error"),
                parameters=[
                    _query("blockchainId", "The chain (default: `wallet.default_chain_id`).")
                ],
            ),
        ),
    ]


# -- admin -------------------------------------------------------------------------------

_APP_ID = _path_param("app_id", "The app.")
_USER_ID = _path_param("user_id", "The end user's id in the app.")
_CHAIN_ID = _path_param("chain_id", "The chain id.", INTEGER)


@dataclass(frozen=True)
class _AdminRoute:
    """One admin operation: answered in rtserver's own error shape, behind the admin
    token (401 without it, 403 while no token is configured)."""

    tag: str
    path: str
    method: str
    operation_id: str
    summary: str
    status: int
    schema: Schema
    failures: tuple[int, ...] = ()
    parameters: tuple[dict[str, Any], ...] = ()
    body: Schema | None = None

    def entry(self) -> _Entry:
        return (
            self.path,
            self.method,
            _operation(
                self.tag,
                self.operation_id,
                self.summary,
                ok=(self.status, _json(self.schema, self.summary)),
                errors="Error",
                failures=(401, 403, *self.failures),
                security=ADMIN_TOKEN,
                parameters=list(self.parameters),
                body=self.body,
            ),
        )


_APPS, _HOOKS, _POOLS, _USERS = "Admin: apps", "Admin: webhooks", "Admin: pools", "Admin: users"
_DASHBOARD = "Admin: dashboard"
_POOL_KEY = (
    _path_param("chain_type", "The chain type (`evm` + the chain id names the configured one)."),
    _path_param("chain_id", "The chain id.", INTEGER),
    _path_param("address", "The pool's address."),
)
_HOOK = "/admin/v1/apps/{app_id}/webhook"
_USER = "/admin/v1/apps/{app_id}/users/{user_id}"
_SAFE = _USER + "/safes/{chain_id}"
_APP_ONLY = (_APP_ID,)
_A_USER = (_APP_ID, _USER_ID)
_A_SAFE = (_APP_ID, _USER_ID, _CHAIN_ID)
_NEW_APP = closed({"name": STRING}, {"webhook_url": {"type": ["string", "null"], "format": "uri"}})
_NEW_POOL = closed({"chain_type": STRING, "chain_id": INTEGER, "address": STRING})
_URL = closed({"url": {"type": "string", "format": "uri"}})
_USAGE_PARAMS = (_APP_ID, _query("days", "How many days (1 to 366, default 31).", INTEGER))
_DELIVERY = (_APP_ID, _path_param("delivery_id", "The delivery."))
_APP_LIST = closed({"apps": array(ref("App"))})
_POOL_LIST = closed({"pools": array(ref("Pool"))})
_REMOVED = closed({"removed": {"const": True}})

# fmt: off
_ADMIN_ROUTES = (
    _AdminRoute(_DASHBOARD, "/admin/v1/dashboard", "get", "dashboard_snapshot", "What the server is doing now (the dashboard's data)", 200, ref("DashboardSnapshot")),
    _AdminRoute(_APPS, "/admin/v1/apps", "get", "list_apps", "Every app", 200, _APP_LIST),
    _AdminRoute(_APPS, "/admin/v1/apps", "post", "create_app", "Create an app (its API key is shown once)", 201, ref("NewApp"), body=_NEW_APP),
    _AdminRoute(_APPS, "/admin/v1/apps/{app_id}", "get", "get_app", "One app", 200, ref("App"), (404,), _APP_ONLY),
    _AdminRoute(_APPS, "/admin/v1/apps/{app_id}/revoke", "post", "revoke_app", "Revoke an app (its sockets close)", 200, ref("App"), (404,), _APP_ONLY),
    _AdminRoute(_APPS, "/admin/v1/apps/{app_id}/usage", "get", "app_usage", "Requests and pushes per UTC day", 200, ref("Usage"), (400, 404), _USAGE_PARAMS),
    _AdminRoute(_HOOKS, _HOOK, "get", "get_webhook", "An app's webhook", 200, ref("WebhookSettings"), (404,), _APP_ONLY),
    _AdminRoute(_HOOKS, _HOOK, "put", "set_webhook", "Set the webhook endpoint (re-enables a disabled one)", 200, ref("WebhookSettings"), (404,), _APP_ONLY, _URL),
    _AdminRoute(_HOOKS, _HOOK, "delete", "clear_webhook", "Clear the webhook endpoint", 200, ref("WebhookSettings"), (404,), _APP_ONLY),
    _AdminRoute(_HOOKS, _HOOK + "/rotate-secret", "post", "rotate_webhook_secret", "Rotate the signing secret (the old one signs for `webhooks.secret_overlap` s)", 200, ref("WebhookSettings"), (404,), _APP_ONLY),
    _AdminRoute(_HOOKS, _HOOK + "/dead-letters", "get", "dead_letters", "Dead letters", 200, ref("DeadLetters"), (404,), _APP_ONLY),
    _AdminRoute(_HOOKS, _HOOK + "/dead-letters/retry", "post", "retry_dead_letters", "Requeue every dead letter", 200, ref("Requeued"), (404,), _APP_ONLY),
    _AdminRoute(_HOOKS, _HOOK + "/dead-letters/{delivery_id}/retry", "post", "retry_dead_letter", "Requeue one dead letter", 200, ref("Requeued"), (404,), _DELIVERY),
    _AdminRoute(_POOLS, "/admin/v1/pools", "get", "list_pools", "Every pool", 200, _POOL_LIST),
    _AdminRoute(_POOLS, "/admin/v1/pools", "post", "add_pool", "Add (or re-enable) a pool", 201, ref("Pool"), body=_NEW_POOL),
    _AdminRoute(_POOLS, "/admin/v1/pools/{chain_type}/{chain_id}/{address}", "delete", "remove_pool", "Remove a pool", 200, _REMOVED, (400, 404), _POOL_KEY),
    _AdminRoute(_POOLS, "/admin/v1/pools/{chain_type}/{chain_id}/{address}/enable", "post", "enable_pool", "Enable a pool", 200, ref("Pool"), (400, 404), _POOL_KEY),
    _AdminRoute(_POOLS, "/admin/v1/pools/{chain_type}/{chain_id}/{address}/disable", "post", "disable_pool", "Disable a pool", 200, ref("Pool"), (400, 404), _POOL_KEY),
    _AdminRoute(_USERS, _USER + "/tokens", "post", "issue_access_token", "Issue a channel access token", 201, ref("IssuedToken"), (400, 404), _A_USER),
    _AdminRoute(_USERS, _USER + "/tokens", "delete", "revoke_access_tokens", "Revoke the user's access tokens (forced logout)", 200, ref("RevokedTokens"), (400,), _A_USER),
    _AdminRoute(_USERS, _USER, "get", "wallet_registry_user", "A wallet user as stored", 200, ref("RegistryUser"), (400, 404), _A_USER),
    _AdminRoute(_USERS, _USER + "/kyc", "put", "set_kyc", "Set the KYC state (pushed to the user)", 200, ref("KycChange"), (404,), _A_USER, ref("KycRequest")),
    _AdminRoute(_USERS, _SAFE, "put", "put_safe", "Register the user's Safe on a chain", 200, ref("Safe"), (404,), _A_SAFE, ref("SafeRequest")),
    _AdminRoute(_USERS, _SAFE, "delete", "delete_safe", "Remove the user's Safe on a chain", 200, ref("Safe"), (400, 404), _A_SAFE),
    _AdminRoute(_USERS, _SAFE + "/iban", "put", "put_iban", "Set the Safe's IBAN (pushed to the user)", 200, ref("IbanChange"), (404,), _A_SAFE, ref("IbanRequest")),
    _AdminRoute(_USERS, _SAFE + "/recovery", "put", "put_recovery", "Set the Safe's recovery settings", 200, ref("Safe"), (404,), _A_SAFE, ref("RecoveryRequest")),
)
# fmt: on


def _admin() -> list[_Entry]:
    stream = _operation(
        _DASHBOARD,
        "dashboard_stream",
        "The dashboard snapshot, live (server-sent events)",
        description=(
            "An `event: snapshot` with `data: <DashboardSnapshot JSON>` every "
            "`dashboard.interval` seconds; 429 once `dashboard.max_viewers` streams are open "
            "or while the server stops."
        ),
        ok=(
            200,
            {"description": "The stream.", "content": {"text/event-stream": {"schema": STRING}}},
        ),
        errors="Error",
        failures=(401, 403, 429),
        security=ADMIN_TOKEN,
    )
    return [
        *(route.entry() for route in _ADMIN_ROUTES),
        ("/admin/v1/dashboard/stream", "get", stream),
    ]

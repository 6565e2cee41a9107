"""The proposals API under ``/api/identipay/v1`` (docs/payments.md).

The document defines only the polling endpoint (``GET /transactions/{txId}/status`` with
``Authorization: Bearer <key>``); creating, reading and cancelling a proposal are designed
in its style (camelCase JSON, the ``error`` message as the error body):

* ``POST /proposals``: create one; 201 with the proposal, its ``transactionId`` a UUID;
* ``GET /proposals/{txId}``: read one;
* ``POST /proposals/{txId}/cancel``: cancel a pending one (409 otherwise);
* ``GET /transactions/{txId}/status``: the ``status`` message's fields (CORS-enabled,
  since the document's polling function runs in the browser).

The key is the app's API key (the same keys as the rest of rtserver). A proposal of
another app is answered exactly like a missing one (404). Every request is validated
whole before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from quart import Blueprint, Response, request

from rtserver.addresses import validate_address
from rtserver.core import Core
from rtserver.exceptions import AuthenticationError, InvalidInputError, NotFoundError
from rtserver.http import (
    bearer_token,
    get_chain_id,
    get_chain_type,
    get_core,
    get_int,
    get_str,
    json_response,
    json_type,
    read_json_object,
)
from rtserver.payments import Payments
from rtserver.proposals import MAX_AMOUNT, NATIVE, Proposal, ProposalTerms
from rtserver.protocols.payment_status._wire import (
    AMOUNT_MATCHES,
    NOT_FOUND,
    PREFIX,
    proposal_json,
    status_message,
)
from rtserver.store.apps import App
from rtserver.usage import REQUESTS

#: The fields a proposal request may have; any other is refused (a typo must not pass).
_FIELDS = frozenset(
    {
        "chainType",
        "chainId",
        "token",
        "amount",
        "amountMatch",
        "receivingAddress",
        "expiresIn",
        "expiresAt",
    }
)
#: Decimal digits of the largest amount (2**256-1).
_AMOUNT_DIGITS = len(str(MAX_AMOUNT))


def parse_transaction_id(value: str) -> str | None:
    """A transaction id in its canonical form (lowercase ``8-4-4-4-12`` hex), or None.

    Only that form (any case) is accepted: the ids rtserver assigns look like it, and
    a second spelling of one id would be a second topic.
    """
    if len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    text = str(parsed)
    return text if text == value.lower() else None


def make_blueprint(payments: Payments) -> Blueprint:
    blueprint = Blueprint("payment_status_api", __name__, url_prefix=PREFIX)

    @blueprint.post("/proposals")
    async def create_proposal() -> Response:
        app = await _authenticate()
        core = get_core()
        terms = _terms(core, await read_json_object())
        proposal = await payments.create_proposal(app.app_id, terms)
        return json_response(proposal_json(proposal), status=201)

    @blueprint.get("/proposals/<tx_id>")
    async def read_proposal(tx_id: str) -> Response:
        app = await _authenticate()
        return json_response(proposal_json(await _owned(payments, app, tx_id)))

    @blueprint.post("/proposals/<tx_id>/cancel")
    async def cancel_proposal(tx_id: str) -> Response:
        app = await _authenticate()
        transaction_id = _transaction_id(tx_id)
        return json_response(proposal_json(await payments.cancel(app.app_id, transaction_id)))

    # Quart's automatic OPTIONS answer of this rule would shadow the preflight below.
    @blueprint.get("/transactions/<tx_id>/status", provide_automatic_options=False)
    async def transaction_status(tx_id: str) -> Response:
        app = await _authenticate()
        response = json_response(status_message(await _owned(payments, app, tx_id)))
        return _with_cors(response)

    @blueprint.route("/transactions/<tx_id>/status", methods=["OPTIONS"])
    async def transaction_status_preflight(tx_id: str) -> Response:
        # The document's polling function runs in a browser and sends Authorization:
        # a cross-origin page needs this preflight answered.
        response = Response("", status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
        return _with_cors(response)

    return blueprint


def _with_cors(response: Response) -> Response:
    origins = get_core().config.payments.cors_origins
    origin = request.headers.get("Origin", "")
    if "*" in origins:
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin and origin in origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


async def _authenticate() -> App:
    """The app of the request's ``Authorization: Bearer <key>``; counts the request."""
    key = bearer_token()
    if not key:
        raise AuthenticationError("Authorization: Bearer <API key> header is required")
    core = get_core()
    app = await core.authenticate_app(key)
    core.usage.count(app.app_id, REQUESTS)
    return app


def _transaction_id(value: str) -> str:
    transaction_id = parse_transaction_id(value)
    if transaction_id is None:
        raise InvalidInputError("Invalid transaction id: expected a UUID", field="txId")
    return transaction_id


async def _owned(payments: Payments, app: App, value: str) -> Proposal:
    proposal = await payments.get(app.app_id, _transaction_id(value))
    if proposal is None:
        raise NotFoundError(NOT_FOUND)
    return proposal


def _terms(core: Core, body: Mapping[str, Any]) -> ProposalTerms:
    """A proposal request's terms, validated whole (the error names the field)."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidInputError(f"unknown field {unknown[0]!r}", field=unknown[0])
    chain_id = get_chain_id(body, "chainId")
    assert chain_id is not None
    chains = core.config.chains
    chain_type = get_chain_type(body, "chainType", chain_id=chain_id, chains=chains)
    assert chain_type is not None
    if not any((c.chain_type, c.chain_id) == (chain_type, chain_id) for c in chains):
        raise InvalidInputError(
            f"chain {chain_type}:{chain_id} is not followed by this server (see [[chains]])",
            field="chainType",
        )
    token = get_str(body, "token", max_length=128)
    assert token is not None
    token = NATIVE if token.lower() == NATIVE else _address(chain_type, token, "token")
    match_name = get_str(body, "amountMatch", required=False, default="exact", max_length=16)
    if match_name not in AMOUNT_MATCHES:
        raise InvalidInputError(
            f"amountMatch must be one of {', '.join(AMOUNT_MATCHES)}", field="amountMatch"
        )
    return ProposalTerms(
        chain_type=chain_type,
        chain_id=chain_id,
        token=token,
        amount=_amount(body.get("amount")),
        amount_match=AMOUNT_MATCHES[match_name],
        receiving_address=_address(chain_type, body.get("receivingAddress"), "receivingAddress"),
        expires_at_ms=_expiry(core, body),
    )


def _address(chain_type: str, value: Any, key: str) -> str:
    try:
        return validate_address(chain_type, value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{key}: {exc}", field=key) from None


def _amount(value: Any) -> int:
    """Base units: a decimal string of digits (or a JSON integer), 1 to 2**256-1."""
    if value is None:
        raise InvalidInputError("amount is required", field="amount")
    if isinstance(value, int) and not isinstance(value, bool):
        amount = value
    elif isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > _AMOUNT_DIGITS:
            raise InvalidInputError(
                "amount must be a whole number of the token's base units, as a string"
                ' of decimal digits (e.g. "1500000")',
                field="amount",
            )
        amount = int(text)
    else:
        raise InvalidInputError(
            f"amount must be a string of decimal digits, got {json_type(value)}", field="amount"
        )
    if not 1 <= amount <= MAX_AMOUNT:
        raise InvalidInputError("amount must be between 1 and 2**256-1", field="amount")
    return amount


def _expiry(core: Core, body: Mapping[str, Any]) -> int:
    """``expiresIn`` (seconds from now) or ``expiresAt`` (RFC 3339 with a time zone),
    exactly one; within ``payments.max_expiry`` from now. Unix milliseconds."""
    now_ms = core.clock.time_ms()
    longest = core.config.payments.max_expiry
    has_in, has_at = body.get("expiresIn") is not None, body.get("expiresAt") is not None
    if has_in == has_at:
        raise InvalidInputError(
            "exactly one of expiresIn and expiresAt is required", field="expiresIn"
        )
    if has_in:
        seconds = get_int(body, "expiresIn", minimum=1, maximum=int(longest))
        assert seconds is not None
        return now_ms + seconds * 1000
    text = get_str(body, "expiresAt", max_length=64)
    assert text is not None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            "expiresAt must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z", field="expiresAt"
        ) from None
    if when.tzinfo is None:
        raise InvalidInputError("expiresAt must name its time zone (e.g. Z)", field="expiresAt")
    expires_at_ms = int(when.timestamp() * 1000)
    if expires_at_ms <= now_ms:
        raise InvalidInputError("expiresAt must be in the future", field="expiresAt")
    if expires_at_ms > now_ms + longest * 1000:
        raise InvalidInputError(
            f"expiresAt must be at most {longest:.0f} seconds from now (payments.max_expiry)",
            field="expiresAt",
        )
    return expires_at_ms

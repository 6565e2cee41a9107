"""The wallet protocol's HTTP side.

* The document's HTTP fallback, with ``Authorization: Bearer <jwt>`` and
  ``X-Blockchain-Id``: ``GET /v1.2/users/me/balances``, ``/v1.2/users/me/transactions``
  (``limit``, ``startDate``, ``endDate`` as query arguments) and ``/v1.2/users/me``; each
  answers the ``data`` of the socket's message of the same content (``balance_data``,
  ``transaction_data``, ``user_data``), read the same way.
* The registry, for the app's backend (admin token), under
  ``/admin/v1/apps/<app_id>/users/<user_id>``: ``GET`` (the user as stored), ``PUT
  /kyc``, ``PUT``/``DELETE /safes/<chain_id>``, ``PUT /safes/<chain_id>/iban``, ``PUT
  /safes/<chain_id>/recovery``. KYC and IBAN changes are pushed to the user's sockets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from quart import Blueprint, Response, request

from rtserver.exceptions import ChainError, InvalidInputError, NotFoundError
from rtserver.http import bearer_token, error_response, json_response, read_json_object
from rtserver.http.admin import require_admin_token
from rtserver.protocols.wallet import _wire
from rtserver.protocols.wallet._wallet import Wallet
from rtserver.protocols.wallet.ws import WalletSocket, transaction_filter
from rtserver.store import wallets
from rtserver.store.users import UserRef, validate_user_id
from rtserver.store.wallets import Recovery, Safe, WalletUser

#: The fallback's prefix (its error shape).
PREFIX = "/v1.2"


def make_blueprints(wallet: Wallet, socket: WalletSocket) -> tuple[Blueprint, ...]:
    me = Blueprint("wallet", __name__, url_prefix=PREFIX + "/users/me")
    admin = Blueprint("wallet-admin", __name__, url_prefix="/admin/v1/apps/<app_id>/users")
    admin.before_request(require_admin_token)

    async def caller() -> tuple[WalletUser, Safe]:
        user = await socket.authenticate(bearer_token())  # "": the document's TOKEN_REQUIRED
        given = request.headers.get("X-Blockchain-Id", "").strip()
        chain_id = socket.chain_of(given)
        if chain_id is None:
            raise InvalidInputError(socket.unsupported(given))
        found = await wallet.wallet_user(user)
        safe = None if found is None else found.safe_on(chain_id)
        if found is None or safe is None:
            raise NotFoundError(f"No Safe wallet found for this user on chain {chain_id}")
        return found, safe

    @me.get("")
    async def user_data() -> Response:
        found, _ = await caller()
        return json_response(_wire.user_data(found))

    @me.get("/balances")
    async def balances() -> Response:
        _, safe = await caller()
        try:
            current = await wallet.balances.current(safe.chain_id, safe.address)
        except ChainError:
            return error_response(502, "Failed to retrieve balance")
        return json_response(_wire.balance_data(safe, wallet.assets(safe.chain_id), current))

    @me.get("/transactions")
    async def transactions() -> Response:
        _, safe = await caller()
        params: dict[str, Any] = dict(request.args.items())
        try:
            limit, since, until = transaction_filter(
                params, wallet.config.transactions_default, wallet.config.transactions_max
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        items = await wallet.transactions(safe, limit, since, until)
        return json_response(_wire.transaction_data(safe, items))

    # -- the registry (admin) -----------------------------------------------------------

    def user_of(app_id: str, user_id: str) -> UserRef:
        return UserRef(app_id, validate_user_id(user_id))

    @admin.get("/<user_id>")
    async def show(app_id: str, user_id: str) -> Response:
        found = await wallet.wallet_user(user_of(app_id, user_id))
        if found is None:
            raise NotFoundError(f"no user {user_id!r} in app {app_id!r}")
        return json_response(registry_json(found))

    @admin.put("/<user_id>/kyc")
    async def put_kyc(app_id: str, user_id: str) -> Response:
        body = await read_json_object()
        state = wallets.validate_state(body.get("state"), "state")
        change = await wallet.set_kyc(user_of(app_id, user_id), state)
        return json_response({"previous_state": change.previous, "new_state": change.new})

    @admin.put("/<user_id>/safes/<int:chain_id>")
    async def put_safe(app_id: str, user_id: str, chain_id: int) -> Response:
        body = await read_json_object()
        address = wallets.validate_evm_address(body.get("address"), "address")
        signer = wallets.validate_signer(body.get("signer_id", address))
        threshold = wallets.validate_threshold(body.get("threshold", 1))
        safe = await wallet.put_safe(user_of(app_id, user_id), chain_id, address, signer, threshold)
        return json_response(safe_json(safe))

    @admin.delete("/<user_id>/safes/<int:chain_id>")
    async def delete_safe(app_id: str, user_id: str, chain_id: int) -> Response:
        safe = await wallet.delete_safe(user_of(app_id, user_id), chain_id)
        return json_response(safe_json(safe))

    @admin.put("/<user_id>/safes/<int:chain_id>/iban")
    async def put_iban(app_id: str, user_id: str, chain_id: int) -> Response:
        body = await read_json_object()
        iban = wallets.validate_iban(body.get("iban"))
        bic = None if body.get("bic") is None else wallets.validate_bic(body.get("bic"))
        state = wallets.validate_state(body.get("state"), "state")
        change = await wallet.set_iban(user_of(app_id, user_id), chain_id, iban, bic, state)
        return json_response(
            {"previous_state": change.previous.state, "safe": safe_json(change.safe)}
        )

    @admin.put("/<user_id>/safes/<int:chain_id>/recovery")
    async def put_recovery(app_id: str, user_id: str, chain_id: int) -> Response:
        body = await read_json_object()
        safe = await wallet.set_recovery(user_of(app_id, user_id), chain_id, recovery_of(body))
        return json_response(safe_json(safe))

    return me, admin


def recovery_of(body: dict[str, Any]) -> Recovery:
    """Recovery settings from a JSON body (``enabled``, ``address``, ``delay`` seconds,
    ``pending``, ``execute_after`` ISO 8601 or Unix milliseconds); InvalidInputError."""
    enabled, pending = body.get("enabled", False), body.get("pending", False)
    if not isinstance(enabled, bool) or not isinstance(pending, bool):
        raise InvalidInputError("enabled, pending: true or false")
    address = body.get("address")
    if address is not None:
        address = wallets.validate_evm_address(address, "address")
    delay = body.get("delay")
    if delay is not None and (not isinstance(delay, int) or isinstance(delay, bool) or delay < 0):
        raise InvalidInputError("delay: seconds, an integer ≥ 0")
    after = body.get("execute_after")
    after_ms: int | None = None
    if isinstance(after, int) and not isinstance(after, bool) and after >= 0:
        after_ms = after
    elif isinstance(after, str):
        try:
            after_ms = int(datetime.fromisoformat(after).timestamp() * 1000)
        except ValueError:
            raise InvalidInputError("execute_after: ISO 8601 or Unix milliseconds") from None
    elif after is not None:
        raise InvalidInputError("execute_after: ISO 8601 or Unix milliseconds")
    return Recovery(enabled, address, delay, pending, after_ms)


def safe_json(safe: Safe) -> dict[str, Any]:
    r = safe.recovery
    return {
        "chain_id": safe.chain_id,
        "chain_type": safe.chain_type,
        "address": safe.address,
        "signer_id": safe.signer_id,
        "threshold": safe.threshold,
        "iban": {"iban": safe.iban.iban, "bic": safe.iban.bic, "state": safe.iban.state},
        "recovery": {
            "enabled": r.enabled,
            "address": r.address,
            "delay": r.delay,
            "pending": r.pending,
            "execute_after_ms": r.execute_after_ms,
        },
    }


def registry_json(user: WalletUser) -> dict[str, Any]:
    return {
        "app_id": user.user.app_id,
        "user_id": user.user.user_id,
        "kyc_state": user.kyc_state,
        "safes": [safe_json(s) for s in user.safes],
    }

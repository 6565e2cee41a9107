"""``GET /transaction/ws/status`` and ``POST /transaction/ws/replay`` (spec "HTTP helper APIs").

Replay delivers to the *calling* app only (the app of ``X-API-Key``): the record is
stored idempotently, a pending message is committed with it (or, when the body's ``id``
is a message the app already has, that message is pushed again), pushed to the app's
open connections and queued for its webhook. Other apps watching the same addresses
and connection-scoped subscribers do not receive replays (docs/delivery.md).

The record is the calling app's own (``replayed_by``): it never changes a record a
watcher stored or another app replayed, and only that app reads it. Every field is
validated as the API's other inputs are, since a replay is a client's claim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from quart import Blueprint, Response

from rtserver.addresses import chain_family
from rtserver.delivery import Delivery
from rtserver.exceptions import InvalidInputError
from rtserver.http import (
    get_chain_id,
    get_int,
    get_list,
    get_object,
    get_str,
    json_response,
    read_json_object,
)
from rtserver.protocols.address_monitoring._auth import authenticate_request
from rtserver.protocols.address_monitoring._errors import PREFIX
from rtserver.protocols.address_monitoring._params import (
    address_param,
    chain_type_param,
    tx_hash_param,
)
from rtserver.protocols.address_monitoring.ws import ENDPOINT
from rtserver.records import (
    InputDetail,
    InternalTransaction,
    OutputDetail,
    TokenTransfer,
    TransactionRecord,
)

_SAFE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
#: A base-unit amount (or gas, fee, nonce, UTXO index): a decimal string; 2**256 has 78 digits.
_DECIMAL = re.compile(r"[0-9]{1,78}")
_EVM_METHOD_ID = re.compile(r"0x[0-9a-fA-F]{8}")
_TX_STATUSES = ("success", "failed", "pending")
#: Most items in one of a message's detail arrays.
_MAX_ITEMS = 10_000


def make_blueprint(delivery: Delivery) -> Blueprint:
    blueprint = Blueprint("address_monitoring_ws_status", __name__, url_prefix=PREFIX)

    @blueprint.get("/transaction/ws/status")
    async def status() -> Response:
        app = await authenticate_request()
        open_ = delivery.core.connections.for_app(app.app_id, ENDPOINT)
        pending = await delivery.pending_count(app.app_id)
        now = delivery.core.clock.time()
        details = [
            {
                "clientId": c.conn_id,
                "connectedAt": int(c.connected_at * 1000),
                "uptime": int(now - c.connected_at),
                "pendingTxCount": pending,
            }
            for c in open_
        ]
        return json_response(
            {
                "code": 0,
                "message": "ok",
                "data": {
                    "appId": app.app_id,
                    "connectedClients": len(open_),
                    "clients": [c.conn_id for c in open_],
                    "details": details,
                },
            }
        )

    @blueprint.post("/transaction/ws/replay")
    async def replay() -> Response:
        app = await authenticate_request()
        body = await read_json_object()
        if body.get("type") != "transaction":
            raise InvalidInputError('type must be "transaction"', field="type")
        data = get_object(body.get("data"), "data")
        message = _PushData(data)
        record = message.record(replayed_by=app.app_id)
        listen = message.addresses("listenAddress")
        is_reorg_resend = message.boolean("is_reorg_resend")
        message_id = body.get("id")
        if not isinstance(message_id, str) or not _SAFE_ID.fullmatch(message_id):
            # Pushes embed the id in pre-rendered JSON: only plain ids are kept, any
            # other gets a new uuid (the answer's ``messageId`` says which).
            message_id = None
        entry = await delivery.replay(app.app_id, record, listen, is_reorg_resend, message_id)
        result = {"processed": True, "txhash": record.tx_hash}
        if entry is not None:
            result["messageId"] = entry.message_id
        return json_response({"code": 0, "message": "ok", "data": result})

    return blueprint


class _PushData:
    """The ``data`` of a ``transaction`` message, read field by field (the inverse of
    :func:`._naming.push_data`): ``txTime`` in milliseconds; empty strings of
    optional fields, as pushes carry them, read as absent. Errors name the field."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        chain_id = get_chain_id(data, where="data.")
        chain_type = chain_type_param(data, chain_id=chain_id, where="data.")
        assert chain_type is not None and chain_id is not None
        self.chain_id: int = chain_id
        self.chain_type: str = chain_type

    def record(self, *, replayed_by: str) -> TransactionRecord:
        d, w = self._data, "data."
        tx_time = get_int(d, "txTime", required=False, minimum=0, where=w)
        return TransactionRecord(
            chain_type=self.chain_type,
            chain_id=self.chain_id,
            tx_hash=tx_hash_param(self.chain_type, d.get("txhash"), "data.txhash"),
            height=get_int(d, "height", required=False, minimum=0, where=w),
            tx_time=None if tx_time is None else tx_time // 1000,
            sender=self._address(d, "sender", w),
            fee_payer=self._address(d, "fee_payer", w),
            receiver=self._address(d, "receiver", w),
            transfer_type=self._text(d, "transfer_type", w),
            amount=self._decimal(d, "amount", w),
            symbol=self._text(d, "symbol", w),
            decimals=self._decimals(d, w),
            tx_status=self._status(d, w),
            tx_fee=self._decimal(d, "txFee", w),
            gas_limit=self._decimal(d, "gasLimit", w),
            gas_used=self._decimal(d, "gasUsed", w),
            gas_price=self._decimal(d, "gasPrice", w),
            max_fee_per_gas=self._decimal(d, "max_fee_per_gas", w),
            max_priority_fee_per_gas=self._decimal(d, "max_priority_fee_per_gas", w),
            nonce=self._decimal(d, "nonce", w),
            method_id=self._method_id(d, w),
            method_call=self._text(d, "methodCall", w, max_length=4096),
            token_transfers=tuple(
                self._token_transfer(t, where) for where, t in self._items("tokenTransferDetails")
            ),
            from_details=tuple(self._input(i, where) for where, i in self._items("fromDetails")),
            to_details=tuple(self._output(o, where) for where, o in self._items("toDetails")),
            internal_transactions=tuple(
                self._internal(i, where) for where, i in self._items("internalTransactionDetails")
            ),
            removed=self.boolean("removed"),
            replayed_by=replayed_by,
        )

    def addresses(self, name: str) -> list[str]:
        values = get_list(self._data, name, required=False, max_items=_MAX_ITEMS, where="data.")
        return [
            address_param(self.chain_type, v, f"data.{name}[{i}]") for i, v in enumerate(values)
        ]

    def boolean(self, name: str) -> bool:
        return self._flag(self._data, name, "data.")

    def _items(self, name: str) -> list[tuple[str, Mapping[str, Any]]]:
        """``(where, item)`` of the array ``name``: each item's field prefix and object."""
        values = get_list(self._data, name, required=False, max_items=_MAX_ITEMS, where="data.")
        return [
            (f"data.{name}[{i}].", get_object(v, f"data.{name}[{i}]")) for i, v in enumerate(values)
        ]

    def _input(self, i: Mapping[str, Any], where: str) -> InputDetail:
        return InputDetail(
            address=self._address(i, "address", where),
            amount=self._decimal(i, "amount", where),
            is_contract=self._flag(i, "isContract", where),
            vin_index=self._decimal(i, "vinIndex", where),
            pre_vout_index=self._decimal(i, "preVoutIndex", where),
            ref_tx_hash=self._hash(i, "refTxHash", where),
        )

    def _output(self, o: Mapping[str, Any], where: str) -> OutputDetail:
        return OutputDetail(
            address=self._address(o, "address", where),
            amount=self._decimal(o, "amount", where),
            is_contract=self._flag(o, "isContract", where),
            vout_index=self._decimal(o, "voutIndex", where),
        )

    def _internal(self, i: Mapping[str, Any], where: str) -> InternalTransaction:
        return InternalTransaction(
            from_address=self._address(i, "from", where),
            to_address=self._address(i, "to", where),
            amount=self._decimal(i, "amount", where),
            tx_status=self._status(i, where),
            program_id=self._address(i, "programId", where),
            instr_index=get_int(i, "instrIndex", required=False, minimum=0, where=where),
            depth=get_int(i, "depth", required=False, minimum=0, where=where),
            instruction=self._text(i, "instruction", where, max_length=256),
            description=self._text(i, "description", where, max_length=1024),
        )

    def _token_transfer(self, t: Mapping[str, Any], where: str) -> TokenTransfer:
        return TokenTransfer(
            from_address=self._address(t, "from", where),
            to_address=self._address(t, "to", where),
            token_contract_address=self._address(t, "tokenContractAddress", where),
            symbol=self._text(t, "symbol", where),
            amount=self._decimal(t, "amount", where),
            decimals=self._decimals(t, where),
            is_from_contract=self._flag(t, "isFromContract", where),
            is_to_contract=self._flag(t, "isToContract", where),
            from_token_address=self._address(t, "fromTokenAddress", where),
            to_token_address=self._address(t, "toTokenAddress", where),
            mint=self._address(t, "mint", where),
            program_id=self._address(t, "programId", where),
        )

    def _text(
        self, obj: Mapping[str, Any], name: str, where: str, max_length: int = 64
    ) -> str | None:
        return get_str(obj, name, required=False, max_length=max_length, where=where) or None

    def _address(self, obj: Mapping[str, Any], name: str, where: str) -> str | None:
        value = obj.get(name)
        if value is None or value == "":
            return None
        return address_param(self.chain_type, value, where + name)

    def _hash(self, obj: Mapping[str, Any], name: str, where: str) -> str | None:
        value = obj.get(name)
        if value is None or value == "":
            return None
        return tx_hash_param(self.chain_type, value, where + name)

    def _decimal(self, obj: Mapping[str, Any], name: str, where: str) -> str | None:
        value = self._text(obj, name, where, max_length=78)
        if value is not None and not _DECIMAL.fullmatch(value):
            raise InvalidInputError(
                f"{where}{name} must be a decimal string of digits", field=where + name
            )
        return value

    def _decimals(self, obj: Mapping[str, Any], where: str) -> int | None:
        return get_int(obj, "decimals", required=False, minimum=0, maximum=255, where=where)

    def _status(self, obj: Mapping[str, Any], where: str) -> str | None:
        value = self._text(obj, "txStatus", where)
        if value is not None and value not in _TX_STATUSES:
            raise InvalidInputError(
                f"{where}txStatus must be one of {', '.join(_TX_STATUSES)}",
                field=where + "txStatus",
            )
        return value

    def _method_id(self, obj: Mapping[str, Any], where: str) -> str | None:
        value = self._text(obj, "methodId", where, max_length=128)
        if value is not None and chain_family(self.chain_type) == "evm":
            if not _EVM_METHOD_ID.fullmatch(value):
                raise InvalidInputError(
                    f"{where}methodId must be 0x and 8 hex digits", field=where + "methodId"
                )
            value = value.lower()
        return value

    def _flag(self, obj: Mapping[str, Any], name: str, where: str) -> bool:
        value = obj.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise InvalidInputError(f"{where}{name} must be true or false", field=where + name)
        return value

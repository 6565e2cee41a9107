"""The address-monitoring wire namings of a :class:`~rtserver.records.TransactionRecord`.

The spec shows the same transaction under five namings; each is built here and nowhere
else (reading a client's push message back, for replays, is input validation and lives
in :mod:`.status`):

* :func:`transaction_detail`: ``TransactionDetail`` (snake_case, seconds) for
  ``/transfers/query``, ``/multi-chain`` and ``/details``, plus the internal cursor ``id``;
* :func:`v2_detail`: the mixed naming of ``GET /transfers/detail`` and ``getTxHash``
  (``txhash``, camelCase, ``txTime`` in milliseconds);
* :func:`push_data`: the ``data`` of a WebSocket ``transaction`` push (V2 naming, empty
  detail arrays as null, ``listenAddress``, ``is_reorg_resend``);
* :func:`transaction_result`: ``TransactionResult`` of webhook bodies (camelCase
  throughout, seconds);
* :func:`pool_item`: ``TransactionResult`` as the spec's pool trades example shows it: an
  ERC-20 transfer's ``receiver`` is the token's recipient, ``transferType`` is
  capitalised.

Every function returns a fresh JSON-ready dict; the keys and their order are the wire's.
Which ``receiver`` each naming carries is listed in docs/address-monitoring.md. Amounts
are decimal strings of base units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rtserver.addresses import normalize_address
from rtserver.records import (
    InputDetail,
    InternalTransaction,
    OutputDetail,
    TokenTransfer,
    TransactionRecord,
)

# -- TransactionDetail (snake_case) -----------------------------------------------------


def transaction_detail(record: TransactionRecord) -> dict[str, Any]:
    """``TransactionDetail`` of the list APIs, with the cursor ``id`` first.

    ``removed`` appears (as true) only on a record a reorg removed.
    """
    r = record
    body: dict[str, Any] = {
        "id": r.id,
        "chain_type": r.chain_type,
        "chain_id": r.chain_id,
        "tx_hash": r.tx_hash,
        "height": r.height,
        "tx_time": r.tx_time,
        "tx_version": r.tx_version,
        "sender": r.sender,
        "fee_payer": r.fee_payer,
        "receiver": r.receiver,
        "transfer_type": r.transfer_type,
        "amount": r.amount,
        "symbol": r.symbol,
        "decimals": r.decimals,
        "tx_status": r.tx_status,
        "tx_fee": r.tx_fee,
        "gas_limit": r.gas_limit,
        "gas_used": r.gas_used,
        "gas_price": r.gas_price,
        "max_fee_per_gas": r.max_fee_per_gas,
        "max_priority_fee_per_gas": r.max_priority_fee_per_gas,
        "nonce": r.nonce,
        "method_id": r.method_id,
        "method_call": r.method_call,
        "l1_origin_hash": r.l1_origin_hash,
        "token_transfers": [_snake_token(t) for t in r.token_transfers],
        "from_details": [_snake_input(d) for d in r.from_details],
        "to_details": [_snake_output(d) for d in r.to_details],
        "internal_transactions": [_snake_internal(i) for i in r.internal_transactions],
    }
    if r.removed:
        body["removed"] = True
    return body


def _snake_token(t: TokenTransfer) -> dict[str, Any]:
    return {
        "from_address": t.from_address,
        "to_address": t.to_address,
        "token_contract_address": t.token_contract_address,
        "symbol": t.symbol,
        "amount": t.amount,
        "decimals": t.decimals,
        "is_from_contract": t.is_from_contract,
        "is_to_contract": t.is_to_contract,
        "from_token_address": t.from_token_address,
        "to_token_address": t.to_token_address,
        "mint": t.mint,
        "program_id": t.program_id,
    }


def _snake_internal(i: InternalTransaction) -> dict[str, Any]:
    return {
        "from_address": i.from_address,
        "to_address": i.to_address,
        "amount": i.amount,
        "tx_status": i.tx_status,
        "program_id": i.program_id,
        "instr_index": i.instr_index,
        "depth": i.depth,
        "instruction": i.instruction,
        "description": i.description,
    }


def _snake_input(d: InputDetail) -> dict[str, Any]:
    return {
        "address": d.address,
        "amount": d.amount,
        "is_contract": d.is_contract,
        "vin_index": d.vin_index,
        "pre_vout_index": d.pre_vout_index,
        "ref_tx_hash": d.ref_tx_hash,
    }


def _snake_output(d: OutputDetail) -> dict[str, Any]:
    return {
        "address": d.address,
        "amount": d.amount,
        "is_contract": d.is_contract,
        "vout_index": d.vout_index,
    }


# -- V2 detail and push data (mixed naming) ---------------------------------------------


def v2_detail(record: TransactionRecord) -> dict[str, Any]:
    """``GET /transfers/detail`` and ``getTxHash`` data: mixed naming, ``txTime`` in ms.

    ``listenAddress`` is null and ``is_reorg_resend`` false: a detail answers a query,
    not a watch.
    """
    r = record
    return {
        "chain_type": r.chain_type,
        "chain_id": r.chain_id,
        "height": r.height,
        "txTime": None if r.tx_time is None else r.tx_time * 1000,
        "txhash": r.tx_hash,
        "sender": r.sender,
        "fee_payer": r.fee_payer,
        "receiver": r.receiver,
        "transfer_type": r.transfer_type,
        "gasLimit": r.gas_limit,
        "gasUsed": r.gas_used,
        "gasPrice": r.gas_price,
        "max_fee_per_gas": r.max_fee_per_gas,
        "max_priority_fee_per_gas": r.max_priority_fee_per_gas,
        "txFee": r.tx_fee,
        "nonce": r.nonce,
        "symbol": r.symbol,
        "decimals": r.decimals,
        "amount": r.amount,
        "txStatus": r.tx_status,
        "methodId": r.method_id or "",
        "methodCall": r.method_call or "",
        "l1OriginHash": r.l1_origin_hash or "",
        "fromDetails": [_camel_input(d) for d in r.from_details],
        "toDetails": [_camel_output(d) for d in r.to_details],
        "internalTransactionDetails": [_camel_internal(i) for i in r.internal_transactions],
        "tokenTransferDetails": [_camel_token(t) for t in r.token_transfers],
        "listenAddress": None,
        "is_reorg_resend": False,
    }


def push_data(
    record: TransactionRecord, listen_addresses: Sequence[str], is_reorg_resend: bool
) -> dict[str, Any]:
    """``data`` of a WebSocket ``transaction`` push: :func:`v2_detail` without
    ``l1OriginHash``, empty internal/token detail arrays as null, the watched addresses
    the record touched as ``listenAddress``, and ``removed: true`` on a record a reorg
    removed."""
    body = v2_detail(record)
    del body["l1OriginHash"]
    body["internalTransactionDetails"] = body["internalTransactionDetails"] or None
    body["tokenTransferDetails"] = body["tokenTransferDetails"] or None
    body["listenAddress"] = list(listen_addresses)
    body["is_reorg_resend"] = is_reorg_resend
    if record.removed:
        body["removed"] = True
    return body


# -- TransactionResult (camelCase) ------------------------------------------------------


def transaction_result(record: TransactionRecord) -> dict[str, Any]:
    """``TransactionResult`` of webhook bodies: camelCase, ``txTime`` in seconds.

    Undefined optional fields (``txVersion``, ``l1OriginHash``) are omitted; ``removed``
    appears (as true) only on a record a reorg removed.
    """
    r = record
    body: dict[str, Any] = {
        "chainType": r.chain_type,
        "chainId": r.chain_id,
        "height": r.height,
        "txTime": r.tx_time,
        "txHash": r.tx_hash,
        "sender": r.sender,
        "feePayer": r.fee_payer,
        "receiver": r.receiver,
        "transferType": r.transfer_type,
        "gasLimit": r.gas_limit,
        "gasUsed": r.gas_used,
        "gasPrice": r.gas_price,
        "maxFeePerGas": r.max_fee_per_gas or "",
        "maxPriorityFeePerGas": r.max_priority_fee_per_gas or "",
        "txFee": r.tx_fee,
        "nonce": r.nonce,
        "symbol": r.symbol,
        "decimals": r.decimals,
        "amount": r.amount,
        "txStatus": r.tx_status,
        "methodId": r.method_id or "",
        "methodCall": r.method_call or "",
        "fromDetails": [_camel_input(d) for d in r.from_details],
        "toDetails": [_camel_output(d) for d in r.to_details],
        "internalTransactionDetails": [_camel_internal(i) for i in r.internal_transactions],
        "tokenTransferDetails": [_result_token(t) for t in r.token_transfers],
    }
    if r.tx_version is not None:
        body["txVersion"] = r.tx_version
    if r.l1_origin_hash:
        body["l1OriginHash"] = r.l1_origin_hash
    if r.removed:
        body["removed"] = True
    return body


def pool_item(record: TransactionRecord) -> dict[str, Any]:
    """A pool's recent trade: :func:`transaction_result` as the spec's pool example shows it.

    The example is a token ``transfer`` to the pool: ``receiver`` is the pool (the
    token's recipient, where the other namings carry the transaction's ``to``, the token
    contract) and ``transferType`` is ``"Token"``. A transaction that called a token
    contract and moved that token is such a transfer; its ``receiver`` is that token
    transfer's recipient. Any other transaction keeps its ``to``.
    """
    body = transaction_result(record)
    if record.transfer_type:
        body["transferType"] = record.transfer_type[:1].upper() + record.transfer_type[1:]
    recipient = _token_recipient(record)
    if recipient is not None:
        body["receiver"] = recipient
    return body


def _token_recipient(record: TransactionRecord) -> str | None:
    """The recipient of the token the transaction called, if it called a token."""
    if not record.receiver:
        return None
    called = normalize_address(record.chain_type, record.receiver)
    for t in record.token_transfers:
        contract = t.token_contract_address
        if contract and t.to_address and normalize_address(record.chain_type, contract) == called:
            return t.to_address
    return None


def _result_token(t: TokenTransfer) -> dict[str, Any]:
    # The TransactionResult naming of a token transfer carries only these eight fields.
    return {
        "from": t.from_address,
        "to": t.to_address,
        "isFromContract": t.is_from_contract,
        "isToContract": t.is_to_contract,
        "tokenContractAddress": t.token_contract_address,
        "symbol": t.symbol,
        "amount": t.amount,
        "decimals": t.decimals,
    }


# -- detail items in camelCase (V2, push, TransactionResult) ----------------------------


def _camel_token(t: TokenTransfer) -> dict[str, Any]:
    return {
        "from": t.from_address,
        "to": t.to_address,
        "isFromContract": t.is_from_contract,
        "isToContract": t.is_to_contract,
        "tokenContractAddress": t.token_contract_address,
        "symbol": t.symbol,
        "amount": t.amount,
        "decimals": t.decimals,
        "fromTokenAddress": t.from_token_address or "",
        "toTokenAddress": t.to_token_address or "",
        "mint": t.mint or "",
        "programId": t.program_id or "",
    }


def _camel_internal(i: InternalTransaction) -> dict[str, Any]:
    return {
        "from": i.from_address,
        "to": i.to_address,
        "amount": i.amount,
        "txStatus": i.tx_status,
        "programId": i.program_id,
        "instrIndex": i.instr_index,
        "depth": i.depth,
        "instruction": i.instruction,
        "description": i.description,
    }


def _camel_input(d: InputDetail) -> dict[str, Any]:
    return {
        "address": d.address,
        "amount": d.amount,
        "isContract": d.is_contract,
        "vinIndex": d.vin_index,
        "preVoutIndex": d.pre_vout_index,
        "refTxHash": d.ref_tx_hash,
    }


def _camel_output(d: OutputDetail) -> dict[str, Any]:
    return {
        "address": d.address,
        "amount": d.amount,
        "isContract": d.is_contract,
        "voutIndex": d.vout_index,
    }

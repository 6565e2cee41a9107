"""The normalized transaction record and its five wire namings.

One :class:`TransactionRecord` per ``(chain_type, chain_id, tx_hash)``, whatever the
chain. The address-monitoring spec shows the same data under five namings, all derived
here and nowhere else (parsing a client's push message back, for replays, is input
validation and belongs to the protocol):

* :meth:`TransactionRecord.to_detail`: ``TransactionDetail`` (snake_case, seconds) for
  ``/transfers/query``, ``/multi-chain`` and ``/details``, plus the internal cursor ``id``;
* :meth:`TransactionRecord.to_v2`: the mixed naming of ``GET /transfers/detail``
  (``txhash``, camelCase, ``txTime`` in milliseconds);
* :meth:`TransactionRecord.to_push`: the ``data`` of a WebSocket ``transaction`` push
  (V2 naming, empty detail arrays as null, ``listenAddress``, ``is_reorg_resend``);
* :meth:`TransactionRecord.to_result`: ``TransactionResult`` of webhooks (camelCase
  throughout, seconds);
* :meth:`TransactionRecord.to_pool_item`: ``TransactionResult`` as the spec's pool
  trades example shows it: an ERC-20 transfer's ``receiver`` is the token's recipient,
  ``transferType`` is capitalised.

Which ``receiver`` each naming carries is listed in docs/address-monitoring.md. Amounts
are decimal strings of base units. EVM addresses are lowercase everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rtserver.addresses import normalize_address


@dataclass(frozen=True)
class TokenTransfer:
    from_address: str | None = None
    to_address: str | None = None
    token_contract_address: str | None = None
    symbol: str | None = None
    amount: str | None = None
    decimals: int | None = None
    is_from_contract: bool = False
    is_to_contract: bool = False
    from_token_address: str | None = None
    to_token_address: str | None = None
    mint: str | None = None
    program_id: str | None = None

    def to_camel(self) -> dict[str, Any]:
        return {
            "from": self.from_address,
            "to": self.to_address,
            "isFromContract": self.is_from_contract,
            "isToContract": self.is_to_contract,
            "tokenContractAddress": self.token_contract_address,
            "symbol": self.symbol,
            "amount": self.amount,
            "decimals": self.decimals,
            "fromTokenAddress": self.from_token_address or "",
            "toTokenAddress": self.to_token_address or "",
            "mint": self.mint or "",
            "programId": self.program_id or "",
        }


@dataclass(frozen=True)
class InternalTransaction:
    from_address: str | None = None
    to_address: str | None = None
    amount: str | None = None
    tx_status: str | None = None
    program_id: str | None = None
    instr_index: int | None = None
    depth: int | None = None
    instruction: str | None = None
    description: str | None = None

    def to_camel(self) -> dict[str, Any]:
        return {
            "from": self.from_address,
            "to": self.to_address,
            "amount": self.amount,
            "txStatus": self.tx_status,
            "programId": self.program_id,
            "instrIndex": self.instr_index,
            "depth": self.depth,
            "instruction": self.instruction,
            "description": self.description,
        }


@dataclass(frozen=True)
class InputDetail:
    """A UTXO input (``from_details``)."""

    address: str | None = None
    amount: str | None = None
    is_contract: bool = False
    vin_index: str | None = None
    pre_vout_index: str | None = None
    ref_tx_hash: str | None = None

    def to_camel(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "amount": self.amount,
            "isContract": self.is_contract,
            "vinIndex": self.vin_index,
            "preVoutIndex": self.pre_vout_index,
            "refTxHash": self.ref_tx_hash,
        }


@dataclass(frozen=True)
class OutputDetail:
    """A UTXO output (``to_details``)."""

    address: str | None = None
    amount: str | None = None
    is_contract: bool = False
    vout_index: str | None = None

    def to_camel(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "amount": self.amount,
            "isContract": self.is_contract,
            "voutIndex": self.vout_index,
        }


@dataclass(frozen=True)
class TransactionRecord:
    chain_type: str
    chain_id: int
    tx_hash: str
    height: int | None = None
    tx_time: int | None = None
    tx_version: int | None = None
    sender: str | None = None
    fee_payer: str | None = None
    receiver: str | None = None
    transfer_type: str | None = None
    amount: str | None = None
    symbol: str | None = None
    decimals: int | None = None
    tx_status: str | None = None
    tx_fee: str | None = None
    gas_limit: str | None = None
    gas_used: str | None = None
    gas_price: str | None = None
    max_fee_per_gas: str | None = None
    max_priority_fee_per_gas: str | None = None
    nonce: str | None = None
    method_id: str | None = None
    method_call: str | None = None
    l1_origin_hash: str | None = None
    token_transfers: tuple[TokenTransfer, ...] = ()
    from_details: tuple[InputDetail, ...] = ()
    to_details: tuple[OutputDetail, ...] = ()
    internal_transactions: tuple[InternalTransaction, ...] = ()
    #: Hash of the block that holds it (not a wire field; reorg bookkeeping).
    block_hash: str | None = field(default=None, compare=False)
    #: The database's cursor id, once stored.
    id: int | None = field(default=None, compare=False)
    #: True when a reorg orphaned the block that held it and no canonical block has it.
    removed: bool = field(default=False, compare=False)
    #: The app whose replay (``POST /transaction/ws/replay``) supplied it; None for a
    #: record from the chain. A replayed record is that app's own, stored apart.
    replayed_by: str | None = field(default=None, compare=False)

    # -- namings ---------------------------------------------------------------------

    def to_detail(self) -> dict[str, Any]:
        """``TransactionDetail`` of the list APIs (with the cursor ``id``)."""
        body: dict[str, Any] = {"id": self.id}
        for f in fields(self):
            if f.name in _NOT_WIRE:
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [asdict(item) for item in value]
            body[f.name] = value
        if self.removed:
            body["removed"] = True
        return body

    def to_v2(self) -> dict[str, Any]:
        """``GET /transfers/detail`` data (mixed naming, ``txTime`` in ms)."""
        return {
            "chain_type": self.chain_type,
            "chain_id": self.chain_id,
            "height": self.height,
            "txTime": _ms(self.tx_time),
            "txhash": self.tx_hash,
            "sender": self.sender,
            "fee_payer": self.fee_payer,
            "receiver": self.receiver,
            "transfer_type": self.transfer_type,
            "gasLimit": self.gas_limit,
            "gasUsed": self.gas_used,
            "gasPrice": self.gas_price,
            "max_fee_per_gas": self.max_fee_per_gas,
            "max_priority_fee_per_gas": self.max_priority_fee_per_gas,
            "txFee": self.tx_fee,
            "nonce": self.nonce,
            "symbol": self.symbol,
            "decimals": self.decimals,
            "amount": self.amount,
            "txStatus": self.tx_status,
            "methodId": self.method_id or "",
            "methodCall": self.method_call or "",
            "l1OriginHash": self.l1_origin_hash or "",
            "fromDetails": [d.to_camel() for d in self.from_details],
            "toDetails": [d.to_camel() for d in self.to_details],
            "internalTransactionDetails": [d.to_camel() for d in self.internal_transactions],
            "tokenTransferDetails": [d.to_camel() for d in self.token_transfers],
            "listenAddress": None,
            "is_reorg_resend": False,
        }

    def to_push(self, listen_addresses: list[str], is_reorg_resend: bool) -> dict[str, Any]:
        """``data`` of a WebSocket ``transaction`` push."""
        body = self.to_v2()
        del body["l1OriginHash"]
        body["internalTransactionDetails"] = body["internalTransactionDetails"] or None
        body["tokenTransferDetails"] = body["tokenTransferDetails"] or None
        body["listenAddress"] = list(listen_addresses)
        body["is_reorg_resend"] = is_reorg_resend
        if self.removed:
            body["removed"] = True
        return body

    def to_result(self) -> dict[str, Any]:
        """``TransactionResult`` of webhook bodies and pool trades (camelCase, seconds)."""
        body: dict[str, Any] = {
            "chainType": self.chain_type,
            "chainId": self.chain_id,
            "height": self.height,
            "txTime": self.tx_time,
            "txHash": self.tx_hash,
            "sender": self.sender,
            "feePayer": self.fee_payer,
            "receiver": self.receiver,
            "transferType": self.transfer_type,
            "gasLimit": self.gas_limit,
            "gasUsed": self.gas_used,
            "gasPrice": self.gas_price,
            "maxFeePerGas": self.max_fee_per_gas or "",
            "maxPriorityFeePerGas": self.max_priority_fee_per_gas or "",
            "txFee": self.tx_fee,
            "nonce": self.nonce,
            "symbol": self.symbol,
            "decimals": self.decimals,
            "amount": self.amount,
            "txStatus": self.tx_status,
            "methodId": self.method_id or "",
            "methodCall": self.method_call or "",
            "fromDetails": [d.to_camel() for d in self.from_details],
            "toDetails": [d.to_camel() for d in self.to_details],
            "internalTransactionDetails": [d.to_camel() for d in self.internal_transactions],
            "tokenTransferDetails": [_result_token(d) for d in self.token_transfers],
        }
        if self.tx_version is not None:
            body["txVersion"] = self.tx_version
        if self.l1_origin_hash:
            body["l1OriginHash"] = self.l1_origin_hash
        if self.removed:
            body["removed"] = True
        return body

    def to_pool_item(self) -> dict[str, Any]:
        """A pool's recent trade: :meth:`to_result` as the spec's pool example shows it.

        The example is a token ``transfer`` to the pool: ``receiver`` is the pool (the
        token's recipient, where the other namings carry the transaction's ``to``, the
        token contract) and ``transferType`` is ``"Token"``. A transaction that called a
        token contract and moved that token is such a transfer; its ``receiver`` is that
        token transfer's recipient. Any other transaction keeps its ``to``.
        """
        body = self.to_result()
        if self.transfer_type:
            body["transferType"] = self.transfer_type[:1].upper() + self.transfer_type[1:]
        recipient = self._token_recipient()
        if recipient is not None:
            body["receiver"] = recipient
        return body

    def _token_recipient(self) -> str | None:
        """The recipient of the token the transaction called, if it called a token."""
        if not self.receiver:
            return None
        called = normalize_address(self.chain_type, self.receiver)
        for t in self.token_transfers:
            contract = t.token_contract_address
            if contract and t.to_address and normalize_address(self.chain_type, contract) == called:
                return t.to_address
        return None

    # -- storage -------------------------------------------------------------------

    def to_storage(self) -> dict[str, Any]:
        """The JSON stored in the database (list naming, without id/removed)."""
        body = self.to_detail()
        del body["id"]
        body.pop("removed", None)
        body["block_hash"] = self.block_hash
        return body

    @classmethod
    def from_storage(
        cls, body: dict[str, Any], *, id: int | None = None, removed: bool = False
    ) -> TransactionRecord:
        values = {k: v for k, v in body.items() if k in _SCALARS}
        return cls(
            **values,
            token_transfers=tuple(TokenTransfer(**t) for t in body.get("token_transfers", ())),
            from_details=tuple(InputDetail(**d) for d in body.get("from_details", ())),
            to_details=tuple(OutputDetail(**d) for d in body.get("to_details", ())),
            internal_transactions=tuple(
                InternalTransaction(**i) for i in body.get("internal_transactions", ())
            ),
            id=id,
            removed=removed,
        )

    def addresses(self) -> set[str]:
        """Every address the transaction touches (sender, receiver, token and internal parties)."""
        found = {self.sender, self.receiver, self.fee_payer}
        for t in self.token_transfers:
            found.update((t.from_address, t.to_address))
        for i in self.internal_transactions:
            found.update((i.from_address, i.to_address))
        for d in self.from_details:
            found.add(d.address)
        for o in self.to_details:
            found.add(o.address)
        found.discard(None)
        found.discard("")
        return found  # type: ignore[return-value]


_NOT_WIRE = {"block_hash", "id", "removed", "replayed_by"}
_DETAIL_LISTS = {"token_transfers", "from_details", "to_details", "internal_transactions"}
_SCALARS = {
    f.name
    for f in fields(TransactionRecord)
    if f.name not in _DETAIL_LISTS | {"id", "removed", "replayed_by"}
}


def _ms(seconds: int | None) -> int | None:
    return None if seconds is None else seconds * 1000


def _result_token(t: TokenTransfer) -> dict[str, Any]:
    # The webhook/pool naming of a token transfer carries only these eight fields.
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

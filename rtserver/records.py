"""The normalized transaction record: the domain type every concern shares.

One :class:`TransactionRecord` per ``(chain_type, chain_id, tx_hash)``, whatever the
chain, with its token transfers, UTXO inputs/outputs and internal transactions. It
knows one form of its own, the storage form (:meth:`TransactionRecord.to_storage`), and
no wire naming: each protocol names the fields its own way in its own package (the
address-monitoring namings are in ``rtserver/protocols/address_monitoring/_naming.py``).
Amounts are decimal strings of base units. EVM addresses are lowercase everywhere.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any


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


@dataclass(frozen=True)
class InputDetail:
    """A UTXO input (``from_details``)."""

    address: str | None = None
    amount: str | None = None
    is_contract: bool = False
    vin_index: str | None = None
    pre_vout_index: str | None = None
    ref_tx_hash: str | None = None


@dataclass(frozen=True)
class OutputDetail:
    """A UTXO output (``to_details``)."""

    address: str | None = None
    amount: str | None = None
    is_contract: bool = False
    vout_index: str | None = None


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

    # -- storage -------------------------------------------------------------------

    def to_storage(self) -> dict[str, Any]:
        """The JSON body the database keeps: every field but ``id``, ``removed`` and
        ``replayed_by`` (columns and context of the row), detail items as dicts of their
        fields; :meth:`from_storage` reads it back.

        A field that holds its default (None, False, no items) is left out, in records
        and in their detail items alike: most of a transfer's fields are empty, and their
        names were most of what a stored body held. The same record always gives the
        same keys in the same order: the store compares stored text to tell a changed
        record from a repeated one.
        """
        # Field names and defaults read once per class, not per call: this runs for every
        # record the watcher stores (``dataclasses.fields`` and ``asdict`` were most of it).
        body: dict[str, Any] = {}
        for name, default in _BODY_FIELDS:
            value = getattr(self, name)
            if name in _DETAIL_LISTS:
                if value:
                    body[name] = [_item_storage(item) for item in value]
            elif value is not default:
                body[name] = value
        return body

    @classmethod
    def from_storage(
        cls, body: dict[str, Any], *, id: int | None = None, removed: bool = False
    ) -> TransactionRecord:
        values = {k: v for k, v in body.items() if k in _SCALARS}
        # Only the lists a body has: most records have one kind of detail or none.
        for name, item_type in _DETAIL_TYPES:
            items = body.get(name)
            if items:
                values[name] = tuple(item_type(**item) for item in items)
        if not values.keys() >= _REQUIRED:
            return cls(**values, id=id, removed=removed)  # raises, naming what is missing
        # Every field set at once, as ``__init__`` would (it has no checks to skip): a
        # frozen dataclass's ``__init__`` sets its 33 fields one ``object.__setattr__``
        # at a time, most of the cost of reading a page of records.
        record = object.__new__(cls)
        state = record.__dict__
        state.update(_RECORD_DEFAULTS)
        state.update(values)
        state["id"] = id
        state["removed"] = removed
        return record

    def with_id(self, id: int) -> TransactionRecord:
        """This record as stored under ``id`` (``dataclasses.replace(self, id=id)``,
        without re-running ``__init__`` over the fields: 14 µs of a block's 50 per record)."""
        record = object.__new__(type(self))
        state = record.__dict__
        state.update(self.__dict__)
        state["id"] = id
        return record

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


#: Row columns and context, not part of the stored body.
_OUTSIDE_BODY = {"id", "removed", "replayed_by"}
_DETAIL_TYPES: tuple[tuple[str, type], ...] = (
    ("token_transfers", TokenTransfer),
    ("from_details", InputDetail),
    ("to_details", OutputDetail),
    ("internal_transactions", InternalTransaction),
)
_DETAIL_LISTS = {name for name, _ in _DETAIL_TYPES}
_SCALARS = {
    f.name for f in fields(TransactionRecord) if f.name not in _DETAIL_LISTS | _OUTSIDE_BODY
}
#: Every field of a record at its default, and the fields that have none.
_RECORD_DEFAULTS = {
    f.name: f.default for f in fields(TransactionRecord) if f.default is not MISSING
}
_REQUIRED = {f.name for f in fields(TransactionRecord)} - _RECORD_DEFAULTS.keys()
#: ``(name, default)`` of each stored field; identity with the default (None or False)
#: leaves a field out, so a 0 where the default is False is kept.
_BODY_FIELDS = tuple(
    (f.name, f.default) for f in fields(TransactionRecord) if f.name not in _OUTSIDE_BODY
)
_ITEM_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {
    cls: tuple((f.name, f.default) for f in fields(cls))
    for cls in (TokenTransfer, InputDetail, OutputDetail, InternalTransaction)
}


def _item_storage(item: object) -> dict[str, Any]:
    """A detail item's stored form: its fields that do not hold their default."""
    stored = {}
    for name, default in _ITEM_FIELDS[type(item)]:
        value = getattr(item, name)
        if value is not default:
            stored[name] = value
    return stored

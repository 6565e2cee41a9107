"""The packed form of a chain record: its row's body, and what its index rows carry.

A walk of an address's records reads rows of one index, neighbours on disk, instead of
one ``transactions`` row per record (at ten million records, a random page read each).
So every row of ``transaction_addresses`` and ``transaction_token_parties`` holds the
whole record, packed, as its ``transactions`` row does: its storage dict
(:meth:`TransactionRecord.to_storage`) as compact JSON, deflated against a fixed
dictionary of the names and values every record repeats. A transfer with real hashes
packs to about 230 bytes (580 as text).

The first byte names the format. Packed bytes are stored: the dictionary and the
deflate settings of format 1 never change; a new form gets a new first byte, and
:func:`unpack_storage` keeps reading every form it ever wrote.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

#: Names and values most stored records hold, in the order ``to_storage`` writes them.
#: Deflate finds a record's repeats of them here (its window reaches this text).
_DICTIONARY_1 = (
    b'{"tx_version":"","sender":"0x","fee_payer":"0x","receiver":"0x","amount":"",'
    b'"symbol":"ETH","decimals":18,"tx_status":"success","tx_fee":"","gas_limit":"",'
    b'"gas_used":"21000","gas_price":"","max_fee_per_gas":"","max_priority_fee_per_gas":"",'
    b'"nonce":"","method_id":"0xa9059cbb","method_call":"transfer(address,uint256)",'
    b'"l1_origin_hash":"0x","token_transfers":[{"from_address":"0x","to_address":"0x",'
    b'"token_contract_address":"0x","symbol":"","amount":"","decimals":18,'
    b'"is_from_contract":true,"is_to_contract":true}],"internal_transactions":'
    b'[{"from_address":"0x","to_address":"0x","amount":""}],"chain_type":"ethereum",'
    b'"chain_id":1,"tx_hash":"0x","height":,"tx_time":,"block_hash":"0x",'
    b'"transfer_type":"native","transfer_type":"token"}'
)
_FORMAT_1 = b"\x01"
#: A 4 KiB window holds the dictionary and a record; memory level 4 keeps the
#: compressor's setup (per record) to a few microseconds. Both are part of format 1.
_WBITS_1 = -12
_MEMLEVEL_1 = 4
_LEVEL_1 = 6

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def pack_storage(storage: dict[str, Any]) -> bytes:
    """``storage`` packed: the same dict packs to the same bytes with the same zlib (the
    store compares them to tell a repeated record; with another zlib build it compares
    the records instead, and any zlib reads what any other wrote)."""
    deflate = zlib.compressobj(_LEVEL_1, zlib.DEFLATED, _WBITS_1, _MEMLEVEL_1, zdict=_DICTIONARY_1)
    return _FORMAT_1 + deflate.compress(_encode(storage).encode()) + deflate.flush()


def unpack_storage(packed: bytes) -> dict[str, Any]:
    """The storage dict :func:`pack_storage` packed."""
    if packed[:1] != _FORMAT_1:
        raise ValueError(f"unknown packed record format {packed[:1]!r}")
    inflate = zlib.decompressobj(_WBITS_1, zdict=_DICTIONARY_1)
    text = inflate.decompress(packed[1:]) + inflate.flush()
    if not inflate.eof:
        raise ValueError("truncated packed record")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a packed record is not an object")
    return value


#: Fields a chain record's ``transactions`` row holds in columns of its own. Bodies of
#: the text forms (before rows were packed) left them out or repeated them; the columns
#: win either way.
ROW_COLUMNS = (
    "chain_type",
    "chain_id",
    "tx_hash",
    "height",
    "tx_time",
    "block_hash",
    "transfer_type",
)


def storage_of_row(body: str | bytes, columns: Sequence[Any]) -> dict[str, Any]:
    """The storage dict of a ``transactions`` (or ``replayed_transactions``) row: its
    body, packed or of a text form, with the values of ``columns`` (the first ones of
    :data:`ROW_COLUMNS`, in that order) merged in."""
    storage: dict[str, Any] = unpack_storage(body) if isinstance(body, bytes) else json.loads(body)
    storage.update(zip(ROW_COLUMNS, columns, strict=False))
    return storage


def pack_row(body: str | bytes, *columns: Any) -> bytes:
    """A ``transactions`` row packed (the migration that added the packed copies calls
    this from SQL for every stored row)."""
    return pack_storage(storage_of_row(body, columns))

"""Chain families and the one normal form of an address per family.

Addresses are validated on input (:func:`validate_address`) and compared and stored in
normal form: EVM hex lowercase (EIP-55 checksums
are checked on input by the API layer, not kept); other families are case-sensitive
(Base58, Bech32 is lowercased by definition) and kept as given, trimmed.
"""

from __future__ import annotations

from typing import Literal

import base58
from eth_utils.address import to_checksum_address as _eip55

from rtserver.exceptions import InvalidInputError

Family = Literal["evm", "tron", "solana", "bitcoin"]

EVM_CHAIN_TYPES = frozenset(
    {
        "evm",
        "ethereum",
        "eth",
        "bsc",
        "gnosis",
        "arbitrum",
        "optimism",
        "base",
        "polygon",
        "avalanche",
        "linea",
        "scroll",
        "zksync",
        "sepolia",
        "holesky",
        "anvil",
    }
)
_OTHER = {"tron": "tron", "solana": "solana", "bitcoin": "bitcoin", "btc": "bitcoin"}


def chain_family(chain_type: str) -> Family | None:
    """The address family of ``chain_type`` (lowercase), or None for an unknown type."""
    if chain_type in EVM_CHAIN_TYPES:
        return "evm"
    return _OTHER.get(chain_type)  # type: ignore[return-value]


def normalize_address(chain_type: str, address: str) -> str:
    """The normal form used for storage and matching (no validation: see the API layer)."""
    address = address.strip()
    family = chain_family(chain_type)
    if family == "evm":
        return address.lower()
    if family == "bitcoin" and address.lower().startswith(("bc1", "tb1", "bcrt1")):
        return address.lower()
    return address


# -- validation ----------------------------------------------------------------------------

#: Base58Check version bytes of Bitcoin P2PKH/P2SH addresses (mainnet and testnets).
_BITCOIN_VERSIONS = {0x00, 0x05, 0x6F, 0xC4}
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_CONST, _BECH32M_CONST = 1, 0x2BC830A3
_BITCOIN_HRPS = {"bc", "tb", "bcrt"}
_TRON_VERSION = 0x41
#: Longest address text looked at (Bech32 is at most 90 characters).
MAX_ADDRESS_LENGTH = 128


def validate_address(chain_type: str, address: object) -> str:
    """``address`` in normal form, or :class:`InvalidInputError` saying what is wrong.

    EVM: ``0x`` + 40 hex digits; all-lowercase and all-uppercase are accepted as they
    are, mixed case must be a correct EIP-55 checksum. Tron: Base58Check with version
    byte 0x41 (``T…``). Solana: Base58 of 32 bytes. Bitcoin: Base58Check P2PKH/P2SH or
    Bech32/Bech32m segwit (mainnet, testnet, regtest).
    """
    if not isinstance(address, str):
        raise InvalidInputError("address must be a string", field="address")
    text = address.strip()
    if not text:
        raise InvalidInputError("address must not be empty", field="address")
    if len(text) > MAX_ADDRESS_LENGTH:
        raise InvalidInputError(
            f"address is longer than {MAX_ADDRESS_LENGTH} characters", field="address"
        )
    family = chain_family(chain_type)
    checks = {"evm": _is_evm, "tron": _is_tron, "solana": _is_solana, "bitcoin": _is_bitcoin}
    if family is None:
        raise InvalidInputError(f"unknown chain_type {chain_type!r}", field="chain_type")
    problem = checks[family](text)
    if problem:
        raise InvalidInputError(
            f"invalid {chain_type} address {text!r}: {problem}", field="address"
        )
    return normalize_address(chain_type, text)


def to_checksum_address(address: str) -> str:
    """The EIP-55 mixed-case form of a 0x-prefixed 40-hex-digit address."""
    return str(_eip55(address))


def _is_evm(text: str) -> str | None:
    if len(text) != 42 or not text.startswith(("0x", "0X")):
        return "expected 0x followed by 40 hex digits"
    digits = text[2:]
    if any(c not in "0123456789abcdefABCDEF" for c in digits):
        return "expected 0x followed by 40 hex digits"
    if digits.islower() or digits.isupper() or digits.isdigit():
        return None
    if to_checksum_address(text) != "0x" + digits:
        return "wrong EIP-55 checksum"
    return None


def _is_tron(text: str) -> str | None:
    payload = _b58check_decode(text)
    if payload is None or len(payload) != 21 or payload[0] != _TRON_VERSION:
        return "expected a Base58Check address starting with T"
    return None


def _is_solana(text: str) -> str | None:
    raw = _b58decode(text)
    if raw is None or len(raw) != 32:
        return "expected Base58 of a 32-byte public key"
    return None


def _is_bitcoin(text: str) -> str | None:
    if text.lower().startswith(tuple(h + "1" for h in _BITCOIN_HRPS)):
        return _bech32_problem(text)
    payload = _b58check_decode(text)
    if payload is None or len(payload) != 21 or payload[0] not in _BITCOIN_VERSIONS:
        return "expected a P2PKH, P2SH (Base58Check) or Bech32 address"
    return None


def _b58decode(text: str) -> bytes | None:
    try:
        return base58.b58decode(text)
    except ValueError:  # a character outside the alphabet
        return None


def _b58check_decode(text: str) -> bytes | None:
    try:
        return base58.b58decode_check(text)
    except ValueError:  # outside the alphabet, or a wrong checksum
        return None


# Bech32 stays hand-written: the PyPI ``bech32`` package (1.2.0, the reference code)
# knows only BIP-173, so it refuses every Taproot (witness v1, Bech32m, BIP-350)
# address; no maintained small package does both.


def _bech32_polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk


def _bech32_problem(text: str) -> str | None:
    """BIP-173/BIP-350 segwit address check (witness v0 Bech32, v1+ Bech32m)."""
    if text.lower() != text and text.upper() != text:
        return "mixed case in a Bech32 address"
    text = text.lower()
    hrp, _, data_part = text.rpartition("1")
    if hrp not in _BITCOIN_HRPS or len(data_part) < 7 or len(text) > 90:
        return "malformed Bech32 address"
    if any(c not in _BECH32_CHARSET for c in data_part):
        return "invalid Bech32 character"
    data = [_BECH32_CHARSET.index(c) for c in data_part]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    const = _bech32_polymod(expanded + data)
    version = data[0]
    if version > 16 or const != (_BECH32_CONST if version == 0 else _BECH32M_CONST):
        return "wrong Bech32 checksum"
    program = _convert_bits(data[1:-6])
    if program is None or not 2 <= len(program) <= 40:
        return "malformed witness program"
    if version == 0 and len(program) not in (20, 32):
        return "witness v0 program must be 20 or 32 bytes"
    return None


def _convert_bits(data: list[int]) -> bytes | None:
    acc = bits = 0
    out = bytearray()
    for value in data:
        acc = (acc << 5) | value
        bits += 5
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc << (8 - bits)) & 0xFF:
        return None
    return bytes(out)


def detect_and_normalize(address: str) -> str | None:
    """Normal form of an address of unknown chain type (cross-chain queries), or None.

    EVM hex is recognised by shape and lowercased; Bech32 is lowercased; any other
    valid Tron, Solana or Bitcoin address is kept as given.
    """
    text = address.strip()
    if len(text) > MAX_ADDRESS_LENGTH:
        return None
    if _is_evm(text) is None:
        return text.lower()
    for family, check in (("bitcoin", _is_bitcoin), ("tron", _is_tron), ("solana", _is_solana)):
        if check(text) is None:
            return normalize_address(family, text)
    return None

"""Chain families and the one normal form of an address per family.

Addresses are compared and stored in normal form: EVM hex lowercase (EIP-55 checksums
are checked on input by the API layer, not kept); other families are case-sensitive
(Base58, Bech32 is lowercased by definition) and kept as given, trimmed.
"""

from __future__ import annotations

from typing import Literal

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

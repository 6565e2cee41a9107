"""Address checks and ERC-20 log decoding, done by maintained libraries (eth-utils, base58,
bech32, eth-abi): the published test vectors pass and their invalid cases are refused."""

from __future__ import annotations

import pytest

from rtserver.addresses import to_checksum_address, validate_address
from rtserver.chains.evm._adapter import TRANSFER_TOPIC, _token_transfers
from rtserver.exceptions import InvalidInputError

VALID = [
    ("ethereum", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),  # EIP-55 vectors
    ("ethereum", "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"),
    ("tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"),
    ("solana", "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"),
    ("bitcoin", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
    ("bitcoin", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"),
    ("bitcoin", "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"),  # BIP-173, witness v0
    # BIP-350: witness v1 (Taproot) and v16 are Bech32m.
    ("bitcoin", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"),
    ("bitcoin", "BC1SW50QGDZ25J"),
]
INVALID = [
    ("ethereum", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),  # one case flipped
    ("tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u"),  # Base58Check checksum
    ("tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj60"),  # 0 is not Base58
    ("solana", "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7"),  # not 32 bytes
    ("bitcoin", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"),
    # BIP-350 invalid vectors: v1 with a Bech32 (not m) checksum, v0 with Bech32m,
    # a v0 program of 16 bytes, mixed case.
    ("bitcoin", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd"),
    ("bitcoin", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh"),
    ("bitcoin", "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P"),
    ("bitcoin", "bc1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"),
]


@pytest.mark.parametrize(("chain_type", "address"), VALID)
def test_valid_addresses(chain_type: str, address: str) -> None:
    validate_address(chain_type, address)


@pytest.mark.parametrize(("chain_type", "address"), INVALID)
def test_invalid_addresses(chain_type: str, address: str) -> None:
    with pytest.raises(InvalidInputError):
        validate_address(chain_type, address)


def test_eip55_form() -> None:
    lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
    assert to_checksum_address(lower) == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def _log(topic1: str, topic2: str, data: str) -> dict[str, object]:
    return {"topics": [TRANSFER_TOPIC, topic1, topic2], "data": data, "address": "0x" + "cd" * 20}


def test_erc20_transfer_logs_are_decoded_and_malformed_ones_skipped() -> None:
    alice, bob = "0x" + "0" * 24 + "ab" * 20, "0x" + "0" * 24 + "12" * 20
    amount = "0x" + (10**18 + 7).to_bytes(32, "big").hex()
    (transfer,) = _token_transfers(
        {
            "logs": [
                _log(alice, bob, amount),
                _log("0x" + "11" * 32, bob, amount),  # an address word with dirty padding
                _log(alice, bob, "0x" + "00" * 64),  # ERC-721 style: not 32 bytes of data
                _log(alice, bob, "0xzz"),  # not hex
                {"topics": [TRANSFER_TOPIC, alice], "data": amount},  # two topics only
            ]
        }
    )
    assert transfer.from_address == "0x" + "ab" * 20
    assert transfer.to_address == "0x" + "12" * 20
    assert transfer.amount == str(10**18 + 7)
    assert transfer.token_contract_address == "0x" + "cd" * 20

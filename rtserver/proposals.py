"""Payment proposals: the domain type, its status machine and what pays one.

A :class:`Proposal` asks for ``amount`` base units of ``token`` (an ERC-20 contract, or
:data:`NATIVE` for the chain's own coin) at ``receiving_address`` on one chain
(``chain_type`` + ``chain_id``) before ``expires_at_ms``. It knows no wire naming (the
payment-status protocol names its fields) and no storage (``store/proposals.py``).

Status machine, forward only (:func:`may_move`)::

    pending ──► settled     a transfer that pays it was committed by the chain watcher
        ├─────► expired     its expiry time passed while pending
        └─────► cancelled   its app cancelled it

A terminal status never changes again; a transition is written once, in the same
transaction as the message that announces it (``rtserver.payments``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rtserver.records import TransactionRecord

#: The ``token`` of a proposal paid in the chain's native coin.
NATIVE = "native"
#: Largest amount a proposal may ask for: an EVM ``uint256``.
MAX_AMOUNT = 2**256 - 1


class ProposalStatus(enum.Enum):
    PENDING = "pending"
    SETTLED = "settled"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self is not ProposalStatus.PENDING


class AmountMatch(enum.Enum):
    """How a transfer's amount must compare with the proposal's."""

    EXACT = "exact"
    AT_LEAST = "at_least"


def may_move(current: ProposalStatus, new: ProposalStatus) -> bool:
    """Whether the status machine allows ``current`` → ``new`` (only out of pending)."""
    return current is ProposalStatus.PENDING and new is not ProposalStatus.PENDING


@dataclass(frozen=True)
class ProposalTerms:
    """What a merchant asks for, validated (addresses in normal form, amount > 0)."""

    chain_type: str
    chain_id: int
    #: An ERC-20 contract address (normal form), or :data:`NATIVE`.
    token: str
    amount: int
    amount_match: AmountMatch
    receiving_address: str
    expires_at_ms: int


@dataclass(frozen=True)
class Proposal:
    transaction_id: str
    app_id: str
    terms: ProposalTerms
    status: ProposalStatus
    #: The hash of the transaction that settled it (on the proposal's chain); None
    #: unless settled.
    settled_tx_hash: str | None
    created_at_ms: int
    #: When the status last changed (its creation, or its one transition).
    updated_at_ms: int

    def pays(self, record: TransactionRecord) -> bool:
        """Whether ``record`` settles this proposal: a successful, not reorged-away
        transaction on its chain, mined no later than its expiry, that moved enough of
        its token to its receiving address (:func:`paid_amount`)."""
        terms = self.terms
        if self.status is not ProposalStatus.PENDING or record.removed:
            return False
        if (record.chain_type, record.chain_id) != (terms.chain_type, terms.chain_id):
            return False
        if record.tx_status != "success":
            return False
        if record.tx_time is not None and record.tx_time * 1000 > terms.expires_at_ms:
            return False  # mined after the proposal expired (its timer had not run yet)
        paid = paid_amount(record, terms.receiving_address, terms.token)
        if terms.amount_match is AmountMatch.EXACT:
            return paid == terms.amount
        return paid >= terms.amount


def paid_amount(record: TransactionRecord, address: str, token: str) -> int:
    """How much of ``token`` ``record`` moved to ``address`` (normal form), base units.

    Native coin: the transaction's value when it is sent to the address, plus the
    successful internal transfers to it (recorded with ``trace_internal``). ERC-20: the
    sum of the token's ``Transfer`` logs to the address. Several transfers in one
    transaction add up; separate transactions never do.
    """
    total = 0
    if token == NATIVE:
        if record.receiver == address:
            total += _amount(record.amount)
        for internal in record.internal_transactions:
            if internal.to_address == address and internal.tx_status in (None, "success"):
                total += _amount(internal.amount)
        return total
    for transfer in record.token_transfers:
        if transfer.to_address == address and transfer.token_contract_address == token:
            total += _amount(transfer.amount)
    return total


def _amount(text: str | None) -> int:
    """A stored amount (decimal base units); 0 for what is missing or not a number."""
    if not text or not text.isdigit():
        return 0
    return int(text)

"""The payment-status wire (``../shared/spec/payment-status-ws.txt``): message shapes,
field names, the error shape, and the merchant webhook event.

Every name a client sees is spelled here and nowhere else. The document's messages:

* ``status``: ``{"type":"status","transactionId","status","suiTxDigest"}``, the current
  state (on connect, and when a proposal expires or is cancelled);
* ``settlement``: ``{"type":"settlement","transactionId","status":"settled","suiTxDigest"}``,
  when it settles;
* ``error``: ``{"type":"error","message"}``.

``suiTxDigest`` keeps the document's name for compatibility; it carries the hash of the
transaction that settled the proposal, on whichever chain settled it (``null`` until
then). The buyer's address is never in any message (the document's privacy rule).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rtserver.delivery import Frame
from rtserver.proposals import AmountMatch, Proposal, ProposalStatus

#: The wire format name of this protocol's stream frames (``Session.format``).
FORMAT = "payment-status"
#: The HTTP API's prefix (the document's polling URL lives under it).
PREFIX = "/api/identipay/v1"
#: The status socket's path (a ``{txId}`` parameter, as the document writes ``:txId``).
WS_PATH = "/ws/transactions/{txId}"
#: The prefix of the socket's path, for its error shape on the Quart fallback.
WS_PREFIX = "/ws/transactions"

NOT_FOUND = "Transaction not found"
INVALID_ID = "Invalid transaction id: expected a UUID"
READ_ONLY = "This WebSocket is read-only: clients do not send messages"

#: ``amountMatch`` on the wire ↔ the domain's.
AMOUNT_MATCHES: dict[str, AmountMatch] = {
    "exact": AmountMatch.EXACT,
    "atLeast": AmountMatch.AT_LEAST,
}
_AMOUNT_MATCH_NAMES = {match: name for name, match in AMOUNT_MATCHES.items()}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def status_message(proposal: Proposal) -> dict[str, Any]:
    """The ``status`` message: the socket's first message, and the polling answer."""
    return {
        "type": "status",
        "transactionId": proposal.transaction_id,
        "status": proposal.status.value,
        "suiTxDigest": proposal.settled_tx_hash,
    }


def transition_frames(proposal: Proposal) -> Mapping[str, str]:
    """The message that announces a transition, per wire format (this protocol has one):
    ``settlement`` when it settled, ``status`` when it expired or was cancelled."""
    if proposal.status is ProposalStatus.SETTLED:
        message = {
            "type": "settlement",
            "transactionId": proposal.transaction_id,
            "status": proposal.status.value,
            "suiTxDigest": proposal.settled_tx_hash,
        }
    else:
        message = status_message(proposal)
    return {FORMAT: _dumps(message)}


def status_frame(proposal: Proposal) -> Frame:
    return Frame(_dumps(status_message(proposal)))


def error_text(message: str) -> str:
    return _dumps({"type": "error", "message": message})


#: The answer to every client frame: built (and framed) once for all connections.
READ_ONLY_FRAME = Frame(error_text(READ_ONLY))


def error_shape(status: int, message: str, request_id: str) -> Any:
    """HTTP errors of this protocol (API and refused handshakes): the document's
    ``error`` message; the HTTP status says the rest."""
    return {"type": "error", "message": message}


def iso_time(ms: int) -> str:
    """Unix milliseconds as RFC 3339 UTC with milliseconds (``2025-01-31T12:00:00.000Z``)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def proposal_json(proposal: Proposal) -> dict[str, Any]:
    """A proposal as the API answers it to its merchant: the ``status`` fields, then
    the terms (the merchant's own receiving address; never a buyer's)."""
    terms = proposal.terms
    return {
        "transactionId": proposal.transaction_id,
        "status": proposal.status.value,
        "suiTxDigest": proposal.settled_tx_hash,
        "chainType": terms.chain_type,
        "chainId": terms.chain_id,
        "token": terms.token,
        "amount": str(terms.amount),
        "amountMatch": _AMOUNT_MATCH_NAMES[terms.amount_match],
        "receivingAddress": terms.receiving_address,
        "expiresAt": iso_time(terms.expires_at_ms),
        "createdAt": iso_time(proposal.created_at_ms),
        "updatedAt": iso_time(proposal.updated_at_ms),
    }


def webhook_event(proposal: Proposal) -> dict[str, Any]:
    """The merchant webhook body of a transition, in the Standard Webhooks payload
    structure (``type``, ``timestamp``, ``data``): ``payment.settled``,
    ``payment.expired`` or ``payment.cancelled``."""
    return {
        "type": "payment." + proposal.status.value,
        "timestamp": iso_time(proposal.updated_at_ms),
        "data": proposal_json(proposal),
    }

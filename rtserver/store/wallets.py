"""The wallet registry: a user's KYC state and its Safes, with their IBAN and recovery.

A user (``users``, shared with the channel protocol) has at most one Safe per chain; a
Safe has the signer that owns it, its threshold, an IBAN (iban, bic, state) and its
social-recovery settings. A Safe address is registered once per app and chain. Changes
return the stored value they replaced, read in the caller's transaction, so an event
announcing a change says what really changed (never the caller's word). Addresses are
stored lowercase. Plain functions over a connection (server and CLI share them).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, replace

from rtserver.exceptions import InvalidInputError, NotFoundError
from rtserver.records import TransactionRecord
from rtserver.store.transactions import INDEX_RECORD_COLUMNS, record_from_index_row
from rtserver.store.users import UserRef, ensure_user

#: A KYC or IBAN state: the app's own vocabulary (``PENDING``, ``VERIFIED``, ...).
_STATE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
#: A signer id: what the app calls the key that owns a Safe.
_SIGNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+:-]{0,127}")
_EVM_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?")

_SAFE_COLUMNS = (
    "app_id, user_id, chain_type, chain_id, address, signer_id, threshold, iban, bic,"
    " iban_state, iban_updated_at_ms, recovery_enabled, recovery_address, recovery_delay,"
    " recovery_pending, recovery_execute_after_ms"
)


@dataclass(frozen=True, slots=True)
class Recovery:
    """A Safe's social-recovery settings (the wallet document's ``recovery_data``)."""

    enabled: bool = False
    address: str | None = None
    #: Seconds between a recovery's start and when it may execute.
    delay: int | None = None
    pending: bool = False
    #: Unix milliseconds from which a pending recovery may execute.
    execute_after_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Iban:
    iban: str | None = None
    bic: str | None = None
    state: str | None = None
    updated_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Safe:
    user: UserRef
    chain_type: str
    chain_id: int
    address: str
    signer_id: str
    threshold: int
    iban: Iban = Iban()
    recovery: Recovery = Recovery()


@dataclass(frozen=True, slots=True)
class WalletUser:
    """A registered user as the wallet sees it: KYC state and Safes (by chain id)."""

    user: UserRef
    kyc_state: str | None
    kyc_updated_at_ms: int | None
    safes: tuple[Safe, ...]

    def safe_on(self, chain_id: int) -> Safe | None:
        return next((s for s in self.safes if s.chain_id == chain_id), None)


@dataclass(frozen=True, slots=True)
class KycChange:
    """A KYC update: the stored state before and after, and the user's Safes then."""

    previous: str | None
    new: str
    safes: tuple[Safe, ...]

    @property
    def changed(self) -> bool:
        return self.previous != self.new


@dataclass(frozen=True, slots=True)
class IbanChange:
    """An IBAN update of one Safe: the stored IBAN before, and the Safe after."""

    previous: Iban
    safe: Safe

    @property
    def changed(self) -> bool:
        now = self.safe.iban
        return (self.previous.iban, self.previous.bic, self.previous.state) != (
            now.iban,
            now.bic,
            now.state,
        )


# -- validation ---------------------------------------------------------------------


def validate_state(value: object, field: str) -> str:
    if not isinstance(value, str) or not _STATE.fullmatch(value):
        raise InvalidInputError(
            f"{field}: 1 to 64 letters, digits and . _ - starting with a letter"
        )
    return value


def validate_signer(value: object) -> str:
    if not isinstance(value, str) or not _SIGNER.fullmatch(value):
        raise InvalidInputError("signer_id: 1 to 128 letters, digits and . _ @ + : -")
    return value


def validate_evm_address(value: object, field: str) -> str:
    """A ``0x`` + 40 hex digits address, lowercase."""
    if not isinstance(value, str) or not _EVM_ADDRESS.fullmatch(value.lower()):
        raise InvalidInputError(f"{field}: an EVM address (0x and 40 hex digits)")
    return value.lower()


def validate_threshold(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise InvalidInputError("threshold: an integer from 1 to 1000")
    return value


def validate_iban(value: object) -> str:
    text = value.replace(" ", "").upper() if isinstance(value, str) else ""
    if not _IBAN.fullmatch(text):
        raise InvalidInputError("iban: 2 letters, 2 digits, 11 to 30 letters or digits")
    return text


def validate_bic(value: object) -> str:
    text = value.upper() if isinstance(value, str) else ""
    if not _BIC.fullmatch(text):
        raise InvalidInputError("bic: 8 or 11 letters and digits (SWIFT code)")
    return text


# -- reads ---------------------------------------------------------------------------


def _safe(row: tuple[object, ...]) -> Safe:
    (app_id, user_id, chain_type, chain_id, address, signer_id, threshold) = row[:7]
    (iban, bic, iban_state, iban_at, r_enabled, r_address, r_delay, r_pending, r_after) = row[7:]
    return Safe(
        UserRef(str(app_id), str(user_id)),
        str(chain_type),
        int(chain_id),  # type: ignore[call-overload]
        str(address),
        str(signer_id),
        int(threshold),  # type: ignore[call-overload]
        Iban(iban, bic, iban_state, iban_at),  # type: ignore[arg-type]
        Recovery(bool(r_enabled), r_address, r_delay, bool(r_pending), r_after),  # type: ignore[arg-type]
    )


def user_safes(conn: sqlite3.Connection, user: UserRef) -> tuple[Safe, ...]:
    rows = conn.execute(
        f"SELECT {_SAFE_COLUMNS} FROM user_safes WHERE app_id = ? AND user_id = ?"
        " ORDER BY chain_id",
        (user.app_id, user.user_id),
    ).fetchall()
    return tuple(_safe(row) for row in rows)


def get_wallet_user(conn: sqlite3.Connection, user: UserRef) -> WalletUser | None:
    """The registered user, or None if the app has no such user."""
    row = conn.execute(
        "SELECT kyc_state, kyc_updated_at_ms FROM users WHERE app_id = ? AND user_id = ?",
        (user.app_id, user.user_id),
    ).fetchone()
    if row is None:
        return None
    return WalletUser(user, row[0], row[1], user_safes(conn, user))


def all_safes(conn: sqlite3.Connection) -> list[tuple[str, str, int, str]]:
    """Every registered Safe as ``(user key, chain_type, chain_id, address)`` (the index)."""
    rows = conn.execute(
        "SELECT s.app_id, s.user_id, s.chain_type, s.chain_id, s.address FROM user_safes s"
        " JOIN apps a ON a.app_id = s.app_id WHERE a.revoked_at IS NULL"
    ).fetchall()
    return [(UserRef(a, u).key, ct, cid, addr) for a, u, ct, cid, addr in rows]


def safe_transactions(
    conn: sqlite3.Connection,
    chain_type: str,
    chain_id: int,
    address: str,
    *,
    limit: int,
    since: int | None = None,
    until: int | None = None,
) -> list[TransactionRecord]:
    """Up to ``limit`` stored records touching the Safe, newest first, not removed by a
    reorg; ``since``/``until``: block times (Unix seconds, inclusive)."""
    sql = (
        f"SELECT {INDEX_RECORD_COLUMNS} FROM transaction_addresses"
        " WHERE address = ? AND chain_type = ? AND chain_id = ? AND removed = 0"
    )
    params: list[object] = [address, chain_type, chain_id]
    if since is not None:
        sql += " AND tx_time >= ?"
        params.append(since)
    if until is not None:
        sql += " AND tx_time <= ?"
        params.append(until)
    sql += " ORDER BY tx_id DESC LIMIT ?"
    params.append(limit)
    return [record_from_index_row(row) for row in conn.execute(sql, params).fetchall()]


def safe_transaction_count(
    conn: sqlite3.Connection, chain_type: str, chain_id: int, address: str
) -> int:
    """How many stored records (not removed) touch the Safe."""
    row = conn.execute(
        "SELECT COUNT(*) FROM transaction_addresses"
        " WHERE address = ? AND chain_type = ? AND chain_id = ? AND removed = 0",
        (address, chain_type, chain_id),
    ).fetchone()
    return int(row[0])


# -- changes -------------------------------------------------------------------------


def put_safe(
    conn: sqlite3.Connection,
    user: UserRef,
    *,
    chain_type: str,
    chain_id: int,
    address: str,
    signer_id: str,
    threshold: int,
    now: float,
) -> tuple[Safe, Safe | None]:
    """Register the user's Safe on ``chain_id`` (registering the user on the way), in
    place of the one it had there; returns ``(new, replaced)``. The IBAN and recovery
    settings stay when the address stays. InvalidInputError when another user of the
    app has that address on that chain; NotFoundError for an unknown or revoked app."""
    ensure_user(conn, user.app_id, user.user_id, now=now)
    owner = conn.execute(
        "SELECT user_id FROM user_safes WHERE app_id = ? AND chain_id = ? AND address = ?",
        (user.app_id, chain_id, address),
    ).fetchone()
    if owner is not None and owner[0] != user.user_id:
        raise InvalidInputError(f"{address} is another user's Safe on chain {chain_id}")
    before = _safe_on(conn, user, chain_id)
    if before is not None and before.address == address:
        conn.execute(
            "UPDATE user_safes SET signer_id = ?, threshold = ?, chain_type = ?"
            " WHERE app_id = ? AND user_id = ? AND chain_id = ?",
            (signer_id, threshold, chain_type, user.app_id, user.user_id, chain_id),
        )
        after = replace(before, signer_id=signer_id, threshold=threshold, chain_type=chain_type)
        return after, before
    conn.execute(
        "DELETE FROM user_safes WHERE app_id = ? AND user_id = ? AND chain_id = ?",
        (user.app_id, user.user_id, chain_id),
    )
    conn.execute(
        "INSERT INTO user_safes (app_id, user_id, chain_type, chain_id, address, signer_id,"
        " threshold, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (user.app_id, user.user_id, chain_type, chain_id, address, signer_id, threshold, int(now)),
    )
    return Safe(user, chain_type, chain_id, address, signer_id, threshold), before


def delete_safe(conn: sqlite3.Connection, user: UserRef, chain_id: int) -> Safe:
    """Unregister the user's Safe on ``chain_id``; NotFoundError if it has none."""
    safe = _require_safe(conn, user, chain_id)
    conn.execute(
        "DELETE FROM user_safes WHERE app_id = ? AND user_id = ? AND chain_id = ?",
        (user.app_id, user.user_id, chain_id),
    )
    return safe


def set_kyc(conn: sqlite3.Connection, user: UserRef, state: str, *, now_ms: int) -> KycChange:
    """Store the user's KYC state (registering the user on the way); the change says
    what the stored state was. NotFoundError for an unknown or revoked app."""
    ensure_user(conn, user.app_id, user.user_id, now=now_ms / 1000)
    row = conn.execute(
        "SELECT kyc_state FROM users WHERE app_id = ? AND user_id = ?",
        (user.app_id, user.user_id),
    ).fetchone()
    conn.execute(
        "UPDATE users SET kyc_state = ?, kyc_updated_at_ms = ? WHERE app_id = ? AND user_id = ?",
        (state, now_ms, user.app_id, user.user_id),
    )
    return KycChange(row[0], state, user_safes(conn, user))


def set_iban(
    conn: sqlite3.Connection,
    user: UserRef,
    chain_id: int,
    *,
    iban: str,
    bic: str | None,
    state: str,
    now_ms: int,
) -> IbanChange:
    """Store the IBAN of the user's Safe on ``chain_id``; the change says what was
    stored before. NotFoundError if the user has no Safe there."""
    before = _require_safe(conn, user, chain_id)
    conn.execute(
        "UPDATE user_safes SET iban = ?, bic = ?, iban_state = ?, iban_updated_at_ms = ?"
        " WHERE app_id = ? AND user_id = ? AND chain_id = ?",
        (iban, bic, state, now_ms, user.app_id, user.user_id, chain_id),
    )
    return IbanChange(before.iban, replace(before, iban=Iban(iban, bic, state, now_ms)))


def set_recovery(
    conn: sqlite3.Connection, user: UserRef, chain_id: int, recovery: Recovery
) -> Safe:
    """Store the recovery settings of the user's Safe on ``chain_id`` (NotFoundError if
    it has none); returns the Safe after."""
    before = _require_safe(conn, user, chain_id)
    conn.execute(
        "UPDATE user_safes SET recovery_enabled = ?, recovery_address = ?, recovery_delay = ?,"
        " recovery_pending = ?, recovery_execute_after_ms = ?"
        " WHERE app_id = ? AND user_id = ? AND chain_id = ?",
        (
            int(recovery.enabled),
            recovery.address,
            recovery.delay,
            int(recovery.pending),
            recovery.execute_after_ms,
            user.app_id,
            user.user_id,
            chain_id,
        ),
    )
    return replace(before, recovery=recovery)


def _safe_on(conn: sqlite3.Connection, user: UserRef, chain_id: int) -> Safe | None:
    row = conn.execute(
        f"SELECT {_SAFE_COLUMNS} FROM user_safes WHERE app_id = ? AND user_id = ? AND chain_id = ?",
        (user.app_id, user.user_id, chain_id),
    ).fetchone()
    return None if row is None else _safe(row)


def _require_safe(conn: sqlite3.Connection, user: UserRef, chain_id: int) -> Safe:
    safe = _safe_on(conn, user, chain_id)
    if safe is None:
        raise NotFoundError(f"user {user.user_id!r} has no Safe on chain {chain_id}")
    return safe

"""End users of an app and the access tokens rtserver issues them.

Users belong to an app: ``(app_id, user_id)`` names one, and no app sees another's. An
access token is 256 random bits shown once; only its SHA-256 is stored, with its expiry
and revocation time. Plain functions over a connection (server and CLI share them).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass

from rtserver.exceptions import InvalidInputError, NotFoundError

ACCESS_TOKEN_PREFIX = "rtu_"
#: What a user id may be: the ids apps already use (numbers, uuids, emails), and no
#: character that topic names or URLs would need to escape.
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


@dataclass(frozen=True, slots=True)
class UserRef:
    """One end user: the app it belongs to and its id in that app."""

    app_id: str
    user_id: str

    @property
    def key(self) -> str:
        """One string per user across apps (the hub's user index, topic ids)."""
        return f"{self.app_id}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new access token: the only moment it exists in clear."""

    token: str
    user: UserRef
    expires_at: int

    def to_json(self) -> dict[str, object]:
        """How the admin API and the CLI show it."""
        return {
            "token": self.token,
            "app_id": self.user.app_id,
            "user_id": self.user.user_id,
            "expires_at": self.expires_at,
        }


def validate_user_id(value: object) -> str:
    """``value`` as a user id, or InvalidInputError saying what a user id may be."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not _USER_ID.fullmatch(value):
        raise InvalidInputError(
            "user_id: 1 to 128 characters of letters, digits and . _ @ + - (not first)"
        )
    return value


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def ensure_user(conn: sqlite3.Connection, app_id: str, user_id: str, *, now: float) -> None:
    """Register the user in the app if it is not yet; NotFoundError for an unknown or
    revoked app."""
    row = conn.execute("SELECT revoked_at FROM apps WHERE app_id = ?", (app_id,)).fetchone()
    if row is None or row[0] is not None:
        raise NotFoundError(f"no active app {app_id!r}")
    conn.execute(
        "INSERT OR IGNORE INTO users (app_id, user_id, created_at) VALUES (?, ?, ?)",
        (app_id, user_id, int(now)),
    )


def issue_token(
    conn: sqlite3.Connection, app_id: str, user_id: str, *, ttl: float, now: float
) -> IssuedToken:
    """A new access token for the user (registered on the way), valid for ``ttl`` s."""
    ensure_user(conn, app_id, user_id, now=now)
    token = ACCESS_TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    token = token.rstrip("=")
    expires_at = int(now + ttl)
    conn.execute(
        "INSERT INTO access_tokens (token_hash, app_id, user_id, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (hash_token(token), app_id, user_id, int(now), expires_at),
    )
    return IssuedToken(token, UserRef(app_id, user_id), expires_at)


def token_user(conn: sqlite3.Connection, token: str, *, now: float) -> UserRef | None:
    """The user of a current token: None if unknown, expired, revoked or its app revoked."""
    row = conn.execute(
        "SELECT t.app_id, t.user_id FROM access_tokens t JOIN apps a ON a.app_id = t.app_id"
        " WHERE t.token_hash = ? AND t.revoked_at_ms IS NULL AND t.expires_at > ?"
        " AND a.revoked_at IS NULL",
        (hash_token(token), now),
    ).fetchone()
    return None if row is None else UserRef(row[0], row[1])


def revoke_tokens(conn: sqlite3.Connection, app_id: str, user_id: str, *, now_ms: int) -> int:
    """Revoke every current token of the user; return how many were current."""
    cursor = conn.execute(
        "UPDATE access_tokens SET revoked_at_ms = ? WHERE app_id = ? AND user_id = ?"
        " AND revoked_at_ms IS NULL",
        (now_ms, app_id, user_id),
    )
    return cursor.rowcount


def revoked_since(conn: sqlite3.Connection, since_ms: int) -> list[tuple[UserRef, int]]:
    """Users whose tokens were revoked after ``since_ms``, with the latest such time."""
    rows = conn.execute(
        "SELECT app_id, user_id, MAX(revoked_at_ms) FROM access_tokens"
        " WHERE revoked_at_ms > ? GROUP BY app_id, user_id",
        (since_ms,),
    ).fetchall()
    return [(UserRef(app_id, user_id), at) for app_id, user_id, at in rows]


def list_users(conn: sqlite3.Connection, app_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT user_id FROM users WHERE app_id = ? ORDER BY user_id", (app_id,)
    ).fetchall()
    return [row[0] for row in rows]

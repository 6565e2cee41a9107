"""Apps: the business identities that own API keys, watched addresses and webhooks.

Plain functions over a connection, so that the server (through :class:`Store`) and the
CLI (directly, while the server runs) share one implementation.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from rtserver.exceptions import InvalidInputError, NotFoundError
from rtserver.store.webhook_secrets import WEBHOOK_SECRET_PREFIX, box_for
from rtserver.webhook_urls import validate_webhook_url

API_KEY_PREFIX = "rtk_"
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class App:
    app_id: str
    name: str
    key_prefix: str
    webhook_url: str | None
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


@dataclass(frozen=True)
class NewApp:
    """What creating an app returns: the only moment the API key exists in clear."""

    app: App
    api_key: str
    webhook_secret: str | None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"app_id": self.app.app_id, "api_key": self.api_key}
        if self.webhook_secret:
            body["webhook_secret"] = self.webhook_secret
        body["app"] = self.app.to_json()
        return body


def hash_api_key(api_key: str) -> str:
    """The stored form of a key: keys are 256-bit random, so a plain SHA-256 suffices."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def validate_app_fields(
    name: Any, webhook_url: Any, *, allow_private_addresses: bool = True
) -> tuple[str, str | None]:
    """Check the user-supplied fields of a new app; raise :class:`InvalidInputError`.

    ``allow_private_addresses``: ``webhooks.allow_private_addresses``, for callers that
    have the configuration; the sender checks the addresses again in any case.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("name must be a non-empty string", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"name must be at most {MAX_NAME_LENGTH} characters", field="name")
    if not name.isprintable():
        raise InvalidInputError("name must not contain control characters", field="name")
    if webhook_url is not None:
        webhook_url = validate_webhook_url(
            webhook_url, allow_private_addresses=allow_private_addresses
        )
    return name.strip(), webhook_url


def create_app(
    conn: sqlite3.Connection,
    name: Any,
    webhook_url: Any = None,
    *,
    now: float,
    allow_private_addresses: bool = True,
) -> NewApp:
    """A new app created at ``now`` (Unix seconds), with its API key (and webhook secret)."""
    name, webhook_url = validate_app_fields(
        name, webhook_url, allow_private_addresses=allow_private_addresses
    )
    app_id = "app_" + secrets.token_hex(8)
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    webhook_secret = new_webhook_secret() if webhook_url else None
    # Only the encrypted form is stored (rtserver.store.webhook_secrets).
    sealed = box_for(conn).seal(app_id, webhook_secret) if webhook_secret else None
    created_at = int(now)
    conn.execute(
        "INSERT INTO apps (app_id, name, key_hash, key_prefix, webhook_url, webhook_secret,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (app_id, name, hash_api_key(api_key), api_key[:8], webhook_url, sealed, created_at),
    )
    app = App(app_id, name, api_key[:8], webhook_url, created_at, None)
    return NewApp(app, api_key, webhook_secret)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def list_apps(conn: sqlite3.Connection) -> list[App]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM apps ORDER BY created_at, app_id").fetchall()
    return [_app(row) for row in rows]


def get_app(conn: sqlite3.Connection, app_id: str) -> App:
    row = conn.execute(f"SELECT {_COLUMNS} FROM apps WHERE app_id = ?", (app_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no app {app_id!r}")
    return _app(row)


def revoke_app(conn: sqlite3.Connection, app_id: str, *, now: float) -> App:
    """Revoke the app's key at ``now``, Unix seconds (idempotent: revoking twice keeps
    the first time)."""
    get_app(conn, app_id)
    conn.execute(
        "UPDATE apps SET revoked_at = ? WHERE app_id = ? AND revoked_at IS NULL",
        (int(now), app_id),
    )
    return get_app(conn, app_id)


def authenticate(conn: sqlite3.Connection, api_key: str) -> App | None:
    """The active app that owns ``api_key``, or None for unknown and revoked keys."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM apps WHERE key_hash = ? AND revoked_at IS NULL",
        (hash_api_key(api_key),),
    ).fetchone()
    return None if row is None else _app(row)


def revoked_app_ids(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT app_id FROM apps WHERE revoked_at IS NOT NULL")]


_COLUMNS = "app_id, name, key_prefix, webhook_url, created_at, revoked_at"


def _app(row: sqlite3.Row) -> App:
    return App(
        row["app_id"],
        row["name"],
        row["key_prefix"],
        row["webhook_url"],
        row["created_at"],
        row["revoked_at"],
    )

"""Webhook state: apps' endpoints and secrets, queued items, deliveries, dead letters.

Items are queued in the transaction that stores their records (so ``kill -9`` loses
none); the sender turns them into *deliveries* (one POST body, one ``webhook-id``) in
one write job, and records each attempt's outcome with the next attempt's time, so the
retry schedule survives restarts. A delivery is ``pending`` until a 2xx answer deletes
it, or ``dead`` after its last attempt (the dead-letter list) until retried.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rtserver.exceptions import InvalidInputError, NotFoundError
from rtserver.store.apps import MAX_URL_LENGTH, get_app, new_webhook_secret

PENDING = "pending"
DEAD = "dead"


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    app_id: str
    body: str
    item_count: int
    attempts: int
    #: Where to POST and which secrets sign it (current first); None: webhook off.
    url: str | None
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class WebhookSettings:
    app_id: str
    url: str | None
    #: Only set right after it was created or rotated (shown once).
    secret: str | None
    disabled_at: int | None
    disabled_reason: str | None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "app_id": self.app_id,
            "webhook_url": self.url,
            "enabled": self.url is not None and self.disabled_at is None,
            "disabled_at": self.disabled_at,
            "disabled_reason": self.disabled_reason,
        }
        if self.secret is not None:
            body["webhook_secret"] = self.secret
        return body


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- apps' endpoints ---------------------------------------------------------------------


def active_targets(conn: sqlite3.Connection, app_ids: Iterable[str]) -> set[str]:
    """Which of ``app_ids`` have an enabled webhook."""
    ids = list(set(app_ids))
    if not ids:
        return set()
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT app_id FROM apps WHERE app_id IN ({marks}) AND webhook_url IS NOT NULL"
        " AND webhook_disabled_at IS NULL AND revoked_at IS NULL",
        ids,
    ).fetchall()
    return {row[0] for row in rows}


def validate_url(url: Any) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidInputError("webhook_url must be an http(s) URL", field="webhook_url")
    if len(url) > MAX_URL_LENGTH or not url.isprintable():
        raise InvalidInputError("webhook_url is too long or malformed", field="webhook_url")
    return url


def set_webhook(conn: sqlite3.Connection, app_id: str, url: str | None) -> WebhookSettings:
    """Set (and re-enable) or clear the app's webhook; a first URL gets a new secret."""
    get_app(conn, app_id)
    new_secret = None
    if url is None:
        conn.execute(
            "UPDATE apps SET webhook_url = NULL, webhook_disabled_at = NULL,"
            " webhook_disabled_reason = NULL WHERE app_id = ?",
            (app_id,),
        )
    else:
        url = validate_url(url)
        (secret,) = conn.execute(
            "SELECT webhook_secret FROM apps WHERE app_id = ?", (app_id,)
        ).fetchone()
        if not secret:
            new_secret = new_webhook_secret()
            conn.execute(
                "UPDATE apps SET webhook_secret = ? WHERE app_id = ?", (new_secret, app_id)
            )
        conn.execute(
            "UPDATE apps SET webhook_url = ?, webhook_disabled_at = NULL,"
            " webhook_disabled_reason = NULL WHERE app_id = ?",
            (url, app_id),
        )
    return _settings(conn, app_id, new_secret)


def rotate_secret(conn: sqlite3.Connection, app_id: str, overlap_seconds: int) -> WebhookSettings:
    """A new secret; the old one keeps signing (second signature) for ``overlap_seconds``."""
    get_app(conn, app_id)
    secret = new_webhook_secret()
    conn.execute(
        "UPDATE apps SET webhook_previous_secret = webhook_secret, webhook_previous_until = ?,"
        " webhook_secret = ? WHERE app_id = ?",
        (int(time.time()) + overlap_seconds, secret, app_id),
    )
    return _settings(conn, app_id, secret)


def get_settings(conn: sqlite3.Connection, app_id: str) -> WebhookSettings:
    get_app(conn, app_id)
    return _settings(conn, app_id, None)


def disable_webhook(conn: sqlite3.Connection, app_id: str, reason: str) -> None:
    """Stop sending to the app's endpoint (it answered 410 Gone); queued items stay."""
    conn.execute(
        "UPDATE apps SET webhook_disabled_at = ?, webhook_disabled_reason = ?"
        " WHERE app_id = ? AND webhook_disabled_at IS NULL",
        (int(time.time()), reason, app_id),
    )


def _settings(conn: sqlite3.Connection, app_id: str, secret: str | None) -> WebhookSettings:
    row = conn.execute(
        "SELECT webhook_url, webhook_disabled_at, webhook_disabled_reason FROM apps"
        " WHERE app_id = ?",
        (app_id,),
    ).fetchone()
    return WebhookSettings(app_id, row[0], secret, row[1], row[2])


# -- items and deliveries ----------------------------------------------------------------


def queue_items(conn: sqlite3.Connection, items: Sequence[tuple[str, str]]) -> None:
    """Queue ``(app_id, TransactionResult JSON)`` items in the caller's transaction."""
    now = _now_ms()
    conn.executemany(
        "INSERT INTO webhook_items (app_id, payload, created_at_ms) VALUES (?, ?, ?)",
        [(app_id, payload, now) for app_id, payload in items],
    )


def form_deliveries(conn: sqlite3.Connection, batch_max: int, body_max: int) -> int:
    """Turn every queued item into deliveries of at most ``batch_max`` items/``body_max`` bytes.

    Items keep their order per app. Returns how many deliveries were created.
    """
    rows = conn.execute("SELECT seq, app_id, payload FROM webhook_items ORDER BY seq").fetchall()
    if not rows:
        return 0
    now = _now_ms()
    by_app: dict[str, list[str]] = {}
    for _, app_id, payload in rows:
        by_app.setdefault(app_id, []).append(payload)
    created = 0
    for app_id, payloads in by_app.items():
        batch: list[str] = []
        size = 2
        for payload in [*payloads, None]:
            if payload is not None and (
                not batch or (len(batch) < batch_max and size + len(payload) + 1 <= body_max)
            ):
                batch.append(payload)
                size += len(payload) + 1
                continue
            conn.execute(
                "INSERT INTO webhook_deliveries (delivery_id, app_id, body, item_count, state,"
                " next_attempt_ms, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    "msg_" + secrets.token_hex(12),
                    app_id,
                    "[" + ",".join(batch) + "]",
                    len(batch),
                    PENDING,
                    now,
                    now,
                    now,
                ),
            )
            created += 1
            if payload is not None:
                batch, size = [payload], 2 + len(payload)
    conn.execute("DELETE FROM webhook_items WHERE seq <= ?", (rows[-1][0],))
    return created


def due_deliveries(
    conn: sqlite3.Connection, now_ms: int, limit: int, exclude: Iterable[str] = ()
) -> list[Delivery]:
    """Pending deliveries whose next attempt is due, oldest first, with their endpoint."""
    skip = set(exclude)
    rows = conn.execute(
        "SELECT d.delivery_id, d.app_id, d.body, d.item_count, d.attempts, a.webhook_url,"
        " a.webhook_disabled_at, a.webhook_secret, a.webhook_previous_secret,"
        " a.webhook_previous_until FROM webhook_deliveries d JOIN apps a USING (app_id)"
        " WHERE d.state = ? AND d.next_attempt_ms <= ? ORDER BY d.next_attempt_ms, d.rowid"
        " LIMIT ?",
        (PENDING, now_ms, limit + len(skip)),
    ).fetchall()
    found: list[Delivery] = []
    now_s = now_ms // 1000
    for row in rows:
        if row[0] in skip:
            continue
        url = row[5] if row[6] is None else None
        keys = [row[7]] if row[7] else []
        if row[8] and row[9] is not None and row[9] > now_s:
            keys.append(row[8])
        found.append(Delivery(row[0], row[1], row[2], row[3], row[4], url, tuple(keys)))
    return found[:limit]


def next_due_ms(conn: sqlite3.Connection) -> int | None:
    (value,) = conn.execute(
        "SELECT MIN(next_attempt_ms) FROM webhook_deliveries WHERE state = ?", (PENDING,)
    ).fetchone()
    return None if value is None else int(value)


def delivered(conn: sqlite3.Connection, delivery_id: str) -> None:
    conn.execute("DELETE FROM webhook_deliveries WHERE delivery_id = ?", (delivery_id,))


def failed(
    conn: sqlite3.Connection,
    delivery_id: str,
    *,
    status: int | None,
    error: str,
    next_attempt_ms: int | None,
) -> None:
    """Record a failed attempt: retry at ``next_attempt_ms``, or dead when it is None."""
    conn.execute(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?,"
        " last_error = ?, state = ?, next_attempt_ms = ?, updated_at_ms = ?"
        " WHERE delivery_id = ?",
        (
            status,
            error[:500],
            PENDING if next_attempt_ms is not None else DEAD,
            next_attempt_ms,
            _now_ms(),
            delivery_id,
        ),
    )


def dead_letters(conn: sqlite3.Connection, app_id: str, limit: int = 100) -> list[dict[str, Any]]:
    get_app(conn, app_id)
    rows = conn.execute(
        "SELECT delivery_id, item_count, attempts, last_status, last_error, created_at_ms,"
        " updated_at_ms, body FROM webhook_deliveries WHERE app_id = ? AND state = ?"
        " ORDER BY created_at_ms LIMIT ?",
        (app_id, DEAD, limit),
    ).fetchall()
    return [
        {
            "delivery_id": r[0],
            "item_count": r[1],
            "attempts": r[2],
            "last_status": r[3],
            "last_error": r[4],
            "created_at_ms": r[5],
            "failed_at_ms": r[6],
            "body": r[7],
        }
        for r in rows
    ]


def retry_dead(conn: sqlite3.Connection, app_id: str, delivery_id: str | None = None) -> int:
    """Put one dead delivery (or all of the app's) back in the queue, due now."""
    get_app(conn, app_id)
    where, args = "app_id = ? AND state = ?", [app_id, DEAD]
    if delivery_id is not None:
        where += " AND delivery_id = ?"
        args.append(delivery_id)
    cursor = conn.execute(
        f"UPDATE webhook_deliveries SET state = ?, attempts = 0, next_attempt_ms = ?,"
        f" updated_at_ms = ? WHERE {where}",
        [PENDING, _now_ms(), _now_ms(), *args],
    )
    if delivery_id is not None and cursor.rowcount == 0:
        raise NotFoundError(f"no dead delivery {delivery_id!r} for app {app_id!r}")
    return cursor.rowcount

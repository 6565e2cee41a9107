"""Webhook state: apps' endpoints and secrets, queued items, deliveries, dead letters.

Items are queued in the transaction that stores their records (so ``kill -9`` loses
none); the sender turns them into *deliveries* (one POST body, one ``webhook-id``) in
one write job, and records each attempt's outcome with the next attempt's time, so the
retry schedule survives restarts. A delivery is ``pending`` until a 2xx answer deletes
it, or ``dead`` after its last attempt (the dead-letter list) until retried.

Signing secrets are stored encrypted (:mod:`rtserver.store.webhook_secrets`): they are
sealed here when created and opened when a delivery is read for sending.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from rtserver.exceptions import ConfigError, NotFoundError, StoreError
from rtserver.store.apps import get_app, new_webhook_secret
from rtserver.store.webhook_secrets import SecretBox, box_for, sealed_key_id
from rtserver.webhook_urls import validate_webhook_url

PENDING = "pending"
DEAD = "dead"


@dataclass(frozen=True)
class WebhookDelivery:
    delivery_id: str
    app_id: str
    body: str
    item_count: int
    attempts: int
    #: Where to POST and which secrets sign it (current first); None: webhook off.
    url: str | None
    secrets: tuple[str, ...]
    #: Why the app's secret cannot be used (not decryptable): the attempt fails, unsent.
    secret_error: str | None = None


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


def validate_url(url: Any, *, allow_private_addresses: bool) -> str:
    """``url`` if it may be an app's endpoint (:mod:`rtserver.webhook_urls`)."""
    return validate_webhook_url(url, allow_private_addresses=allow_private_addresses)


def set_webhook(
    conn: sqlite3.Connection,
    app_id: str,
    url: str | None,
    *,
    allow_private_addresses: bool = False,
) -> WebhookSettings:
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
        url = validate_url(url, allow_private_addresses=allow_private_addresses)
        (secret,) = conn.execute(
            "SELECT webhook_secret FROM apps WHERE app_id = ?", (app_id,)
        ).fetchone()
        if not secret:
            new_secret = new_webhook_secret()
            conn.execute(
                "UPDATE apps SET webhook_secret = ? WHERE app_id = ?",
                (box_for(conn).seal(app_id, new_secret), app_id),
            )
        conn.execute(
            "UPDATE apps SET webhook_url = ?, webhook_disabled_at = NULL,"
            " webhook_disabled_reason = NULL WHERE app_id = ?",
            (url, app_id),
        )
    return _settings(conn, app_id, new_secret)


def rotate_secret(
    conn: sqlite3.Connection, app_id: str, overlap_seconds: int, *, now: float
) -> WebhookSettings:
    """A new secret; the old one keeps signing (second signature) for ``overlap_seconds``
    from ``now`` (Unix seconds).

    An old secret that cannot be decrypted (its key is lost) is dropped instead of kept
    for the overlap: rotating is how an app recovers from a lost key.
    """
    get_app(conn, app_id)
    box = box_for(conn)
    (stored,) = conn.execute(
        "SELECT webhook_secret FROM apps WHERE app_id = ?", (app_id,)
    ).fetchone()
    previous = None
    if stored:
        try:
            previous = box.seal(app_id, box.open(app_id, stored))
        except (ConfigError, StoreError):
            previous = None
    secret = new_webhook_secret()
    conn.execute(
        "UPDATE apps SET webhook_previous_secret = ?, webhook_previous_until = ?,"
        " webhook_secret = ? WHERE app_id = ?",
        (previous, int(now) + overlap_seconds, box.seal(app_id, secret), app_id),
    )
    return _settings(conn, app_id, secret)


def get_settings(conn: sqlite3.Connection, app_id: str) -> WebhookSettings:
    get_app(conn, app_id)
    return _settings(conn, app_id, None)


def disable_webhook(conn: sqlite3.Connection, app_id: str, reason: str, *, now: float) -> None:
    """Stop sending to the app's endpoint (it answered 410 Gone at ``now``, Unix seconds);
    queued items stay."""
    conn.execute(
        "UPDATE apps SET webhook_disabled_at = ?, webhook_disabled_reason = ?"
        " WHERE app_id = ? AND webhook_disabled_at IS NULL",
        (int(now), reason, app_id),
    )


@dataclass(frozen=True)
class SealReport:
    """What :func:`seal_stored_secrets` did and found."""

    #: Values encrypted now: plaintext of older versions, or under a previous key.
    sealed: int
    #: Key id -> apps whose values need that key, which is not configured.
    missing_keys: dict[str, list[str]]
    #: Apps whose value has a configured key but does not open (changed or moved).
    damaged: list[str]

    def check(self, box: SecretBox) -> None:
        """Raise :class:`ConfigError` when values need a key that is not configured."""
        if not self.missing_keys:
            return
        apps = sorted({a for ids in self.missing_keys.values() for a in ids})
        shown = ", ".join(apps[:5]) + (f" and {len(apps) - 5} more" if len(apps) > 5 else "")
        raise ConfigError(
            "webhooks.secret_key",
            f"the webhook secrets of {len(apps)} app(s) ({shown}) are encrypted with key"
            f" id {', '.join(sorted(self.missing_keys))}, but the configured key (from"
            f" {box.source}) has key id {box.key_id}"
            + (f" and the previous keys {', '.join(box.previous_ids)}" if box.previous else "")
            + ". Configure the key they were written with (the server and the `rtserver"
            " apps` commands must use the same one), or add it to"
            " webhooks.previous_secret_keys to re-encrypt them with the new key; if it is"
            " lost, give each app a new secret with `rtserver apps webhook APP"
            " --rotate-secret`",
        )


def seal_stored_secrets(conn: sqlite3.Connection) -> SealReport:
    """Encrypt with the current key every stored secret that is not yet: plaintext from
    versions before encryption, or values under a previous key. Checks the others.

    Run by the server at start and by ``rtserver apps webhook`` (in its transaction).
    """
    box = box_for(conn)
    rows = conn.execute(
        "SELECT app_id, webhook_secret, webhook_previous_secret FROM apps"
        " WHERE webhook_secret IS NOT NULL OR webhook_previous_secret IS NOT NULL"
    ).fetchall()
    sealed = 0
    missing: dict[str, list[str]] = {}
    damaged: list[str] = []
    (secure_delete,) = conn.execute("PRAGMA secure_delete").fetchone()
    # Overwrite the space a replaced plaintext value leaves in its page, so that the
    # database file does not keep it (SQLite builds differ in their default).
    conn.execute("PRAGMA secure_delete = ON")
    try:
        for app_id, *values in rows:
            new_values = list(values)
            for index, stored in enumerate(values):
                if not stored:
                    continue
                kid = sealed_key_id(stored)
                if kid is not None and kid not in (box.key_id, *box.previous_ids):
                    missing.setdefault(kid, []).append(app_id)
                    continue
                try:
                    secret = box.open(app_id, stored)
                except StoreError:
                    damaged.append(app_id)
                    continue
                if kid != box.key_id:
                    new_values[index] = box.seal(app_id, secret)
                    sealed += 1
            if new_values != values:
                conn.execute(
                    "UPDATE apps SET webhook_secret = ?, webhook_previous_secret = ?"
                    " WHERE app_id = ?",
                    (*new_values, app_id),
                )
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(secure_delete)}")
    return SealReport(sealed, missing, sorted(set(damaged)))


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database file and empty it, so that pages replaced by
    :func:`seal_stored_secrets` leave no plaintext behind; False if readers prevented it."""
    (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy


def _settings(conn: sqlite3.Connection, app_id: str, secret: str | None) -> WebhookSettings:
    row = conn.execute(
        "SELECT webhook_url, webhook_disabled_at, webhook_disabled_reason FROM apps"
        " WHERE app_id = ?",
        (app_id,),
    ).fetchone()
    return WebhookSettings(app_id, row[0], secret, row[1], row[2])


# -- items and deliveries ----------------------------------------------------------------


def queue_items(
    conn: sqlite3.Connection,
    items: Sequence[tuple[str, str]],
    *,
    now_ms: int,
    single: bool = False,
) -> None:
    """Queue ``(app_id, JSON item)`` items, created at ``now_ms``, in the caller's
    transaction.

    ``single``: each item is delivered alone and its JSON is the whole request body (an
    event such as a payment's transition); otherwise items are batched into a JSON array
    (``TransactionResult`` items of address monitoring). The two kinds never share a body.
    """
    conn.executemany(
        "INSERT INTO webhook_items (app_id, payload, created_at_ms, single) VALUES (?, ?, ?, ?)",
        [(app_id, payload, now_ms, int(single)) for app_id, payload in items],
    )


def form_deliveries(conn: sqlite3.Connection, batch_max: int, body_max: int, *, now_ms: int) -> int:
    """Turn every queued item into deliveries of at most ``batch_max`` items/``body_max`` bytes,
    created and due at ``now_ms``; a ``single`` item becomes a delivery of its own whose
    body is the item itself.

    Items keep their order per app and kind. Returns how many deliveries were created.
    """
    rows = conn.execute(
        "SELECT seq, app_id, payload, single FROM webhook_items ORDER BY seq"
    ).fetchall()
    if not rows:
        return 0
    by_app: dict[tuple[str, bool], list[str]] = {}
    for _, app_id, payload, single in rows:
        by_app.setdefault((app_id, bool(single)), []).append(payload)
    created = 0
    for (app_id, single), payloads in by_app.items():
        if single:
            for payload in payloads:
                _insert_delivery(conn, app_id, payload, 1, now_ms)
                created += 1
            continue
        batch: list[str] = []
        size = 2
        for payload in [*payloads, None]:
            if payload is not None and (
                not batch or (len(batch) < batch_max and size + len(payload) + 1 <= body_max)
            ):
                batch.append(payload)
                size += len(payload) + 1
                continue
            _insert_delivery(conn, app_id, "[" + ",".join(batch) + "]", len(batch), now_ms)
            created += 1
            if payload is not None:
                batch, size = [payload], 2 + len(payload)
    conn.execute("DELETE FROM webhook_items WHERE seq <= ?", (rows[-1][0],))
    return created


def _insert_delivery(
    conn: sqlite3.Connection, app_id: str, body: str, item_count: int, now_ms: int
) -> None:
    conn.execute(
        "INSERT INTO webhook_deliveries (delivery_id, app_id, body, item_count, state,"
        " next_attempt_ms, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("msg_" + secrets.token_hex(12), app_id, body, item_count, PENDING, now_ms, now_ms, now_ms),
    )


def due_deliveries(
    conn: sqlite3.Connection, now_ms: int, limit: int, exclude: Iterable[str] = ()
) -> list[WebhookDelivery]:
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
    found: list[WebhookDelivery] = []
    now_s = now_ms // 1000
    box = box_for(conn) if rows else None
    for row in rows:
        if row[0] in skip:
            continue
        app_id = row[1]
        url = row[5] if row[6] is None else None
        keys: list[str] = []
        error = None
        if row[7] and box is not None:
            try:
                keys.append(box.open(app_id, row[7]))
            except (ConfigError, StoreError) as exc:
                error = f"the webhook secret of {app_id} cannot be decrypted: {exc}"
        if not error and row[8] and row[9] is not None and row[9] > now_s and box is not None:
            # The old secret only adds a second signature: without it, sign with the new one.
            with suppress(ConfigError, StoreError):
                keys.append(box.open(app_id, row[8]))
        delivery = WebhookDelivery(row[0], app_id, row[2], row[3], row[4], url, tuple(keys), error)
        found.append(delivery)
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
    now_ms: int,
) -> None:
    """Record a failed attempt made at ``now_ms``: retry at ``next_attempt_ms``, or dead
    when it is None."""
    conn.execute(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?,"
        " last_error = ?, state = ?, next_attempt_ms = ?, updated_at_ms = ?"
        " WHERE delivery_id = ?",
        (
            status,
            error[:500],
            PENDING if next_attempt_ms is not None else DEAD,
            next_attempt_ms,
            now_ms,
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


def retry_dead(
    conn: sqlite3.Connection, app_id: str, delivery_id: str | None = None, *, now_ms: int
) -> int:
    """Put one dead delivery (or all of the app's) back in the queue, due at ``now_ms``."""
    get_app(conn, app_id)
    where, args = "app_id = ? AND state = ?", [app_id, DEAD]
    if delivery_id is not None:
        where += " AND delivery_id = ?"
        args.append(delivery_id)
    cursor = conn.execute(
        f"UPDATE webhook_deliveries SET state = ?, attempts = 0, next_attempt_ms = ?,"
        f" updated_at_ms = ? WHERE {where}",
        [PENDING, now_ms, now_ms, *args],
    )
    if delivery_id is not None and cursor.rowcount == 0:
        raise NotFoundError(f"no dead delivery {delivery_id!r} for app {app_id!r}")
    return cursor.rowcount


def backlog_by_app(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Per app: ``queued`` items not yet batched, ``pending`` deliveries (retrying) and
    ``dead`` letters; apps with none of the three are left out (metrics)."""
    out: dict[str, dict[str, int]] = {}
    for app_id, count in conn.execute("SELECT app_id, COUNT(*) FROM webhook_items GROUP BY app_id"):
        out.setdefault(app_id, {"queued": 0, "pending": 0, "dead": 0})["queued"] = count
    for app_id, state, count in conn.execute(
        "SELECT app_id, state, COUNT(*) FROM webhook_deliveries GROUP BY app_id, state"
    ):
        if state in (PENDING, DEAD):
            key = "pending" if state == PENDING else "dead"
            out.setdefault(app_id, {"queued": 0, "pending": 0, "dead": 0})[key] = count
    return out

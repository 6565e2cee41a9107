"""The webhook sender: batches per app, Standard Webhooks signatures, persisted retries.

Guarantees:

* Every item queued with a committed record is POSTed at least once to the app's
  endpoint, or ends in the dead-letter list (admin API) after the last attempt, or waits
  while the webhook is disabled/removed (then it is dead-lettered with that reason).
* A delivery keeps its ``webhook-id`` across retries and restarts (the receiver's dedup
  key). The schedule (``webhooks.retry_schedule``, with jitter) is stored as the next
  attempt's time, so a restart neither forgets nor restarts it.
* 410 Gone disables the app's webhook (re-enable by setting its URL again).
* Nothing is sent unsigned: a delivery whose secret cannot be decrypted fails (and is
  retried) with that reason. At start, secrets stored in plaintext by older versions or
  under a previous key are encrypted with the current key; secrets under a key that is
  not configured stop the start (:mod:`rtserver.store.webhook_secrets`).
* Unless ``webhooks.allow_private_addresses`` is on, nothing is sent to a private,
  loopback, link-local or otherwise non-public address: the host's resolved addresses are
  checked when connecting (:mod:`rtserver.delivery._http_guard`); such an attempt fails
  with that reason and follows the retry schedule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import sqlite3
from collections.abc import Sequence

import httpx
import trio

from rtserver.clock import Clock
from rtserver.config import WebhookConfig
from rtserver.delivery._http_guard import guarded_transport
from rtserver.exceptions import InvalidInputError
from rtserver.metrics import Metrics
from rtserver.store import Store, webhook_secrets, webhooks
from rtserver.store.webhook_secrets import WEBHOOK_SECRET_PREFIX
from rtserver.usage import WEBHOOK_ITEMS, UsageCounter
from rtserver.webhook_urls import validate_webhook_url

log = logging.getLogger("rtserver.webhooks")


def sign(secrets: Sequence[str], delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64 HMAC-SHA256>`` per live secret."""
    content = f"{delivery_id}.{timestamp}.".encode() + body
    parts = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))
        digest = hmac.new(key, content, hashlib.sha256).digest()
        parts.append("v1," + base64.b64encode(digest).decode())
    return " ".join(parts)


class WebhookSender:
    def __init__(
        self,
        config: WebhookConfig,
        store: Store,
        usage: UsageCounter,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._attempts = metrics.webhook_attempts
        self._clock = clock
        self._config = config
        self._store = store
        self._usage = usage
        self._wake = trio.Event()
        self._items_queued = True  # form deliveries from items left by a previous run
        self._inflight: set[str] = set()
        # Admin API writes and this sender's reads find the key through the database.
        webhook_secrets.use_config(store.path, config)

    def items_queued(self) -> None:
        """New items were committed (called after commit, on the loop)."""
        self._items_queued = True
        self._wake.set()

    def wake(self) -> None:
        """Look for due deliveries now (after an admin retry)."""
        self._wake.set()

    def next_delay(self, failures: int) -> float | None:
        """Seconds before the next attempt after ``failures`` failed ones; None: give up."""
        schedule = self._config.retry_schedule
        if failures > len(schedule):
            return None
        jitter = self._config.retry_jitter
        return schedule[failures - 1] * (1 + random.uniform(-jitter, jitter))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self._config
        await self._prepare_secrets()
        limits = httpx.Limits(
            max_connections=cfg.max_connections, max_keepalive_connections=cfg.max_connections
        )
        transport = guarded_transport(
            limits=limits, allow_private_addresses=cfg.allow_private_addresses
        )
        limiter = trio.CapacityLimiter(cfg.max_connections)
        async with (
            httpx.AsyncClient(
                timeout=cfg.timeout, transport=transport, follow_redirects=False
            ) as client,
            trio.open_nursery() as nursery,
        ):
            task_status.started()
            while True:
                try:
                    timeout = await self._round(client, limiter, nursery)
                except Exception:
                    # A busy or failing database must not take the server down: the
                    # items and deliveries are durable, the next round finds them.
                    log.exception("webhook round failed; retrying in 5 s")
                    timeout = 5.0
                with trio.move_on_after(timeout):
                    await self._wake.wait()

    async def _prepare_secrets(self) -> None:
        """Load the key (creating the default key file) and encrypt what is not yet.

        Raises :class:`ConfigError` (the server does not start) when stored secrets need
        a key that is not configured: a wrong key must not look like a working server.
        """
        box = await trio.to_thread.run_sync(webhook_secrets.box_for_path, self._store.path)
        report = await self._store.write(webhooks.seal_stored_secrets)
        report.check(box)
        if report.damaged:
            log.error(
                "the stored webhook secrets of %s do not authenticate (changed, or copied"
                " between apps); their deliveries fail until rotated: rtserver apps webhook"
                " APP --rotate-secret",
                ", ".join(report.damaged),
            )
        if report.sealed:
            # Pages that held plaintext must not stay in the WAL or the database file.
            done = await self._store.read(webhooks.checkpoint)
            log.info(
                "encrypted %d stored webhook secret(s) with key id %s%s",
                report.sealed,
                box.key_id,
                "" if done else " (the WAL is emptied at the next checkpoint)",
            )

    async def _round(
        self, client: httpx.AsyncClient, limiter: trio.CapacityLimiter, nursery: trio.Nursery
    ) -> float:
        """Form deliveries from queued items, start the due ones; seconds until the next."""
        cfg = self._config
        self._wake = trio.Event()
        if self._items_queued:
            # Let a burst of matches gather into one POST per app.
            await trio.sleep(cfg.batch_ms / 1000)
            self._items_queued = False
            await self._store.write(
                lambda conn: webhooks.form_deliveries(
                    conn, cfg.batch_max, cfg.max_body_bytes, now_ms=self._clock.time_ms()
                )
            )
        now = self._clock.time_ms()
        due = await self._store.read(
            webhooks.due_deliveries, now, cfg.max_connections * 2, set(self._inflight)
        )
        for delivery in due:
            self._inflight.add(delivery.delivery_id)
            nursery.start_soon(self._attempt, client, limiter, delivery)
        next_due = await self._store.read(webhooks.next_due_ms)
        # Nothing scheduled, or only deliveries in flight (their end wakes us): 60 s.
        return 60.0 if next_due is None or next_due <= now else (next_due - now) / 1000

    async def _attempt(
        self, client: httpx.AsyncClient, limiter: trio.CapacityLimiter, d: webhooks.WebhookDelivery
    ) -> None:
        try:
            await self._attempt_once(client, limiter, d)
        except Exception:
            # Not recorded: the delivery stays due and is attempted again (same id).
            log.exception("webhook attempt %s failed to complete", d.delivery_id)
        finally:
            self._inflight.discard(d.delivery_id)
            self._wake.set()

    async def _attempt_once(
        self, client: httpx.AsyncClient, limiter: trio.CapacityLimiter, d: webhooks.WebhookDelivery
    ) -> None:
        async with limiter:
            status, error = await self._post(client, d)
        outcome = "ok" if status is not None and 200 <= status < 300 else "failed"
        self._attempts.labels("gone" if status == 410 else outcome).inc()
        if outcome == "ok":
            await self._store.write(lambda conn: webhooks.delivered(conn, d.delivery_id))
            self._usage.count(d.app_id, WEBHOOK_ITEMS, d.item_count)
            return
        if status == 410:
            reason = "endpoint answered 410 Gone: webhook disabled"

            def gone(conn: sqlite3.Connection) -> None:
                now = self._clock.time()
                webhooks.disable_webhook(conn, d.app_id, reason, now=now)
                webhooks.failed(
                    conn,
                    d.delivery_id,
                    status=410,
                    error=reason,
                    next_attempt_ms=None,
                    now_ms=int(now * 1000),
                )

            await self._store.write(gone)
            log.warning("webhook of %s disabled: %s", d.app_id, reason)
            return
        delay = self.next_delay(d.attempts + 1) if d.url is not None else None
        next_ms = None if delay is None else int((self._clock.time() + delay) * 1000)
        await self._store.write(
            lambda conn: webhooks.failed(
                conn,
                d.delivery_id,
                status=status,
                error=error,
                next_attempt_ms=next_ms,
                now_ms=self._clock.time_ms(),
            )
        )
        log.info(
            "webhook %s to %s failed (%s); %s",
            d.delivery_id,
            d.app_id,
            error,
            "dead-lettered" if next_ms is None else f"retry in {delay:.1f} s",
        )

    async def _post(
        self, client: httpx.AsyncClient, d: webhooks.WebhookDelivery
    ) -> tuple[int | None, str]:
        if d.url is None:
            return None, "the app has no enabled webhook"
        if d.secret_error is not None or not d.secrets:
            return None, d.secret_error or "the app has no webhook secret"
        try:
            # A URL stored before URLs were validated, or while private addresses were
            # allowed, is refused here with its reason.
            validate_webhook_url(
                d.url, allow_private_addresses=self._config.allow_private_addresses
            )
        except InvalidInputError as exc:
            return None, str(exc)
        body = d.body.encode()
        timestamp = int(self._clock.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": d.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(d.secrets, d.delivery_id, timestamp, body),
            "user-agent": "rtserver-webhooks",
        }
        try:
            # Stream so that a huge answer is never read: only the status matters.
            async with client.stream("POST", d.url, content=body, headers=headers) as response:
                status = response.status_code
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return status, f"HTTP {status}"

"""Webhook secrets at rest: encrypted in SQLite under a key kept outside it, still signing.

Every test reads the database files' raw bytes (main file, WAL, shared memory) for the
secrets a receiver was given: neither the ``whsec_`` form nor the base64 key may be there.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from delivery.helpers import make_record, new_app
from delivery.receiver import verify, webhook_receiver
from rtserver.config import Config, WebhookConfig
from rtserver.core import Core
from rtserver.events import TransactionMatch
from rtserver.protocols.address_monitoring._naming import push_data
from rtserver.store import apps, connect_database, transaction, webhooks
from rtserver.store.transactions import store_records

from conftest import (
    ServerProcess,
    make_config,
    rtserver_client,
    run_cli,
    run_server,
    start_server_process,
)

ADMIN = {"Authorization": "Bearer adm"}
ALLOW_LOCAL = {"RTSERVER_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true"}


def _config(tmp_path: Path, **webhooks: Any) -> Config:
    settings: dict[str, Any] = {
        "batch_ms": 20,
        "retry_schedule": (0.2, 0.2),
        "retry_jitter": 0.0,
        # The receiver listens on loopback.
        "allow_private_addresses": True,
    }
    settings.update(webhooks)
    return make_config(tmp_path / "data", admin_token="adm").replace(
        webhooks=WebhookConfig(**settings)
    )


def _database_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("rtserver.sqlite3*")))


def assert_not_stored(data_dir: Path, *given: str) -> None:
    """Neither the secrets nor their key bytes are anywhere in the database files."""
    raw = _database_bytes(data_dir)
    assert raw, "no database files"
    assert b"whsec_" not in raw
    for secret in given:
        key = secret.removeprefix("whsec_")
        assert key.encode() not in raw, f"secret {secret[:12]}… found in the database"
        assert base64.b64decode(key) not in raw


def _stored_values(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / "rtserver.sqlite3")
    try:
        rows = conn.execute("SELECT webhook_secret, webhook_previous_secret FROM apps").fetchall()
    finally:
        conn.close()
    return [value for row in rows for value in row if value is not None]


async def _inject(core: Core, app_id: str, n: int) -> None:
    record = make_record(n)

    def job(conn: Any) -> Any:
        store_records(conn, [record], now=core.clock.time())
        return core.match_sink.stage(conn, [TransactionMatch(record, (SENDER,), app_id=app_id)])

    await core.store.write(job, after_commit=core.match_sink.publish)


SENDER = make_record(0).sender or ""


async def test_admin_api_secrets_encrypted_at_rest_and_signing_across_restart(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    data_dir = config.data_dir
    async with webhook_receiver() as receiver:
        async with run_server(config) as server:
            created = await new_app(server.core, receiver.url)  # the create path
            app = await new_app(server.core)
            app_id = app.app.app_id
            base = f"/admin/v1/apps/{app_id}/webhook"
            async with server.client(headers=ADMIN) as client:
                first = (await client.put(base, json={"url": receiver.url})).json()
                second = (await client.post(base + "/rotate-secret")).json()
            old, new = first["webhook_secret"], second["webhook_secret"]
            await _inject(server.core, app_id, 0)
            await receiver.wait_for(1)
            signed = receiver.requests[0]
            # Both live secrets sign during the rotation's overlap.
            assert verify(new, signed.headers, signed.body)
            assert verify(old, signed.headers, signed.body)
            assert_not_stored(data_dir, old, new, created.webhook_secret or "")
        assert_not_stored(data_dir, old, new, created.webhook_secret or "")
        assert all(value.startswith("rtenc1.") for value in _stored_values(data_dir))

        # A restarted server decrypts what the previous one stored.
        async with run_server(config) as server:
            await _inject(server.core, app_id, 1)
            await _inject(server.core, created.app.app_id, 2)
            await receiver.wait_for(3)
            by_app = {json.loads(r.body)[0]["txHash"]: r for r in receiver.requests[1:]}
            assert verify(new, *_parts(by_app[make_record(1).tx_hash]))
            assert verify(created.webhook_secret or "", *_parts(by_app[make_record(2).tx_hash]))
        assert_not_stored(data_dir, old, new, created.webhook_secret or "")
    # Zero configuration: the key is a file beside the database, readable by its owner only.
    key_file = data_dir / "webhook-secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def _parts(request: Any) -> tuple[dict[str, str], bytes]:
    return request.headers, request.body


async def test_cli_path_encrypts_and_a_server_process_signs(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    data = ("--data-dir", str(data_dir))
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {
        **ALLOW_LOCAL,
        "RTSERVER_WEBHOOKS_SECRET_KEY": key,
        "RTSERVER_WEBHOOKS_BATCH_MS": "20",
    }

    def cli(*args: str) -> Any:
        result = run_cli(*args, *data, env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    async with webhook_receiver() as receiver:
        created = await trio.to_thread.run_sync(cli, "apps", "create", "shop")
        app_id = created["app_id"]
        first = await trio.to_thread.run_sync(cli, "apps", "webhook", app_id, "--url", receiver.url)
        second = await trio.to_thread.run_sync(cli, "apps", "webhook", app_id, "--rotate-secret")
        assert_not_stored(data_dir, first["webhook_secret"], second["webhook_secret"])
        # The key came from the environment: no key file was written beside the database.
        assert not (data_dir / "webhook-secrets.key").exists()

        proc = await trio.to_thread.run_sync(lambda: server_process(data_dir=data_dir, env=env))
        record = make_record(7)
        body = {"id": "r7", "type": "transaction", "data": push_data(record, [SENDER], False)}
        async with rtserver_client(proc.url, headers={"X-API-Key": created["api_key"]}) as client:
            replay = await client.post("/tx/api/v1/transaction/ws/replay", json=body)
            assert replay.status_code == 200, replay.text
        await receiver.wait_for(1)
        signed = receiver.requests[0]
        assert verify(second["webhook_secret"], signed.headers, signed.body)
        assert verify(first["webhook_secret"], signed.headers, signed.body)
        assert_not_stored(data_dir, first["webhook_secret"], second["webhook_secret"])


async def test_plaintext_secrets_of_an_older_version_are_encrypted_at_start(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    async with webhook_receiver() as receiver:
        # What rtserver stored before secrets were encrypted: the secret as is.
        conn = connect_database(config.data_dir, config.database_path, config.store)
        with transaction(conn):
            app = apps.create_app(conn, "older", now=time.time())
            plaintext = apps.new_webhook_secret()
            conn.execute(
                "UPDATE apps SET webhook_url = ?, webhook_secret = ? WHERE app_id = ?",
                (receiver.url, plaintext, app.app.app_id),
            )
        conn.close()
        assert plaintext.encode() in _database_bytes(config.data_dir)

        async with run_server(config) as server:
            assert_not_stored(config.data_dir, plaintext)
            await _inject(server.core, app.app.app_id, 3)
            await receiver.wait_for(1)
            assert verify(plaintext, receiver.requests[0].headers, receiver.requests[0].body)
        assert_not_stored(config.data_dir, plaintext)


def test_wrong_key_refused_and_previous_key_reencrypts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data = ("--data-dir", str(data_dir))
    key_a = base64.b64encode(secrets.token_bytes(32)).decode()
    key_b = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env_a = {"RTSERVER_WEBHOOKS_SECRET_KEY": key_a}
    env_b = {"RTSERVER_WEBHOOKS_SECRET_KEY": key_b}
    created = json.loads(run_cli("apps", "create", "shop", *data, env=env_a).stdout)
    app_id = created["app_id"]
    shown = run_cli(
        "apps", "webhook", app_id, "--url", "https://shop.example/hook", *data, env=env_a
    )
    assert shown.returncode == 0, shown.stderr
    secret = json.loads(shown.stdout)["webhook_secret"]

    # Another key: the CLI says so (configuration error), and so does the server at start.
    wrong = run_cli("apps", "webhook", app_id, *data, env=env_b)
    assert wrong.returncode == 2, wrong.stderr
    assert "webhooks.secret_key" in wrong.stderr and "key id" in wrong.stderr
    assert key_a not in wrong.stderr and key_b not in wrong.stderr
    proc = start_server_process(data_dir, env=env_b, wait=False)
    try:
        code = proc.proc.wait(30)
    finally:
        if proc.proc.poll() is None:
            proc.kill()
    assert code == 2, proc.log()  # a configuration error, as for any other bad setting
    assert "webhooks.secret_key" in proc.log() and "key id" in proc.log()
    # No key at all (the zero-configuration key file): refused too, rows left untouched.
    nokey = run_cli("apps", "webhook", app_id, *data)
    assert nokey.returncode == 2 and "key id" in nokey.stderr

    # Rotating the encryption key: the new one, with the old one listed as previous.
    # The server re-encrypts every secret with the new key at start ...
    rotating = {**env_b, "RTSERVER_WEBHOOKS_PREVIOUS_SECRET_KEYS": key_a}
    server = start_server_process(data_dir, env=rotating)
    assert server.terminate() == 0
    # ... after which the old key is no longer needed.
    again = run_cli("apps", "webhook", app_id, "--rotate-secret", *data, env=env_b)
    assert again.returncode == 0, again.stderr
    assert_not_stored(data_dir, secret, json.loads(again.stdout)["webhook_secret"])

    # A lost key: rotating gives the app a new secret under the new key (with a warning).
    env_c = {"RTSERVER_WEBHOOKS_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    lost = run_cli("apps", "webhook", app_id, "--rotate-secret", *data, env=env_c)
    assert lost.returncode == 0 and "warning" in lost.stderr and "key id" in lost.stderr
    recovered = run_cli("apps", "webhook", app_id, *data, env=env_c)
    assert recovered.returncode == 0, recovered.stderr


def test_secret_moved_to_another_app_does_not_open_and_is_never_sent_unsigned(
    tmp_path: Path,
) -> None:
    """The ciphertext is bound to its app: a value copied into another row does not open."""
    data_dir = tmp_path / "data"
    config = make_config(data_dir)
    conn = connect_database(config.data_dir, config.database_path, config.store)
    try:
        with transaction(conn):
            now = time.time()
            shop = apps.create_app(conn, "shop", "https://shop.example/hook", now=now)
            other = apps.create_app(conn, "other", "https://other.example/hook", now=now)
            now_ms = int(now * 1000)
            webhooks.queue_items(conn, [(other.app.app_id, json.dumps({"n": 1}))], now_ms=now_ms)
            webhooks.form_deliveries(conn, batch_max=10, body_max=10_000, now_ms=now_ms)
            # Someone with write access to the file gives "other" the secret of "shop".
            conn.execute(
                "UPDATE apps SET webhook_secret = (SELECT webhook_secret FROM apps"
                " WHERE app_id = ?) WHERE app_id = ?",
                (shop.app.app_id, other.app.app_id),
            )
        (due,) = webhooks.due_deliveries(conn, 2**62, 10)
    finally:
        conn.close()
    assert due.app_id == other.app.app_id
    assert due.secrets == ()
    assert due.secret_error is not None and "cannot be decrypted" in due.secret_error
    assert os.path.exists(data_dir / "webhook-secrets.key")

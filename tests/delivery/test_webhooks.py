"""Webhooks: batches, Standard Webhooks signatures, persisted retries, 410, dead letters."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from delivery.helpers import make_record, new_app
from delivery.receiver import verify, webhook_receiver
from rtserver.config import Config, WebhookConfig
from rtserver.core import Core
from rtserver.events import TransactionMatch
from rtserver.protocols.address_monitoring._naming import push_data, transaction_result
from rtserver.store.transactions import store_records

from conftest import ServerProcess, make_config, rtserver_client, run_cli, run_server


def _config(tmp_path: Path, schedule: tuple[float, ...]) -> Config:
    # The receiver listens on loopback, refused unless private addresses are allowed.
    return make_config(tmp_path / "data", admin_token="adm").replace(
        webhooks=WebhookConfig(
            batch_ms=20,
            retry_schedule=schedule,
            retry_jitter=0.0,
            allow_private_addresses=True,
        )
    )


async def _inject_many(core: Core, app_id: str, numbers: range) -> None:
    records = [make_record(n) for n in numbers]
    matches = [TransactionMatch(r, (r.sender or "",), app_id=app_id) for r in records]

    def job(conn: Any) -> Any:
        store_records(conn, records, now=core.clock.time())
        return core.match_sink.stage(conn, matches)

    await core.store.write(job, after_commit=core.match_sink.publish)


async def test_fails_three_times_then_delivered_same_id_across_restart(tmp_path: Path) -> None:
    config = _config(tmp_path, (0.3, 0.3, 0.3, 0.3))
    async with webhook_receiver() as receiver:
        receiver.script = [500, 503, 500]
        async with run_server(config) as server:
            app = await new_app(server.core, receiver.url)
            assert app.webhook_secret is not None
            await _inject_many(server.core, app.app.app_id, range(3))
            await receiver.wait_for(1)
        # Restarted between the first failure and the retries: nothing is lost.
        async with run_server(config) as server:
            await receiver.wait_for(4)
            with trio.fail_after(10):
                while server.core.metrics.webhook_attempts.labels("ok")._value.get() < 1:
                    await trio.sleep(0.01)
        ids = {r.headers["webhook-id"] for r in receiver.requests}
        assert len(ids) == 1 and len(receiver.requests) == 4
        final = receiver.requests[-1]
        assert verify(app.webhook_secret, final.headers, final.body)
        assert final.headers["content-type"] == "application/json"
        items = json.loads(final.body)
        assert [i["txHash"] for i in items] == [make_record(n).tx_hash for n in range(3)]
        assert items[0] == transaction_result(make_record(0))


async def test_dead_letters_listed_and_retried_and_410_disables(tmp_path: Path) -> None:
    config = _config(tmp_path, (0.05,))
    async with webhook_receiver() as receiver:
        receiver.script = [500, 500]
        async with run_server(config) as server:
            core = server.core
            app = await new_app(core, receiver.url)
            app_id = app.app.app_id
            await _inject_many(core, app_id, range(1))
            await receiver.wait_for(2)
            admin = {"Authorization": "Bearer adm"}
            async with server.client(headers=admin) as client:
                base = f"/admin/v1/apps/{app_id}/webhook"
                with trio.fail_after(10):
                    while not (
                        dead := (await client.get(base + "/dead-letters")).json()["dead_letters"]
                    ):
                        await trio.sleep(0.02)
                assert dead[0]["attempts"] == 2 and dead[0]["last_status"] == 500
                retried = await client.post(f"{base}/dead-letters/{dead[0]['delivery_id']}/retry")
                assert retried.json()["requeued"] == 1
                await receiver.wait_for(3)
                assert receiver.requests[2].headers["webhook-id"] == dead[0]["delivery_id"]
                with trio.fail_after(10):
                    while (await client.get(base + "/dead-letters")).json()["dead_letters"]:
                        await trio.sleep(0.02)

                # Rotation: both secrets sign during the overlap.
                rotated = (await client.post(base + "/rotate-secret")).json()
                receiver.default = 410
                await _inject_many(core, app_id, range(1, 2))
                await receiver.wait_for(4)
                gone = receiver.requests[3]
                assert verify(rotated["webhook_secret"], gone.headers, gone.body)
                assert verify(app.webhook_secret or "", gone.headers, gone.body)
                with trio.fail_after(10):
                    while (await client.get(base)).json()["enabled"]:
                        await trio.sleep(0.02)
                settings = (await client.get(base)).json()
                assert "410" in settings["disabled_reason"]
                # Setting the URL again re-enables it.
                receiver.default = 200
                again = await client.put(base, json={"url": receiver.url})
                assert again.json()["enabled"] is True
                assert (await client.put(base, json={"url": "ftp://x"})).status_code == 400


def test_cli_webhook_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    created = json.loads(run_cli("apps", "create", "shop", "--data-dir", data).stdout)
    app_id = created["app_id"]
    shown = run_cli(
        "apps", "webhook", app_id, "--url", "https://shop.example/hook", "--data-dir", data
    )
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["webhook_url"] == "https://shop.example/hook" and body["enabled"] is True
    assert body["webhook_secret"].startswith("whsec_")
    rotated = json.loads(
        run_cli("apps", "webhook", app_id, "--rotate-secret", "--data-dir", data).stdout
    )
    assert rotated["webhook_secret"] != body["webhook_secret"]
    dead = run_cli("apps", "webhook", app_id, "--dead-letters", "--data-dir", data)
    assert json.loads(dead.stdout) == []
    bad = run_cli("apps", "webhook", app_id, "--url", "nope", "--data-dir", data)
    assert bad.returncode == 2 and "webhook_url" in bad.stderr
    missing = run_cli("apps", "webhook", "app_missing", "--clear", "--data-dir", data)
    assert missing.returncode == 1
    cleared = json.loads(run_cli("apps", "webhook", app_id, "--clear", "--data-dir", data).stdout)
    assert cleared["webhook_url"] is None and cleared["enabled"] is False


async def test_webhook_survives_kill_9_between_tries(
    tmp_path: Path, server_process: Callable[..., ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    env = {
        "RTSERVER_WEBHOOKS_RETRY_SCHEDULE": "0.3,0.3,0.3",
        "RTSERVER_WEBHOOKS_BATCH_MS": "20",
        "RTSERVER_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true",
    }
    async with webhook_receiver() as receiver:
        receiver.script = [500, 500, 500]
        created = json.loads(
            run_cli(
                "apps",
                "create",
                "hooked",
                "--webhook-url",
                receiver.url,
                "--data-dir",
                str(data_dir),
                env=env,
            ).stdout
        )
        proc = await trio.to_thread.run_sync(lambda: server_process(data_dir=data_dir, env=env))
        async with rtserver_client(proc.url, headers={"X-API-Key": created["api_key"]}) as client:
            record = make_record(5)
            body = {
                "id": "r5",
                "type": "transaction",
                "data": push_data(record, [record.sender or ""], False),
            }
            assert (
                await client.post("/tx/api/v1/transaction/ws/replay", json=body)
            ).status_code == 200
        await receiver.wait_for(1)
        proc.kill()
        await trio.to_thread.run_sync(lambda: server_process(data_dir=data_dir, env=env))
        await receiver.wait_for(4)
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        final = receiver.requests[-1]
        assert verify(created["webhook_secret"], final.headers, final.body)
        assert json.loads(final.body) == [transaction_result(record)]

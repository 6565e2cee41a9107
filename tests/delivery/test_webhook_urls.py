"""Webhook URLs: validated when set, and private addresses refused (SSRF) when set and sent."""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio

from delivery.helpers import make_record, new_app
from delivery.receiver import webhook_receiver
from rtserver.config import Config, WebhookConfig
from rtserver.core import Core
from rtserver.events import TransactionMatch
from rtserver.store.transactions import store_records

from conftest import make_config, run_cli, run_server

ADMIN = {"Authorization": "Bearer adm"}

MALFORMED = [
    "http://[::1",
    "http://[::1/hook",
    "http://[::1]:99999/hook",
    "http://[fe80::1%25eth0]/hook",
    "http://[v1.future]/hook",
    "http://",
    "http:///hook",
    "http://:8080/hook",
    "https://example.com:0/hook",
    "https://example.com:port/hook",
    "https://example.com:+443/hook",
    "https://example.com:/hook",
    "https://user:password@example.com/hook",
    "https://token@example.com/hook",
    "https://exa mple.com/hook",
    "https://example.com/ho\nok",
    "https://example..com/hook",
    "https://-example.com/hook",
    "https://" + "a" * 64 + ".example/hook",
    "https://127.1/hook",
    "https://2130706433/hook",
    "https://example.com/hook#fragment",
    "ftp://example.com/hook",
    "mailto:hooks@example.com",
    "https://example.com/" + "a" * 2100,
    "",
]

WELL_FORMED = [
    "https://shop.example/hooks?token=abc&x=1",
    "HTTPS://Shop.Example:8443/hooks",
    "https://bücher.example/hook",
    "http://receiver_1:8080/hook",
    "https://shop.example./hook",
    "http://[2001:db8::1]:8443/hook",
    "http://127.0.0.1:8080/hook",
]

PRIVATE = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://[::1]:8080/hook", "loopback"),
    ("http://localhost:8080/hook", "loopback"),
    ("http://hooks.localhost/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://[fd00::5]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://0.0.0.0:8080/hook", "unspecified"),
    ("http://100.64.0.1/hook", "non-global"),
    ("http://224.0.0.1/hook", "multicast"),
]


def _config(tmp_path: Path, *, allow_private: bool, schedule: tuple[float, ...] = (0.1,)) -> Config:
    return make_config(tmp_path / "data", admin_token="adm").replace(
        webhooks=WebhookConfig(
            batch_ms=20,
            retry_schedule=schedule,
            retry_jitter=0.0,
            allow_private_addresses=allow_private,
        )
    )


async def _inject(core: Core, app_id: str, n: int) -> None:
    record = make_record(n)

    def job(conn: Any) -> Any:
        store_records(conn, [record], now=core.clock.time())
        match = TransactionMatch(record, (record.sender or "",), app_id=app_id)
        return core.match_sink.stage(conn, [match])

    await core.store.write(job, after_commit=core.match_sink.publish)


async def test_admin_api_rejects_malformed_urls_with_400(tmp_path: Path) -> None:
    async with run_server(_config(tmp_path, allow_private=True)) as server:
        app = await new_app(server.core)
        base = f"/admin/v1/apps/{app.app.app_id}/webhook"
        async with server.client(headers=ADMIN) as client:
            for url in MALFORMED:
                answer = await client.put(base, json={"url": url})
                assert answer.status_code == 400, (url, answer.text)
                error = answer.json()["error"]
                assert error["status"] == 400 and "webhook_url" in error["message"], url
                created = await client.post(
                    "/admin/v1/apps", json={"name": "x", "webhook_url": url}
                )
                assert created.status_code == 400, (url, created.text)
            assert (await client.get(base)).json()["webhook_url"] is None
            for url in WELL_FORMED:
                answer = await client.put(base, json={"url": url})
                assert answer.status_code == 200, (url, answer.text)
                assert answer.json()["webhook_url"] == url


async def test_private_addresses_refused_when_set_unless_allowed(tmp_path: Path) -> None:
    async with run_server(_config(tmp_path, allow_private=False)) as server:
        app = await new_app(server.core)
        base = f"/admin/v1/apps/{app.app.app_id}/webhook"
        async with server.client(headers=ADMIN) as client:
            for url, kind in PRIVATE:
                answer = await client.put(base, json={"url": url})
                assert answer.status_code == 400, (url, answer.text)
                message = answer.json()["error"]["message"]
                assert kind in message and "webhooks.allow_private_addresses" in message, url
            public = await client.put(base, json={"url": "https://shop.example/hook"})
            assert public.status_code == 200, public.text
            # Creating an app with a webhook checks the same way.
            for url, kind in PRIVATE:
                created = await client.post(
                    "/admin/v1/apps", json={"name": "shop", "webhook_url": url}
                )
                assert created.status_code == 400, (url, created.text)
                assert kind in created.json()["error"]["message"], url


def test_cli_rejects_bad_urls_with_exit_2(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path / "data"))
    app_id = json.loads(run_cli("apps", "create", "shop", *data).stdout)["app_id"]
    for url in ("http://[::1", "https://user:pw@shop.example/hook", "https://shop.example:70000/"):
        bad = run_cli("apps", "webhook", app_id, "--url", url, *data)
        assert bad.returncode == 2, (url, bad.stdout, bad.stderr)
        assert "webhook_url" in bad.stderr and not bad.stdout
    private = run_cli("apps", "webhook", app_id, "--url", "http://10.0.0.8/hook", *data)
    assert private.returncode == 2 and "allow_private_addresses" in private.stderr
    created = run_cli("apps", "create", "shop", "--webhook-url", "http://10.0.0.8/h", *data)
    assert created.returncode == 2 and "allow_private_addresses" in created.stderr
    assert not created.stdout
    allowed = run_cli(
        "apps",
        "webhook",
        app_id,
        "--url",
        "http://10.0.0.8/hook",
        *data,
        env={"RTSERVER_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true"},
    )
    assert allowed.returncode == 0, allowed.stderr
    shown = json.loads(run_cli("apps", "webhook", app_id, *data).stdout)
    assert shown["webhook_url"] == "http://10.0.0.8/hook"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_send_time_check_refuses_resolved_private_addresses(
    tmp_path: Path, host: str
) -> None:
    """A URL stored while allowed (or by an older version) is checked again when sent,
    against the addresses its host resolves to; nothing reaches the receiver."""
    async with webhook_receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", host)
        async with run_server(_config(tmp_path, allow_private=True)) as server:
            app = await new_app(server.core, url)
        app_id = app.app.app_id
        async with run_server(_config(tmp_path, allow_private=False)) as server:
            await _inject(server.core, app_id, 1)
            async with server.client(headers=ADMIN) as client:
                dead = await _wait_dead_letters(client, app_id)
        assert receiver.requests == []
        (letter,) = dead
        assert letter["attempts"] == 2 and letter["last_status"] is None
        assert "loopback" in letter["last_error"]
        assert "webhooks.allow_private_addresses" in letter["last_error"]


class _Resolver(trio.abc.HostnameResolver):
    """DNS as an attacker may run it: a public-looking name that answers with loopback."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.lookups: list[str] = []

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        name = (host or b"").decode()
        self.lookups.append(name)
        if name in self.names:
            number = int(port.decode() if isinstance(port, bytes) else port or 0)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.names[name], number))]
        return await trio.to_thread.run_sync(
            socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr: Any, flags: int) -> Any:
        return await trio.to_thread.run_sync(socket.getnameinfo, sockaddr, flags)


async def test_send_time_check_on_the_addresses_a_name_resolves_to(tmp_path: Path) -> None:
    """A name says nothing when it is set; the addresses it resolves to are checked when
    connecting, and the connection goes to the address checked (one lookup, no second
    one that DNS rebinding could answer differently)."""
    resolver = _Resolver({"hooks.shop.example": "127.0.0.1"})
    trio.socket.set_custom_hostname_resolver(resolver)
    async with webhook_receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "hooks.shop.example")
        async with run_server(_config(tmp_path, allow_private=False)) as server:
            app = await new_app(server.core)
            app_id = app.app.app_id
            async with server.client(headers=ADMIN) as client:
                base = f"/admin/v1/apps/{app_id}/webhook"
                assert (await client.put(base, json={"url": url})).status_code == 200
                await _inject(server.core, app_id, 3)
                (letter,) = await _wait_dead_letters(client, app_id)
        assert receiver.requests == []
        refusal = "hooks.shop.example resolves to 127.0.0.1, a loopback address"
        assert refusal in letter["last_error"]
        assert "webhooks.allow_private_addresses" in letter["last_error"]
        assert resolver.lookups.count("hooks.shop.example") == 2  # one per attempt

        # Allowed, the same name is delivered to, with one lookup for the connection.
        resolver.lookups.clear()
        retry = f"/admin/v1/apps/{app_id}/webhook/dead-letters/retry"
        async with (
            run_server(_config(tmp_path, allow_private=True)) as server,
            server.client(headers=ADMIN) as client,
        ):
            assert (await client.post(retry)).json()["requeued"] == 1
            await receiver.wait_for(1)
        assert resolver.lookups.count("hooks.shop.example") == 1


async def test_malformed_url_stored_by_an_older_version_fails_cleanly(tmp_path: Path) -> None:
    """``http://[::1`` was accepted before URLs were validated: its deliveries fail with a
    reason and end as dead letters instead of raising in the sender."""
    config = _config(tmp_path, allow_private=True)
    async with run_server(config) as server:
        app = await new_app(server.core, "https://shop.example/hook")
    app_id = app.app.app_id
    conn = sqlite3.connect(config.database_path)
    with conn:
        conn.execute("UPDATE apps SET webhook_url = 'http://[::1' WHERE app_id = ?", (app_id,))
    conn.close()
    async with run_server(config) as server:
        await _inject(server.core, app_id, 2)
        async with server.client(headers=ADMIN) as client:
            (letter,) = await _wait_dead_letters(client, app_id)
    assert "webhook_url" in letter["last_error"] and "IPv6" in letter["last_error"]


async def _wait_dead_letters(client: Any, app_id: str) -> list[dict[str, Any]]:
    url = f"/admin/v1/apps/{app_id}/webhook/dead-letters"
    with trio.fail_after(15):
        while not (dead := (await client.get(url)).json()["dead_letters"]):
            await trio.sleep(0.05)
    return dead  # type: ignore[no-any-return]

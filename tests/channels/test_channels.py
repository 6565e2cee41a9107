"""The channel socket against real server processes (../shared/spec/channel-realtime-ws.txt):
tokens checked before the upgrade, one socket per user, publishing to exactly the intended
users, settings broadcasts, forced logout, catch-up across ``kill -9``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from channels.helpers import (
    ADMIN_HEADERS,
    Start,
    command,
    create_app,
    issue_token,
    nothing_else,
    publish,
    recv,
    start,
    ws_url,
)

from conftest import rtserver_client, run_cli


async def _rejected(url: str, **kwargs: Any) -> ConnectionRejected:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url, **kwargs):
            pass
    return rejected.value


def _error_body(rejection: ConnectionRejected) -> dict[str, Any]:
    body = json.loads(rejection.body or b"{}")
    assert set(body) == {"status_code", "message", "trace_id", "data"}
    assert body["status_code"] == rejection.status_code and body["data"] is None
    assert body["trace_id"]
    return body


async def test_bad_tokens_and_origins_are_refused_before_the_upgrade(
    server_process: Start,
) -> None:
    proc = await trio.to_thread.run_sync(
        lambda: start(server_process, RTSERVER_CHANNELS_ALLOWED_ORIGINS="https://app.example")
    )
    app_id, _ = create_app(proc)
    good = await issue_token(proc, app_id, "120045")
    origin = [("Origin", "https://app.example")]
    async with open_websocket_url(ws_url(proc, good), extra_headers=origin) as ws:
        await nothing_else(ws)

    expired = run_cli(
        "users", "token", app_id, "7", "--ttl", "0.001", "--data-dir", str(proc.data_dir)
    )
    assert expired.returncode == 0, expired.stderr
    revoked = await issue_token(proc, app_id, "8")
    async with rtserver_client(proc.url, headers=ADMIN_HEADERS) as client:
        answer = await client.delete(f"/admin/v1/apps/{app_id}/users/8/tokens")
        assert answer.status_code == 200 and answer.json()["revoked"] == 1
    for token in ("", "nope", "rtu_" + "x" * 43, json.loads(expired.stdout)["token"], revoked):
        rejection = await _rejected(ws_url(proc, token), extra_headers=origin)
        assert rejection.status_code == 401, token
        assert _error_body(rejection)["message"] == "Invalid or expired token"
    rejection = await _rejected(ws_url(proc, good), extra_headers=[("Origin", "https://evil")])
    assert rejection.status_code == 403 and _error_body(rejection)["message"]
    no_origin = await _rejected(ws_url(proc, good))
    assert no_origin.status_code == 403


async def test_one_socket_per_user_and_events_reach_exactly_their_users(
    server_process: Start,
) -> None:
    proc = await trio.to_thread.run_sync(lambda: start(server_process))
    app_id, api_key = create_app(proc)
    other_app, other_key = create_app(proc, "other")
    alice, bob = await issue_token(proc, app_id, "120045"), await issue_token(proc, app_id, "7")
    stranger = await issue_token(proc, other_app, "120045")  # the same id in another app

    async with (
        open_websocket_url(ws_url(proc, alice)) as first,
        open_websocket_url(ws_url(proc, alice)) as a,
    ):
        # The newer socket replaced the older one, with a documented code.
        with pytest.raises(ConnectionClosed) as replaced, trio.fail_after(10):
            await first.get_message()
        assert replaced.value.reason.code == 4000
        async with (
            open_websocket_url(ws_url(proc, bob)) as b,
            open_websocket_url(ws_url(proc, stranger)) as s,
        ):
            for ws in (a, b, s):
                answer = await command(ws, {"event": "subscribe", "channel": "notification.events"})
                assert answer == {
                    "event": "subscribed",
                    "channel": "notification.events",
                    "data": {},
                }
            data = {
                "mobile_user_id": 120045,
                "unread_count": 3,
                "event_type": "NOTIFICATION_UPDATE",
                "timestamp": 1740748800,
            }
            body = {
                "channel": "notification.events",
                "event": "NOTIFICATION_UPDATE",
                "data": data,
                "user_id": "120045",
            }
            answer = await publish(proc, api_key, body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["status_code"] == 200 and answer.json()["trace_id"]
            got = await recv(a)
            assert {k: got[k] for k in ("event", "channel", "data")} == {
                "event": "NOTIFICATION_UPDATE",
                "channel": "notification.events",
                "data": data,
            }
            assert got["offset"] == 1 and got["epoch"]  # the catch-up extension
            for ws in (b, s):
                await nothing_else(ws)  # not Bob's, not the other app's user with the same id

            settings = {
                "channel": "settings",
                "event": "withdrawal_settings_updated",
                "data": {"type": "withdrawal_settings_updated", "withdrawal_fee_rate": "1.50"},
            }
            assert (await publish(proc, api_key, settings)).status_code == 200
            for ws in (a, b):  # every socket of the app, subscribed on connect
                got = await recv(ws)
                assert got["event"] == "withdrawal_settings_updated"
                assert got["channel"] == "settings" and got["data"] == settings["data"]
            await nothing_else(s)  # another app's settings are its own

            several = {**body, "user_id": None}
            del several["user_id"]
            several["user_ids"] = ["120045", "7"]
            answer = await publish(proc, api_key, several)
            assert [p["user_id"] for p in answer.json()["data"]["published"]] == ["120045", "7"]
            assert (await recv(a))["offset"] == 2 and (await recv(b))["offset"] == 1

            # Diagnostics: the app's connected users (its API key), details for the admin.
            async with rtserver_client(proc.url) as client:
                users = await client.get(
                    "/api/v1/ws/connected-users", headers={"Authorization": f"Bearer {api_key}"}
                )
                assert users.json()["data"]["user_ids"] == ["120045", "7"]
                others = await client.get(
                    "/api/v1/ws/connected-users",
                    headers={"Authorization": f"Bearer {other_key}"},
                )
                assert others.json()["data"]["user_ids"] == ["120045"]
                hidden = await client.get("/api/v1/ws/connections")
                assert hidden.status_code == 401 and hidden.json()["data"] is None
                shown = await client.get("/api/v1/ws/connections", headers=ADMIN_HEADERS)
                rows = shown.json()["data"]["connections"]
                assert len(rows) == 3
                mine = next(r for r in rows if r["app_id"] == app_id and r["user_id"] == "7")
                assert mine["channels"] == [
                    "mobile.force.logout",
                    "notification.events",
                    "settings",
                ]
                debug = await client.get("/api/v1/ws/test?user_id=1")
                assert debug.status_code == 404  # only with channels.debug_endpoints


async def test_forced_logout_by_publish_and_by_revocation(server_process: Start) -> None:
    proc = await trio.to_thread.run_sync(
        lambda: start(server_process, RTSERVER_CHANNELS_REVOCATION_POLL="0.2")
    )
    app_id, api_key = create_app(proc)

    async def logged_out(token: str, cause: Callable[[], Any]) -> None:
        async with open_websocket_url(ws_url(proc, token)) as ws:
            await nothing_else(ws)
            await cause()
            event = await recv(ws)
            assert event["event"] == "MOBILE_USER_FORCE_LOGOUT_EVENT"
            assert event["channel"] == "mobile.force.logout"
            assert event["data"] == {"mobile_user_id": 120045, "is_force_logout": True}
            with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
                await ws.get_message()
            assert closed.value.reason.code == 4001

    token = await issue_token(proc, app_id, "120045")

    async def by_publish() -> None:
        answer = await publish(
            proc,
            api_key,
            {
                "channel": "mobile.force.logout",
                "event": "MOBILE_USER_FORCE_LOGOUT_EVENT",
                "data": {"mobile_user_id": 120045, "is_force_logout": True},
                "user_id": "120045",
            },
        )
        assert answer.status_code == 200, answer.text

    await logged_out(token, by_publish)

    async def by_admin_revocation() -> None:
        async with rtserver_client(proc.url, headers=ADMIN_HEADERS) as client:
            answer = await client.delete(f"/admin/v1/apps/{app_id}/users/120045/tokens")
            assert answer.json()["revoked"] == 1

    await logged_out(token, by_admin_revocation)  # a publish alone leaves the token valid
    assert (await _rejected(ws_url(proc, token))).status_code == 401  # revoked: no more

    token = await issue_token(proc, app_id, "120045")

    async def by_cli_revocation() -> None:
        revoked = await trio.to_thread.run_sync(
            lambda: run_cli("users", "revoke", app_id, "120045", "--data-dir", str(proc.data_dir))
        )
        assert json.loads(revoked.stdout)["revoked"] == 1

    await logged_out(token, by_cli_revocation)
    assert (await _rejected(ws_url(proc, token))).status_code == 401


async def test_catch_up_from_the_last_offset_is_exact_and_flagged_across_kill_9(
    server_process: Start, tmp_path: Any
) -> None:
    env = {"RTSERVER_STREAMS_HISTORY_SIZE": "4"}
    data_dir = tmp_path / "data"
    proc = await trio.to_thread.run_sync(lambda: start(server_process, data_dir=data_dir, **env))
    app_id, api_key = create_app(proc)
    token = await issue_token(proc, app_id, "120045")

    async def send(n: int, channel: str = "kyc.events") -> None:
        body: dict[str, Any] = {"channel": channel, "event": "KYC_UPDATE", "data": {"n": n}}
        if channel != "settings":
            body["user_id"] = "120045"
        assert (await publish(proc, api_key, body)).status_code == 200

    async with open_websocket_url(ws_url(proc, token)) as ws:
        await command(ws, {"event": "subscribe", "channel": "kyc.events"})
        for n in (1, 2, 3):
            await send(n)
        seen = [await recv(ws) for _ in range(3)]
    epoch = seen[0]["epoch"]
    assert [e["offset"] for e in seen] == [1, 2, 3]
    await send(4)
    await send(5)
    await send(1, "settings")
    proc.kill()  # SIGKILL: no shutdown code runs

    proc = await trio.to_thread.run_sync(lambda: start(server_process, data_dir=data_dir, **env))
    since = {"epoch": epoch, "offset": 3}
    async with open_websocket_url(ws_url(proc, token, settings_since=":0")) as ws:
        settings = await recv(ws)
        assert settings["event"] == "subscribed" and settings["data"]["recovered"] is True
        assert (await recv(ws))["data"] == {"n": 1}  # the settings event it missed
        answer = await command(ws, {"event": "subscribe", "channel": "kyc.events", "since": since})
        assert answer["event"] == "subscribed"
        assert answer["data"] == {"recovered": True, "epoch": epoch, "offset": 5, "missed": 2}
        assert [(await recv(ws))["data"]["n"] for _ in range(2)] == [4, 5]
        await nothing_else(ws)
    for n in (6, 7, 8):
        await send(n)
    proc.kill()

    proc = await trio.to_thread.run_sync(lambda: start(server_process, data_dir=data_dir, **env))
    async with open_websocket_url(ws_url(proc, token)) as ws:
        # Only the last 4 are kept (5..8): 4 is gone, so recovery from 3 is incomplete.
        answer = await command(ws, {"event": "subscribe", "channel": "kyc.events", "since": since})
        assert answer["data"] == {"recovered": False, "epoch": epoch, "offset": 8, "missed": 4}
        assert [(await recv(ws))["data"]["n"] for _ in range(4)] == [5, 6, 7, 8]
        await nothing_else(ws)
    proc.kill()

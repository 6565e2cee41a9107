from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx

from conftest import RunningServer, make_config, run_server

ADMIN = {"Authorization": "Bearer secret-admin"}


async def test_healthz_readyz_and_metrics(server: RunningServer) -> None:
    async with server.client() as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        await client.get("/nope")
        metrics = await client.get("/metrics")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    assert health.headers["x-request-id"].startswith("r-")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'rtserver_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'rtserver_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert "rtserver_http_request_duration_seconds_bucket" in text
    assert "rtserver_store_commits_total" in text
    assert "rtserver_open_connections" in text
    assert "rtserver_messages_sent_total" in text


async def test_readyz_reports_failing_checks(server: RunningServer) -> None:
    async def broken() -> str | None:
        return "chain ethereum:1 lags 500 blocks"

    server.core.readiness_checks["watcher"] = broken
    async with server.client() as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"watcher": "chain ethereum:1 lags 500 blocks"}


async def test_admin_api_creates_lists_and_revokes_apps(server: RunningServer) -> None:
    async with server.client(headers=ADMIN) as client:
        created = await client.post(
            "/admin/v1/apps", json={"name": "shop", "webhook_url": "https://example.test/hook"}
        )
        assert created.status_code == 201
        body = created.json()
        assert body["api_key"].startswith("rtk_")
        assert body["webhook_secret"].startswith("whsec_")
        app_id = body["app_id"]
        listed = (await client.get("/admin/v1/apps")).json()["apps"]
        assert [a["app_id"] for a in listed] == [app_id]
        assert "api_key" not in listed[0]
        revoked = await client.post(f"/admin/v1/apps/{app_id}/revoke")
        assert revoked.status_code == 200 and revoked.json()["active"] is False
        again = await client.post(f"/admin/v1/apps/{app_id}/revoke")
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
        missing = await client.post("/admin/v1/apps/app_nope/revoke")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "no app 'app_nope'"


async def test_admin_api_needs_the_token(server: RunningServer) -> None:
    async with server.client() as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Basic secret-admin"},
        ):
            response = await client.get("/admin/v1/apps", headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"]["message"] == "missing or wrong admin token"


async def test_admin_api_is_disabled_without_a_token(tmp_path: Path) -> None:
    async with run_server(make_config(tmp_path)) as running, running.client() as client:
        response = await client.get("/admin/v1/apps", headers={"Authorization": "Bearer x"})
    assert response.status_code == 403
    assert "disabled" in response.json()["error"]["message"]


MALFORMED_BODIES: list[tuple[bytes, str]] = [
    (b"", "empty body"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b"[]", "got an array"),
    (b"null", "got null"),
    (b'"name"', "got a string"),
    (b"{}", "name must be a non-empty string"),
    (b'{"name": null}', "name must be a non-empty string"),
    (b'{"name": 12}', "name must be a non-empty string"),
    (b'{"name": ["a"]}', "name must be a non-empty string"),
    (b'{"name": "   "}', "name must be a non-empty string"),
    (b'{"name": "' + b"x" * 5000 + b'"}', "at most 200 characters"),
    (b'{"name": "a\\u0000b"}', "control characters"),
    (b'{"name": "ok", "webhook_url": "ftp://x"}', "webhook_url must be an http(s) URL"),
    (b'{"name": "ok", "webhook_url": 5}', "webhook_url must be an http(s) URL"),
    (b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ('{"name": "\ud83d"}'.encode("utf-8", "surrogatepass"), "not valid UTF-8"),
]


async def test_malformed_admin_bodies_get_clear_400s_and_change_nothing(
    server: RunningServer,
) -> None:
    async with server.client(headers=ADMIN) as client:
        for body, needle in MALFORMED_BODIES:
            response = await client.post(
                "/admin/v1/apps", content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 400, (body[:40], response.text)
            error = response.json()["error"]
            assert needle in error["message"], (body[:40], error)
            assert error["request_id"] == response.headers["x-request-id"]
        listed = (await client.get("/admin/v1/apps")).json()["apps"]
        health = await client.get("/healthz")
    assert listed == []
    assert health.status_code == 200


async def test_oversized_body_unknown_route_and_wrong_method(tmp_path: Path) -> None:
    config = make_config(tmp_path, admin_token="secret-admin", max_body_bytes=1024)
    async with run_server(config) as running, running.client(headers=ADMIN) as client:
        big = await client.post("/admin/v1/apps", content=json.dumps({"name": "x" * 2000}).encode())
        unknown = await client.get("/does/not/exist")
        wrong = await client.delete("/healthz")
        listed = (await client.get("/admin/v1/apps")).json()["apps"]
    assert big.status_code == 413
    assert big.json()["error"]["message"] == "request body is larger than the limit of 1024 bytes"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "no route for GET /does/not/exist"
    assert wrong.status_code == 405
    assert "GET" in wrong.headers["allow"]
    assert wrong.json()["error"]["message"] == "method DELETE is not allowed on /healthz"
    assert listed == []
    conn = sqlite3.connect(config.database_path)
    assert conn.execute("SELECT count(*) FROM apps").fetchone()[0] == 0
    conn.close()


async def test_request_id_is_taken_from_the_client_when_given(server: RunningServer) -> None:
    async with server.client() as client:
        response = await client.get("/healthz", headers={"X-Request-Id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    assert isinstance(response, httpx.Response)

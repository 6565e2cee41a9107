"""The OpenAPI description (``rtserver/http/openapi``): valid, complete, and true.

* valid: ``openapi-spec-validator`` accepts it as OpenAPI 3.1;
* complete: every route a server with every protocol enabled registers (Quart's URL
  rules and the listener's WebSocket routes) is described, and nothing else is;
* true: every response the suite receives through ``rtserver_client`` is checked
  against it (``openapi_check``); the tests here show that check can fail.

Adding an endpoint (the dashboard, the dev mode's demo page, …): add its operation in
``rtserver/http/openapi/_document.py``; the coverage test names every route missing.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import uuid

import httpx
import pytest
from openapi_spec_validator import validate
from payments.helpers import CHAIN_ID, WITHOUT_WATCHERS, payments_config
from quart import Blueprint
from quart.routing import QuartRule

from rtserver.config import ChannelsConfig
from rtserver.core import Core
from rtserver.demo import demo_component
from rtserver.dev import DemoSetup
from rtserver.http import WebSocketRoute
from rtserver.http.openapi import openapi_document
from rtserver.server import DEFAULT_COMPONENTS, Component, ComponentFactory

from conftest import REPO, make_config, run_server
from openapi_check import ResponseChecker, async_hook, path_pattern

ADMIN = {"Authorization": "Bearer secret-admin"}
STATIC = REPO / "rtserver" / "http" / "openapi" / "static"


def test_the_description_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    validate(document)
    assert document["openapi"].startswith("3.1")


async def test_it_is_served_without_credentials(server) -> None:
    async with server.client() as client:
        answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == openapi_document()


# -- coverage --------------------------------------------------------------------------


def _shape(path: str) -> str:
    """A path with its parameters unnamed: ``/apps/<app_id>`` and ``/apps/{id}`` agree."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def _registered(rules: list[QuartRule], routes: list[WebSocketRoute]) -> set[tuple[str, str]]:
    found = set()
    for rule in rules:
        methods = set(rule.methods or ()) - {"HEAD"}  # HEAD: Werkzeug's, for every GET
        if rule.provide_automatic_options:
            methods.discard("OPTIONS")
        found.update((_shape(rule.rule), method.lower()) for method in methods)
    found.update((_shape(route.path), "get") for route in routes)
    return found


def _described() -> set[tuple[str, str]]:
    return {
        (_shape(path), method)
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "options", "head", "patch", "trace")
    }


def _recording(factory: ComponentFactory, built: list[Component]) -> ComponentFactory:
    def build(core: Core) -> Component:
        component = factory(core)
        built.append(component)
        return component

    return build


async def test_every_route_the_server_registers_is_described_and_no_other(tmp_path) -> None:
    config = make_config(tmp_path / "data", admin_token="secret-admin")
    config = config.replace(channels=ChannelsConfig(debug_endpoints=True))
    built: list[Component] = []
    apps: list[object] = []
    # The running app itself: a blueprint's setup callbacks receive it on registration.
    capture = Blueprint("openapi-test-capture", __name__)
    capture.record(lambda state: apps.append(state.app))
    components = [_recording(factory, built) for factory in DEFAULT_COMPONENTS]
    # What `rtserver dev` adds (its routes are described too).
    components.append(demo_component(DemoSetup("app_demo", "key", "demo", "token")))
    components.append(lambda core: Component("capture", blueprints=(capture,)))
    async with run_server(config, components):
        pass
    (app,) = apps
    rules = list(app.url_map.iter_rules())  # type: ignore[attr-defined]
    routes = [route for component in built for route in component.websocket_routes]
    registered = _registered(rules, routes)
    assert len(routes) >= 5 and len(registered) > 40  # every protocol is on
    described = _described()
    missing = sorted(registered - described)
    assert missing == [], (
        f"routes without a description (add them in rtserver/http/openapi/_document.py): {missing}"
    )
    assert sorted(described - registered) == [], "described routes the server does not register"


def test_the_coverage_check_sees_a_route_added_without_description() -> None:
    rule = QuartRule("/dashboard/<panel>", methods=["GET"], endpoint="dashboard")
    rule.provide_automatic_options = True
    registered = _registered([rule], [WebSocketRoute("/dashboard/live", _no_handler, _no_shape)])
    assert registered - _described() == {("/dashboard/{}", "get"), ("/dashboard/live", "get")}


async def _no_handler(connection: object) -> None:
    raise AssertionError("never called")


def _no_shape(status: int, message: str, request_id: str) -> object:
    return {}


# -- the checker --------------------------------------------------------------------------


def _fresh_checker() -> ResponseChecker:
    return ResponseChecker(openapi_document())


def test_the_checker_refuses_an_undocumented_status_a_wrong_body_and_type() -> None:
    checker = _fresh_checker()
    ok = json.dumps({"status": "ok"}).encode()
    assert checker.check("GET", "/healthz", 200, "application/json", ok) is None
    assert "documents only" in (checker.check("GET", "/healthz", 418, "application/json", ok) or "")
    wrong = json.dumps({"status": "ok", "extra": 1}).encode()
    assert "does not match" in (
        checker.check("GET", "/healthz", 200, "application/json", wrong) or ""
    )
    assert "'text/html'" in (checker.check("GET", "/healthz", 200, "text/html", ok) or "")
    # An error in another API's shape is caught too.
    foreign = json.dumps({"error": {"status": 401, "message": "x", "request_id": "r"}}).encode()
    problem = checker.check("POST", "/tx/api/v1/addresses", 401, "application/json", foreign)
    assert problem is not None and "does not match" in problem


def test_the_checker_lists_the_operations_no_response_reached() -> None:
    checker = _fresh_checker()
    assert "GET /healthz" in checker.unreached()
    checker.check("GET", "/healthz", 200, "application/json", b'{"status":"ok"}')
    assert "GET /healthz" not in checker.unreached() and "GET /readyz" in checker.unreached()


def test_the_checker_matches_paths_literal_first() -> None:
    checker = _fresh_checker()
    assert checker.template_of("/api/v1/ws/publish") == "/api/v1/ws/publish"
    assert checker.template_of("/ws/transactions/abc") == "/ws/transactions/{txId}"
    assert checker.template_of("/admin/v1/apps/a1/users/u1/safes/1/iban") == (
        "/admin/v1/apps/{app_id}/users/{user_id}/safes/{chain_id}/iban"
    )
    assert checker.template_of("/nowhere") is None
    assert path_pattern("/a/{x}/b").match("/a/1/2/b") is None


async def test_a_response_against_the_description_fails_the_request(server) -> None:
    """The hook raises where the test made the request: here with a description whose
    ``/healthz`` promises a field the server does not send."""
    document = copy.deepcopy(openapi_document())
    health = document["components"]["schemas"]["Health"]
    health["properties"]["uptime"] = {"type": "integer"}
    health["required"].append("uptime")
    checker = ResponseChecker(document)
    hooks = {"response": [async_hook(checker)]}
    async with httpx.AsyncClient(base_url=server.url, event_hooks=hooks) as client:
        with pytest.raises(AssertionError, match="'uptime' is a required property"):
            await client.get("/healthz")
    assert len(checker.problems) == 1
    async with server.client() as client:  # the real description: it matches
        assert (await client.get("/healthz")).status_code == 200


# -- endpoints the rest of the suite reaches seldom ------------------------------------


async def test_websocket_endpoints_answer_a_plain_get_as_described(server) -> None:
    transaction_id = str(uuid.uuid4())
    async with server.client() as client:
        assert (await client.get("/tx/api/v1/transaction/ws")).status_code == 426
        assert (await client.get(f"/ws/transactions/{transaction_id}")).status_code == 400
        assert (await client.get("/ws")).status_code == 404
        assert (await client.get("/api/v1/ws")).status_code == 404
        preflight = await client.options(f"/api/identipay/v1/transactions/{transaction_id}/status")
        # The preflight route answers, not Quart's automatic OPTIONS of the GET rule.
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization"


async def test_endpoints_few_other_tests_call_answer_as_described(tmp_path) -> None:
    """Operations, channel diagnostics, dead letters, pools, a Safe's recovery: each
    answer goes through the checked client (its body validated against the description).
    A followed chain (no watcher runs) for the Safe."""
    config = payments_config(tmp_path)
    async with run_server(config, WITHOUT_WATCHERS) as server, server.client() as client:
        assert (await client.get("/readyz")).status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and "rtserver_" in metrics.text
        created = await client.post("/admin/v1/apps", json={"name": "tour"}, headers=ADMIN)
        app_id, key = created.json()["app_id"], created.json()["api_key"]
        app_key = {"Authorization": f"Bearer {key}"}
        users = await client.get("/api/v1/ws/connected-users", headers=app_key)
        assert users.json()["data"] == {"user_ids": [], "count": 0}
        assert (await client.get("/api/v1/ws/connections", headers=app_key)).status_code == 401
        connections = await client.get("/api/v1/ws/connections", headers=ADMIN)
        assert connections.json()["data"]["count"] == 0
        hook = f"/admin/v1/apps/{app_id}/webhook"
        assert (await client.get(hook + "/dead-letters", headers=ADMIN)).json()[
            "dead_letters"
        ] == []
        assert (await client.post(hook + "/dead-letters/retry", headers=ADMIN)).json()[
            "requeued"
        ] == 0
        missing = await client.post(hook + "/dead-letters/nothing/retry", headers=ADMIN)
        assert missing.status_code == 404
        assert (await client.get("/admin/v1/pools", headers=ADMIN)).json() == {"pools": []}
        pool = {"chain_type": "ethereum", "chain_id": 1, "address": "0x" + "5a" * 20}
        assert (await client.post("/admin/v1/pools", json=pool, headers=ADMIN)).status_code == 201
        key_path = f"/admin/v1/pools/ethereum/1/{pool['address']}"
        disabled = await client.post(key_path + "/disable", headers=ADMIN)
        assert disabled.json()["enabled"] is False
        enabled = await client.post(key_path + "/enable", headers=ADMIN)
        assert enabled.json()["enabled"] is True
        cleared = await client.delete(hook, headers=ADMIN)
        assert cleared.json()["webhook_url"] is None
        safe = f"/admin/v1/apps/{app_id}/users/7/safes/{CHAIN_ID}"
        put = await client.put(safe, json={"address": "0x" + "5b" * 20}, headers=ADMIN)
        assert put.status_code == 200, put.text
        recovery = {"enabled": True, "address": "0x" + "5c" * 20, "delay": 3600}
        changed = await client.put(safe + "/recovery", json=recovery, headers=ADMIN)
        assert changed.json()["recovery"]["delay"] == 3600
        assert (await client.delete(safe, headers=ADMIN)).status_code == 200
        assert (await client.delete(safe, headers=ADMIN)).status_code == 404
        assert (await client.get("/admin/v1/apps", headers={})).status_code == 401


async def test_the_admin_api_without_a_token_configured_answers_403(tmp_path) -> None:
    async with run_server(make_config(tmp_path / "data")) as server, server.client() as client:
        answer = await client.get("/admin/v1/apps", headers=ADMIN)
    assert answer.status_code == 403
    assert "disabled" in answer.json()["error"]["message"]


# -- the reference page ---------------------------------------------------------------------


def _local_only(text: str) -> list[str]:
    """Every address in ``text`` that leaves the server (scheme or protocol-relative)."""
    return re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"')]*", text)


async def test_the_reference_page_loads_only_local_files(server) -> None:
    async with server.client() as client:
        page = await client.get("/docs/api")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert set(assets) == {"/docs/api/reference.css", "/docs/api/reference.js", "/openapi.json"}
        for asset in assets:
            answer = await client.get(asset)
            assert answer.status_code == 200, asset
            assert _local_only(answer.text) == [], asset
    assert _local_only(page.text) == []
    assert 'fetch("/openapi.json")' in (STATIC / "reference.js").read_text()


def test_the_local_only_check_sees_a_cdn() -> None:
    assert _local_only('<script src="https://cdn.example.com/x.js">') != []
    assert _local_only("@import url(//fonts.example.org/css);") != []


def test_the_reference_script_parses(tmp_path) -> None:
    node = shutil.which("node")
    if node is None:  # ./scripts/test installs Node for the Anvil node; elsewhere, skip
        pytest.skip("node is not installed")
    checked = subprocess.run(
        [node, "--check", str(STATIC / "reference.js")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


def test_the_page_files_ship_in_the_package() -> None:
    """``pyproject.toml`` names them as package data (a wheel carries them)."""
    names = {path.name for path in STATIC.iterdir()}
    assert names == {"reference.html", "reference.js", "reference.css"}
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"http/openapi/static/*"' in pyproject

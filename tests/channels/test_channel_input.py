"""Hostile input on the channel protocol: a corpus of bad frames and publishes, floods,
oversized frames and bad JWTs. Each gets a clear error in the protocol's shape, changes
nothing, and other clients are served on."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
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

#: (client frame, the error it must get) — nothing else may change.
CORPUS: list[tuple[str | bytes, str]] = [
    ("{", "malformed JSON"),
    ("[]", "expected a JSON object"),
    ("42", "expected a JSON object"),
    ('"subscribe"', "expected a JSON object"),
    ("{}", "unknown event"),
    ('{"event": "publish", "channel": "settings"}', "unknown event"),
    ('{"event": ["subscribe"]}', "unknown event"),
    ('{"event": "subscribe"}', "unknown channel"),
    ('{"event": "subscribe", "channel": "nope.events"}', "unknown channel"),
    ('{"event": "subscribe", "channel": "notification.events:7"}', "unknown channel"),
    ('{"event": "subscribe", "channel": 7}', "unknown channel"),
    ('{"event": "unsubscribe", "channel": "x" }', "unknown channel"),
    ('{"event": "subscribe", "channel": "kyc.events", "since": 3}', "since:"),
    ('{"event": "subscribe", "channel": "kyc.events", "since": {"offset": -1}}', "since.offset"),
    (
        '{"event": "subscribe", "channel": "kyc.events", "since": {"epoch": 5, "offset": 1}}',
        "since.epoch",
    ),
    (
        '{"event": "subscribe", "channel": "kyc.events", "since": {"offset": 1e400}}',
        "since.offset",
    ),
    (b"\x00\x01binary", "binary messages are not accepted"),
    ("x" * 1000, "malformed JSON"),
]


async def test_bad_frames_get_errors_and_change_nothing(server_process: Start) -> None:
    proc = await trio.to_thread.run_sync(
        lambda: start(server_process, RTSERVER_WEBSOCKET_MAX_FRAME_BYTES="4096")
    )
    app_id, api_key = create_app(proc)
    tokens = [await issue_token(proc, app_id, user) for user in ("1", "2", "3")]
    async with (
        open_websocket_url(ws_url(proc, tokens[0])) as bad,
        open_websocket_url(ws_url(proc, tokens[1])) as calm,
    ):
        for frame, expected in CORPUS:
            await bad.send_message(frame)
            answer = await recv(bad)
            assert answer["event"] == "error", frame
            assert expected in answer["data"]["message"], (frame, answer)
        # Nothing changed: no subscription was added by the bad frames.
        await publish(
            proc,
            api_key,
            {"channel": "kyc.events", "event": "E", "data": {}, "user_id": "1"},
        )
        await nothing_else(bad)
        # A flood of subscribe/unsubscribe is answered in order, one by one.
        for n in range(2_000):
            event = "subscribe" if n % 2 == 0 else "unsubscribe"
            await bad.send_message(json.dumps({"event": event, "channel": "card.events"}))
        with trio.fail_after(30):
            for n in range(2_000):
                answer = await recv(bad)
                assert answer["event"] == ("subscribed" if n % 2 == 0 else "unsubscribed")
        await nothing_else(calm)
        # An oversized frame closes that socket only (1009).
        await bad.send_message("x" * 10_000)
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
            while True:
                await bad.get_message()
        assert closed.value.reason.code == 1009
        await nothing_else(calm)
        # Another user's token is another user: nothing of user 2 reaches user 3.
        async with open_websocket_url(ws_url(proc, tokens[2])) as third:
            await command(third, {"event": "subscribe", "channel": "kyc.events"})
            await command(calm, {"event": "subscribe", "channel": "kyc.events"})
            await publish(
                proc, api_key, {"channel": "kyc.events", "event": "E", "data": 2, "user_id": "2"}
            )
            assert (await recv(calm))["data"] == 2
            await nothing_else(third)


BAD_PUBLISHES: list[tuple[dict[str, Any], int, str]] = [
    ({"channel": "nope", "event": "E", "data": {}}, 400, "unknown channel"),
    ({"channel": "settings", "event": "E", "data": {}, "user_id": "1"}, 400, "broadcast"),
    ({"channel": "kyc.events", "event": "E", "data": {}}, 400, "per-user"),
    ({"channel": "kyc.events", "event": "", "data": {}, "user_id": "1"}, 400, "event"),
    ({"channel": "kyc.events", "event": "E", "user_id": "1"}, 400, "data"),
    ({"channel": "kyc.events", "event": "E", "data": 1, "user_id": "a/b"}, 400, "user_id"),
    ({"channel": "kyc.events", "event": "E", "data": 1, "user_ids": "1"}, 400, "user_ids"),
    ({"channel": "kyc.events", "event": "E", "data": 1, "user_id": "1", "user_ids": []}, 400, ""),
    ({"channel": 5, "event": "E", "data": 1}, 400, "channel"),
]


async def test_bad_publishes_get_the_documents_error_and_write_nothing(
    server_process: Start,
) -> None:
    proc = await trio.to_thread.run_sync(lambda: start(server_process))
    app_id, api_key = create_app(proc)
    token = await issue_token(proc, app_id, "1")
    async with open_websocket_url(ws_url(proc, token)) as ws:
        await command(ws, {"event": "subscribe", "channel": "kyc.events"})
        for body, status, needle in BAD_PUBLISHES:
            answer = await publish(proc, api_key, body)
            assert answer.status_code == status, (body, answer.text)
            error = answer.json()
            assert error["status_code"] == status and error["data"] is None, error
            assert needle in error["message"], (needle, error)
        wrong_key = await publish(
            proc, "rtk_wrong", {"channel": "settings", "event": "E", "data": 1}
        )
        assert wrong_key.status_code == 401 and wrong_key.json()["data"] is None
        async with rtserver_client(proc.url) as client:
            not_json = await client.post(
                "/api/v1/ws/publish",
                content=b"{",
                headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            )
            assert not_json.status_code == 400 and not_json.json()["status_code"] == 400
            # The admin token publishes for any app, naming it.
            admin = await client.post(
                "/api/v1/ws/publish",
                json={
                    "app_id": app_id,
                    "channel": "kyc.events",
                    "event": "OK",
                    "data": 1,
                    "user_id": "1",
                },
                headers=ADMIN_HEADERS,
            )
            assert admin.status_code == 200, admin.text
        got = await recv(ws)
        assert got["event"] == "OK" and got["offset"] == 1  # the bad ones took no offset
        await nothing_else(ws)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_jwts_are_verified_and_the_bad_ones_refused(
    server_process: Start, tmp_path: Any
) -> None:
    secret = "s" * 32
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True)
    created = run_cli("apps", "create", "shop", "--data-dir", str(data_dir))
    app_id = json.loads(created.stdout)["app_id"]
    env = {
        "RTSERVER_CHANNELS_JWT": "true",
        "RTSERVER_JWT_HS256_SECRET": secret,
        "RTSERVER_JWT_APP_ID": app_id,
        "RTSERVER_JWT_AUDIENCE": "wallet",
        "RTSERVER_JWT_LEEWAY": "5",
    }
    proc = await trio.to_thread.run_sync(lambda: start(server_process, data_dir=data_dir, **env))
    minted = run_cli("users", "jwt", "120045", "--data-dir", str(data_dir), env=env)
    assert minted.returncode == 0, minted.stderr
    good = json.loads(minted.stdout)["token"]
    async with open_websocket_url(ws_url(proc, good)) as ws:
        await nothing_else(ws)

    now = int(time.time())  # the server runs on the system clock
    claims = {"sub": "120045", "aud": "wallet", "exp": now + 600}
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    header_none = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    corpus = {
        "alg none": f"{header_none}.{_b64(json.dumps(claims).encode())}.",
        "another secret": jwt.encode(claims, "t" * 32, algorithm="HS256"),
        "another algorithm": jwt.encode(claims, pem, algorithm="ES256"),
        "expired": jwt.encode({**claims, "exp": now - 60}, secret, algorithm="HS256"),
        "not yet valid": jwt.encode({**claims, "nbf": now + 600}, secret, algorithm="HS256"),
        "no exp": jwt.encode({"sub": "1", "aud": "wallet"}, secret, algorithm="HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "x"}, secret, algorithm="HS256"),
        "no user": jwt.encode({**claims, "sub": ""}, secret, algorithm="HS256"),
        "garbage": "a.b.c",
    }
    for name, token in corpus.items():
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(ws_url(proc, token)):
                pass
        assert rejected.value.status_code == 401, name
        assert json.loads(rejected.value.body or b"{}")["message"] == "Invalid or expired token"

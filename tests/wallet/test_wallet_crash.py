"""``kill -9`` of a real server process right after a transfer to a Safe is committed
loses nothing: the next connection's initial sequence and live pushes show it all."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import trio
from anvil import Anvil
from trio_websocket import open_websocket_url

from wallet.helpers import (
    SYMBOL,
    UNIT,
    authenticate,
    config_toml,
    create_app,
    deploy_token,
    jwt_for,
    recv,
    send_token,
    ws_url,
)

from conftest import ServerProcess, rtserver_client, run_cli


async def _stored(proc: ServerProcess, token: str, chain_id: int, tx_hash: str) -> None:
    """Wait until the HTTP fallback lists ``tx_hash`` (it is committed)."""
    headers = {"Authorization": f"Bearer {token}", "X-Blockchain-Id": str(chain_id)}
    async with rtserver_client(proc.url, timeout=10, headers=headers) as client:
        with trio.fail_after(20):
            while True:
                listed = (await client.get("/v1.2/users/me/transactions")).json()
                if tx_hash in [t["hash"] for t in listed["transactions"]["data"]]:
                    return
                await trio.sleep(0.01)


async def test_kill_9_after_a_transfer_loses_nothing(
    tmp_path: Path, anvil: Anvil, server_process: Callable[..., ServerProcess]
) -> None:
    token = await deploy_token(anvil)
    data_dir = tmp_path / "data"
    app_id = create_app(data_dir)
    safe = anvil.accounts[6]
    config_path = tmp_path / "rtserver.toml"
    config_path.write_text(config_toml(anvil, token, app_id))
    registered = run_cli(
        "users",
        "safe",
        app_id,
        "dave",
        str(anvil.chain_id),
        safe,
        "--config",
        str(config_path),
        "--data-dir",
        str(data_dir),
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["safes"][0]["address"] == safe
    dave = jwt_for("dave", app_id)

    proc = server_process("--config", str(config_path), data_dir=data_dir)
    first = await send_token(anvil, token, safe, UNIT)
    await _stored(proc, dave, anvil.chain_id, first)
    proc.kill()  # right after the commit: its pushes may not have gone out
    second = await send_token(anvil, token, safe, 2 * UNIT)  # while the server is down

    proc = server_process("--config", str(config_path), data_dir=data_dir)
    async with open_websocket_url(ws_url(proc.url, anvil.chain_id)) as ws:
        sequence = await authenticate(ws, dave)
        balances = sequence[1]["data"]["balance"]["balances"]
        assert {b["symbol"]: b["balance"] for b in balances}[SYMBOL] == "3.0"
        seen = [t["hash"] for t in sequence[2]["data"]["transactions"]["data"]]
        assert first in seen
        # The transfer made while it was down: in the initial sequence, or pushed live
        # once the watcher catches up, with its balance.
        if second not in seen:
            with trio.fail_after(20):
                while True:
                    message = await recv(ws)
                    if message["type"] == "new_transaction":
                        assert message["data"]["newTransaction"]["hash"] == second
                        assert message["data"]["transactionCount"] == 2
                        break

"""Real ``rtserver serve`` processes following Anvil: bad chain config at start, kill -9 and restart."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import trio
from anvil import Anvil

from chains.conftest import CHAIN_TYPE
from rtserver.config import load_config
from rtserver.store import connect_database, transaction, watched

from conftest import REPO, ServerProcess, free_port, rtserver_cmd, run_cli, start_server_process


def _write_config(path: Path, rpc_urls: list[str], chain_id: int, **extra: object) -> Path:
    lines = [
        "[[chains]]",
        f'chain_type = "{CHAIN_TYPE}"',
        f"chain_id = {chain_id}",
        f"rpc_urls = {json.dumps(rpc_urls)}",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _serve_fails(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rtserver_cmd(
            "serve",
            "--config",
            str(config),
            "--bind",
            f"127.0.0.1:{free_port()}",
            "--data-dir",
            str(tmp_path / "data"),
        ),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_unreachable_rpc_at_start_is_a_clear_error(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = _serve_fails(tmp_path, _write_config(tmp_path / "c.toml", [dead], 31337))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"chain {CHAIN_TYPE}:31337: cannot reach the RPC at start ({dead})" in output
    assert "Traceback" not in output


def test_wrong_chain_id_is_a_clear_error(tmp_path: Path, anvil: Anvil) -> None:
    result = _serve_fails(tmp_path, _write_config(tmp_path / "c.toml", [anvil.url], 5))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert (
        f"chain {CHAIN_TYPE}:5: chain_id mismatch: configured 5, but the node at {anvil.url} reports 31337"
        in output
    )
    assert "Traceback" not in output


def test_unsupported_chain_type_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[chains]]\nchain_type = "solana"\nchain_id = 1\nrpc_urls = ["http://x"]\n')
    result = _serve_fails(tmp_path, config)
    assert result.returncode == 2
    assert "chains[0].chain_type: no watcher for 'solana'" in result.stderr


def _stored(db: Path, address: str) -> dict[str, tuple[int, int]]:
    """tx_hash -> (id, removed) of the records touching ``address``."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT t.tx_hash, t.id, t.removed FROM transactions t"
            " JOIN transaction_addresses a ON a.tx_id = t.id WHERE a.address = ?",
            (address,),
        ).fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}
    finally:
        conn.close()


def _checkpoint(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT block_number FROM chain_checkpoints").fetchone()
        return -1 if row is None else int(row[0])
    except sqlite3.OperationalError:
        return -1
    finally:
        conn.close()


async def test_kill_9_mid_run_loses_and_duplicates_nothing(tmp_path: Path, anvil: Anvil) -> None:
    data_dir = tmp_path / "data"
    db = data_dir / "rtserver.sqlite3"
    receiver = anvil.accounts[9]
    config = _write_config(
        tmp_path / "c.toml", [anvil.url], anvil.chain_id, poll_interval=0.05, start_block="1"
    )
    created = run_cli("apps", "create", "watcher-test", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    app_id = json.loads(created.stdout)["app_id"]
    conn = connect_database(data_dir, db, load_config(env={}).store)
    with transaction(conn):
        watched.add_addresses(conn, app_id, CHAIN_TYPE, [receiver], now=time.time())
    conn.close()

    sent: list[str] = []
    done_sending = trio.Event()

    async def send_transfers() -> None:
        for value in range(1, 61):
            sent.append(await anvil.transfer(anvil.accounts[value % 5], receiver, value))
            await trio.sleep(0.03)
        done_sending.set()

    servers: list[ServerProcess] = []
    try:
        async with trio.open_nursery() as nursery:
            servers.append(start_server_process(data_dir, "--config", str(config)))
            nursery.start_soon(send_transfers)
            for _ in range(2):
                # Kill while transfers keep coming, once some records are in.
                with trio.fail_after(30):
                    while len(_stored(db, receiver)) < len(sent) // 2 + 3:
                        await trio.sleep(0.02)
                servers[-1].kill()
                await trio.sleep(0.3)  # blocks arrive while the server is down
                servers.append(start_server_process(data_dir, "--config", str(config)))
            await done_sending.wait()
        head = await anvil.block_number()
        with trio.fail_after(30):
            while _checkpoint(db) < head:
                await trio.sleep(0.05)
        stored = _stored(db, receiver)
        assert set(stored) == {h.lower() for h in sent}  # nothing lost
        assert len(stored) == len(sent) == 60  # nothing twice
        assert all(removed == 0 for _, removed in stored.values())
        log = servers[-1].log()
        assert "resuming after block" in log
        assert servers[-1].terminate() == 0
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.kill()


def test_readme_chain_snippet_works(tmp_path: Path, anvil: Anvil) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Watching a chain") :]
    snippet = section[
        section.index("```toml") + len("```toml") : section.index(
            "```\n", section.index("```toml") + 7
        )
    ]
    config = tmp_path / "readme.toml"
    config.write_text(snippet.replace("8545", str(anvil.port)))
    (chain,) = load_config(config, env={}).chains
    assert chain.ws_url == anvil.ws_url and chain.chain_id == anvil.chain_id
    # At debug level (rtserver's), with the RPC client busy polling the node.
    server = start_server_process(
        tmp_path / "data", "--config", str(config), "--log-level", "debug"
    )
    try:
        deadline = 200
        while deadline:
            ready = httpx.get(server.url + "/readyz", timeout=5)
            if ready.status_code == 200:
                break
            deadline -= 1
            time.sleep(0.05)
        assert ready.json()["checks"][f"chain anvil:{anvil.chain_id}"] == "ok", ready.text
        assert "subscribed to newHeads" in server.log()
        assert server.terminate() == 0
        # Libraries (the HTTP client's connection steps) stay below the noise floor:
        # every DEBUG line is rtserver's own.
        debug = [line.split()[2] for line in server.log().splitlines() if " DEBUG " in line]
        assert debug and all(name.startswith("rtserver") for name in debug), set(debug)
    finally:
        if server.proc.poll() is None:
            server.kill()

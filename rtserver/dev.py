"""``rtserver dev``: a local chain, a server following it and a demo app, in one command.

It finds (or installs from npm, as ``./scripts/test`` does) the Anvil node, runs it as a
child process inside the server's nursery (stopped with the server, Ctrl-C stops both),
configures a chain for it, creates a demo app watching one of Anvil's funded accounts and
what every protocol needs to show it (a demo user whose Safe is that account, with a
channel access token; JWTs signed with a throw-away secret), serves the demo page
(``rtserver/demo.py``), and prints what it started and where once the server listens,
with a ready-made test transfer. Data goes to a throw-away directory unless
``--data-dir`` is given.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import trio

from rtserver.clock import Clock
from rtserver.components import Component, ComponentFactory, Service
from rtserver.config import ChainConfig, Config, JwtConfig
from rtserver.core import Core
from rtserver.exceptions import ConfigError
from rtserver.store import apps, connect_database, transaction, users, wallets, watched

#: Anvil's chain id, and its first two funded, unlocked accounts: the demo sends from
#: the first to the second, which the demo app watches.
CHAIN_ID = 31337
SENDER = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
DEMO_ADDRESS = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
#: The demo app's end user: its Safe (for the wallet socket) is the demo address.
DEMO_USER = "demo"
#: How long the local node may take to answer its first request.
_ANVIL_START_TIMEOUT = 30.0

_REPO = Path(__file__).resolve().parent.parent


def find_anvil(install: bool = True) -> str:
    """The Anvil executable: ``ANVIL_BIN``, the repository's ``.tools/`` (installed by
    ``scripts/install-tools`` first if missing and ``install``), or ``anvil`` on PATH."""
    wrappers = []
    if os.environ.get("ANVIL_BIN"):
        wrappers.append(Path(os.environ["ANVIL_BIN"]))
    local = _REPO / ".tools/node_modules/@foundry-rs/anvil/bin.mjs"
    wrappers.append(local)
    installer = _REPO / "scripts/install-tools"
    if install and not local.exists() and installer.exists() and not shutil.which("anvil"):
        print("rtserver dev: installing the Anvil node from npm (once)…", flush=True)
        subprocess.run([str(installer)], check=True)
    for path in wrappers:
        if path.exists():
            if path.name == "bin.mjs":
                # The platform binary itself: stopping the node wrapper may orphan it.
                for native in sorted(path.parent.parent.glob("anvil-*/bin/anvil")):
                    if os.access(native, os.X_OK):
                        return str(native)
            return str(path)
    found = shutil.which("anvil")
    if found:
        return found
    raise ConfigError("dev", "no Anvil node: run scripts/install-tools or put anvil on PATH")


@dataclass(frozen=True)
class DemoSetup:
    """What ``rtserver dev`` created for the demo: the app, its key, its user's token."""

    app_id: str
    api_key: str
    user_id: str
    #: The demo user's channel access token (``/api/v1/ws?token=``).
    channel_token: str


def prepare(data_dir: Path, config: Config) -> DemoSetup:
    """The demo app (created once per data directory) watching the demo address, its user
    with a Safe at that address, and a channel access token for the user.

    A data directory used before keeps its app: the key is then unknown (it is stored
    hashed), so a new one is made by creating another demo app.
    """
    conn = connect_database(data_dir, config.database_path, config.store)
    try:
        now = Clock.system().time()
        with transaction(conn):
            created = apps.create_app(conn, "demo", None, now=now)
            app_id = created.app.app_id
            watched.add_addresses(conn, app_id, "anvil", [DEMO_ADDRESS], now=now)
            wallets.put_safe(
                conn,
                users.UserRef(app_id, DEMO_USER),
                chain_type="anvil",
                chain_id=CHAIN_ID,
                address=DEMO_ADDRESS,
                signer_id=SENDER,
                threshold=1,
                now=now,
            )
            issued = users.issue_token(
                conn, app_id, DEMO_USER, ttl=config.channels.access_token_ttl, now=now
            )
    finally:
        conn.close()
    return DemoSetup(app_id, created.api_key, DEMO_USER, issued.token)


def with_demo_app(config: Config, setup: DemoSetup) -> Config:
    """The wallet socket's JWTs name the demo app's users (``jwt.app_id``)."""
    return config.replace(jwt=dataclasses.replace(config.jwt, app_id=setup.app_id))


def anvil_component(binary: str, port: int) -> ComponentFactory:
    """The local node as a service of the server: started before the chain watchers
    (components start in order), stopped when the server stops."""

    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        command = [binary, "--host", "127.0.0.1", "--port", str(port)]
        command += ["--chain-id", str(CHAIN_ID), "--silent"]
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                partial(trio.run_process, command, stdout=subprocess.DEVNULL, check=False)
            )
            await _wait_answering(f"http://127.0.0.1:{port}")
            task_status.started()
            await process.wait()
            raise RuntimeError(f"the local Anvil node exited with {process.returncode}")

    def factory(core: Core) -> Component:
        return Component("dev-anvil", services=(Service("anvil", run),))

    return factory


async def _wait_answering(url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    async with httpx.AsyncClient(timeout=2) as client:
        with trio.fail_after(_ANVIL_START_TIMEOUT):
            while True:
                try:
                    if (await client.post(url, json=body)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.1)


def dev_config(base: Config, data_dir: Path, anvil_port: int) -> Config:
    chain = ChainConfig(
        chain_type="anvil",
        chain_id=CHAIN_ID,
        rpc_urls=(f"http://127.0.0.1:{anvil_port}",),
        ws_url=f"ws://127.0.0.1:{anvil_port}",
        poll_interval=0.5,
    )
    # Secrets of a local server: made up each run unless configured.
    server = dataclasses.replace(
        base.server,
        data_dir=str(data_dir),
        admin_token=base.server.admin_token or "dev-" + secrets.token_urlsafe(18),
    )
    jwt = base.jwt
    if not jwt.enabled:
        jwt = JwtConfig(hs256_secret=secrets.token_urlsafe(32), algorithms=("HS256",))
    return base.replace(server=server, chains=(chain,), jwt=jwt)


def banner(url: str, config: Config, setup: DemoSetup, anvil_port: int, throwaway: bool) -> str:
    """What ``rtserver dev`` prints once the server at ``url`` listens."""
    api_key = setup.api_key
    ws = url.replace("http://", "ws://") + f"/tx/api/v1/transaction/ws?api_key={api_key}"
    transfer = (
        f"curl -s 127.0.0.1:{anvil_port} -H 'content-type: application/json' -d "
        '\'{"jsonrpc":"2.0","id":1,"method":"eth_sendTransaction","params":[{"from":"'
        + SENDER
        + '","to":"'
        + DEMO_ADDRESS
        + '","value":"0xde0b6b3a7640000"}]}\''
    )
    where = f"{config.data_dir}" + (" (thrown away on exit)" if throwaway else "")
    return "\n".join(
        [
            "rtserver dev: a local chain, a server following it, a demo app",
            f"  server    {url}",
            f"  demo      {url}/demo  (live pushes of every protocol, a test-transfer button)",
            f"  dashboard {url}/dashboard",
            f"  admin     {config.server.admin_token}",
            f"  chain     anvil, chain id {CHAIN_ID}, at http://127.0.0.1:{anvil_port}",
            f"  data      {where}",
            f"  API key   {api_key}",
            f"  watching  {DEMO_ADDRESS} (Anvil's account #1)",
            f"  stream    {ws}",
            "  send a test transfer (1 ETH to the watched address):",
            f"    {transfer}",
            "Ctrl-C stops everything.",
        ]
    )


__all__ = [
    "CHAIN_ID",
    "DEMO_ADDRESS",
    "DEMO_USER",
    "SENDER",
    "DemoSetup",
    "anvil_component",
    "banner",
    "dev_config",
    "find_anvil",
    "prepare",
    "with_demo_app",
]

"""A real Anvil node for tests: start it on a free loopback port, drive it over JSON-RPC.

``./scripts/test`` installs Anvil from npm (``@foundry-rs/anvil``) and exports
``ANVIL_BIN``; :func:`anvil_binary` also finds it in ``.tools/`` when run by plain pytest.
Anvil's dev accounts are unlocked, so transactions are sent with ``eth_sendTransaction``
(no signing here). Anvil mines one block per transaction unless told otherwise.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
from eth_abi import encode
from eth_hash.auto import keccak

from rtserver.dev import find_anvil
from rtserver.exceptions import ConfigError

REPO = Path(__file__).resolve().parent.parent
CONTRACTS = REPO / "contracts"


def anvil_binary() -> str | None:
    """The Anvil executable (the native binary when the npm wrapper is given), or None:
    the same lookup as ``rtserver dev``, without installing."""
    try:
        return find_anvil(install=False)
    except ConfigError:
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


def calldata(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (selector(signature) + encode(types, args)).hex()


@dataclass
class Anvil:
    """A running Anvil process and a JSON-RPC client for it."""

    proc: subprocess.Popen[bytes]
    port: int
    chain_id: int
    log_path: Path
    accounts: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # -- JSON-RPC ----------------------------------------------------------------------

    async def rpc(self, method: str, *params: Any) -> Any:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
            )
        body = response.json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    async def block_number(self) -> int:
        return int(await self.rpc("eth_blockNumber"), 16)

    async def send(self, tx: dict[str, Any]) -> str:
        """Send from an unlocked account; returns the hash (mined at once with automine)."""
        return str(await self.rpc("eth_sendTransaction", tx))

    async def receipt(self, tx_hash: str) -> dict[str, Any]:
        for _ in range(200):
            receipt = await self.rpc("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return dict(receipt)
            await trio.sleep(0.05)
        raise AssertionError(f"{tx_hash} was not mined")

    async def transfer(self, sender: str, to: str, value: int) -> str:
        return await self.send({"from": sender, "to": to, "value": hex(value)})

    async def call(
        self,
        sender: str,
        to: str,
        signature: str,
        types: list[str],
        args: list[Any],
        *,
        value: int = 0,
        gas: int | None = None,
    ) -> str:
        """Call a contract function in a transaction; returns the tx hash."""
        tx: dict[str, Any] = {
            "from": sender,
            "to": to,
            "data": calldata(signature, types, args),
            "value": hex(value),
        }
        if gas is not None:
            # A fixed gas limit lets a reverting call be mined instead of failing estimation.
            tx["gas"] = hex(gas)
        return await self.send(tx)

    async def deploy(
        self, name: str, types: list[str] | None = None, args: list[Any] | None = None
    ) -> str:
        """Deploy ``contracts/<name>.bin`` with constructor ``args``; returns its address."""
        code = (CONTRACTS / f"{name}.bin").read_text().strip()
        data = "0x" + code + (encode(types, args or []).hex() if types else "")
        tx_hash = await self.send({"from": self.accounts[0], "data": data})
        receipt = await self.receipt(tx_hash)
        assert receipt["status"] == "0x1", receipt
        return str(receipt["contractAddress"]).lower()

    async def mine(self, blocks: int = 1) -> None:
        await self.rpc("anvil_mine", hex(blocks))

    async def reorg(self, depth: int, txs: list[tuple[dict[str, Any] | str, int]]) -> None:
        """Replace the last ``depth`` blocks; ``txs``: (transaction request or raw hex, block offset)."""
        await self.rpc("anvil_reorg", depth, [[tx, offset] for tx, offset in txs])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_anvil(tmp_dir: Path, *, chain_id: int = 31337, port: int | None = None) -> Anvil:
    """Start Anvil on a free loopback port and wait until it answers."""
    binary = anvil_binary()
    if binary is None:
        raise RuntimeError("Anvil is not installed: run ./scripts/test once")
    port = port or _free_port()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    log_path = tmp_dir / f"anvil-{port}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    anvil = Anvil(proc, port, chain_id, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"anvil exited with {proc.returncode}: {log_path.read_text()}")
        try:
            body = httpx.post(
                anvil.url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_accounts", "params": []},
                timeout=1,
            ).json()
            anvil.accounts = [a.lower() for a in body["result"]]
            return anvil
        except (httpx.HTTPError, json.JSONDecodeError, KeyError):
            time.sleep(0.05)
    anvil.stop()
    raise RuntimeError("anvil did not start within 30 s")

"""Balance reads on a real Anvil node: the reads of many clients connecting at once are
coalesced into a few JSON-RPC round trips, and each still gets its own account's figures."""

from __future__ import annotations

from pathlib import Path

import trio
from anvil import Anvil

from rtserver.balances import WalletBalances
from rtserver.clock import Clock
from rtserver.config import ChainConfig
from rtserver.metrics import Metrics

from conftest import make_config

UNIT = 10**18


async def test_concurrent_reads_are_coalesced_and_exact(tmp_path: Path, anvil: Anvil) -> None:
    chain = ChainConfig(
        chain_type="anvil", chain_id=anvil.chain_id, rpc_urls=(anvil.url,), rpc_timeout=5.0
    )
    config = make_config(tmp_path).replace(chains=(chain,))
    metrics = Metrics()
    balances = WalletBalances(config, Clock.system(), metrics)
    funded = anvil.accounts[1]
    empty = [f"0x{n:040x}" for n in range(1, 400)]
    got: dict[str, int] = {}

    async def ask(account: str) -> None:
        got[account] = (await balances.current(anvil.chain_id, account)).amounts[0]

    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for account in [funded, *empty]:
                    nursery.start_soon(ask, account)
    finally:
        await balances.aclose()
    assert got[funded] == 10_000 * UNIT  # Anvil's funded accounts
    assert all(got[account] == 0 for account in empty)
    heads = metrics.registry.get_sample_value(
        "rtserver_chain_rpc_duration_seconds_count",
        {"chain": f"anvil:{anvil.chain_id}", "method": "eth_blockNumber"},
    )
    # 400 clients, 200 accounts per read at most: a handful of round trips, not 400.
    assert heads is not None and heads <= 4, heads

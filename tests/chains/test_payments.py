"""Payment proposals settled by a real Anvil chain: exact and at-least amounts, native
coin and ERC-20, confirmations and a reorg, the merchant webhook, expiry across restarts
of a real server process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import trio
from anvil import Anvil
from delivery.receiver import verify, webhook_receiver
from payments.helpers import (
    merchant_server,
    nothing_more,
    open_status,
    payments_config,
    receive,
    wait_processed,
)

from chains.conftest import chain_config
from rtserver.server import DEFAULT_COMPONENTS

from conftest import ServerProcess, rtserver_client, run_cli

MILLI_ETH = 10**15


async def _mined_in(anvil: Anvil, tx_hash: str) -> int:
    return int((await anvil.receipt(tx_hash))["blockNumber"], 16)


async def test_the_exact_transfer_settles_every_socket_gets_settlement_once(
    tmp_path: Path, anvil: Anvil
) -> None:
    buyer, merchant = anvil.accounts[1], anvil.accounts[5]
    config = payments_config(tmp_path, chains=(chain_config(anvil),))
    async with (
        webhook_receiver() as receiver,
        merchant_server(config, DEFAULT_COMPONENTS, webhook_url=receiver.url) as shop,
        trio.open_nursery() as nursery,
    ):
        proposal = await shop.propose(receivingAddress=merchant, amount=str(MILLI_ETH))
        tx_id = proposal["transactionId"]
        sockets = [await open_status(nursery, shop.server.url, tx_id) for _ in range(3)]
        for ws in sockets:
            assert (await receive(ws))["status"] == "pending"

        # Too small: recorded by the watcher, settles nothing.
        small = await anvil.transfer(buyer, merchant, MILLI_ETH - 1)
        await wait_processed(shop.server.core, await _mined_in(anvil, small))
        for ws in sockets:
            await nothing_more(ws, 0.2)
        assert (await shop.poll(tx_id))["status"] == "pending"

        paid = await anvil.transfer(buyer, merchant, MILLI_ETH)
        settlement = {
            "type": "settlement",
            "transactionId": tx_id,
            "status": "settled",
            "suiTxDigest": paid,
        }
        for ws in sockets:
            message = await receive(ws)
            assert message == settlement  # no buyer address: the document's privacy rule
        # Once: a second payment to the address settles nothing more.
        again = await anvil.transfer(buyer, merchant, MILLI_ETH)
        await wait_processed(shop.server.core, await _mined_in(anvil, again))
        for ws in sockets:
            await nothing_more(ws, 0.2)

        status = {**settlement, "type": "status"}
        assert await shop.poll(tx_id) == status
        late = await open_status(nursery, shop.server.url, tx_id)
        assert await receive(late) == status  # connects after settlement: settled at once
        await nothing_more(late)

        await receiver.wait_for(1)
        request = receiver.requests[0]
        assert shop.webhook_secret is not None
        assert verify(shop.webhook_secret, request.headers, request.body)
        event = json.loads(request.body)
        assert event["type"] == "payment.settled"
        assert event["data"]["transactionId"] == tx_id and event["data"]["suiTxDigest"] == paid
        assert buyer not in request.body.decode()
        assert shop.server.core.watched.proposal_count() == 0
        for ws in [*sockets, late]:
            await ws.aclose()


async def test_erc20_at_least_and_exact_amounts(tmp_path: Path, anvil: Anvil) -> None:
    owner, merchant, other_merchant = anvil.accounts[0], anvil.accounts[6], anvil.accounts[7]
    config = payments_config(tmp_path, chains=(chain_config(anvil),))
    async with merchant_server(config, DEFAULT_COMPONENTS) as shop:
        token = await anvil.deploy(
            "TestToken", ["string", "string", "uint8", "uint256"], ["Test", "TT", 6, 10**12]
        )
        decoy = await anvil.deploy(
            "TestToken", ["string", "string", "uint8", "uint256"], ["Decoy", "DC", 6, 10**12]
        )
        by_token = (
            await shop.propose(
                receivingAddress=merchant, token=token, amount="500", amountMatch="atLeast"
            )
        )["transactionId"]
        exact = (await shop.propose(receivingAddress=other_merchant, amount="1000"))[
            "transactionId"
        ]
        transfer = "transfer(address,uint256)"
        wrong_token = await anvil.call(
            owner, decoy, transfer, ["address", "uint256"], [merchant, 900]
        )
        overpaid = await anvil.transfer(owner, other_merchant, 1001)  # exact: not 1000
        await wait_processed(shop.server.core, await _mined_in(anvil, overpaid))
        await wait_processed(shop.server.core, await _mined_in(anvil, wrong_token))
        assert (await shop.poll(by_token))["status"] == "pending"
        assert (await shop.poll(exact))["status"] == "pending"

        paid = await anvil.call(owner, token, transfer, ["address", "uint256"], [merchant, 600])
        await wait_processed(shop.server.core, await _mined_in(anvil, paid))
        settled = await shop.poll(by_token)
        assert settled["status"] == "settled" and settled["suiTxDigest"] == paid
        assert (await shop.poll(exact))["status"] == "pending"


async def test_a_reorg_before_the_confirmations_keeps_the_proposal_pending(
    tmp_path: Path, anvil: Anvil
) -> None:
    buyer, merchant = anvil.accounts[2], anvil.accounts[8]
    config = payments_config(tmp_path, chains=(chain_config(anvil, confirmations=2),))
    async with merchant_server(config, DEFAULT_COMPONENTS) as shop, trio.open_nursery() as nursery:
        tx_id = (await shop.propose(receivingAddress=merchant, amount=str(MILLI_ETH)))[
            "transactionId"
        ]
        ws = await open_status(nursery, shop.server.url, tx_id)
        assert (await receive(ws))["status"] == "pending"
        dropped = await anvil.transfer(buyer, merchant, MILLI_ETH)  # mined, 0 confirmations
        await anvil.reorg(1, [])  # that block is replaced by an empty one
        assert await anvil.rpc("eth_getTransactionByHash", dropped) is None
        await anvil.mine(4)
        await wait_processed(shop.server.core, await anvil.block_number() - 2)
        await nothing_more(ws, 0.3)
        assert (await shop.poll(tx_id))["status"] == "pending"

        # The same payment, confirmed this time, settles it.
        paid = await anvil.transfer(buyer, merchant, MILLI_ETH)
        await nothing_more(ws, 0.3)  # not before its two confirmations
        assert (await shop.poll(tx_id))["status"] == "pending"
        await anvil.mine(2)
        message = await receive(ws)
        assert message["type"] == "settlement" and message["suiTxDigest"] == paid
        await ws.aclose()


async def test_expiry_is_applied_after_a_restart(
    tmp_path: Path, anvil: Anvil, server_process: Callable[..., ServerProcess]
) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "rtserver.toml"
    config.write_text(
        f'[[chains]]\nchain_type = "anvil"\nchain_id = {anvil.chain_id}\n'
        f'rpc_urls = ["{anvil.url}"]\npoll_interval = 0.1\n'
    )
    created = run_cli("apps", "create", "shop", "--data-dir", str(data_dir))
    auth = {"Authorization": "Bearer " + json.loads(created.stdout)["api_key"]}

    def start() -> ServerProcess:
        return server_process("--config", str(config), data_dir=data_dir)

    proc = await trio.to_thread.run_sync(start)
    body = {
        "chainType": "anvil",
        "chainId": anvil.chain_id,
        "token": "native",
        "amount": "1",
        "receivingAddress": anvil.accounts[9],
        "expiresIn": 3,
    }
    async with rtserver_client(proc.url, headers=auth) as client:
        proposal = (await client.post("/api/identipay/v1/proposals", json=body)).json()
    tx_id = proposal["transactionId"]
    assert await trio.to_thread.run_sync(proc.terminate) == 0  # before it expires
    await trio.sleep(3.5)  # it expires while no server runs
    proc = await trio.to_thread.run_sync(start)
    async with rtserver_client(proc.url, headers=auth) as client:
        with trio.fail_after(5):
            while True:
                status = await client.get(f"/api/identipay/v1/transactions/{tx_id}/status")
                if status.json()["status"] != "pending":
                    break
                await trio.sleep(0.05)
        assert status.json() == {
            "type": "status",
            "transactionId": tx_id,
            "status": "expired",
            "suiTxDigest": None,
        }
        # The address is free again: a new proposal may receive there.
        assert (await client.post("/api/identipay/v1/proposals", json=body)).status_code == 201
    assert await trio.to_thread.run_sync(proc.terminate) == 0


#: The document's Python example, verbatim but for its host.
DOCUMENT_EXAMPLE = """
import asyncio
import json
import websockets

async def monitor_transaction(tx_id: str):
    uri = f"wss://api.identipay.com/ws/transactions/{tx_id}"

    async with websockets.connect(uri) as websocket:
        print(f"Connected to {uri}")

        async for message in websocket:
            data = json.loads(message)

            if data['type'] == 'status':
                print(f"Status: {data['status']}")
            elif data['type'] == 'settlement':
                print(f"Settled! Digest: {data['suiTxDigest']}")
                break  # Close after settlement
            elif data['type'] == 'error':
                print(f"Error: {data['message']}")
                break
"""


async def test_the_documents_python_example_sees_the_settlement(
    tmp_path: Path, anvil: Anvil
) -> None:
    buyer, merchant = anvil.accounts[3], anvil.accounts[4]
    config = payments_config(tmp_path, chains=(chain_config(anvil),))
    async with merchant_server(config, DEFAULT_COMPONENTS) as shop:
        tx_id = (await shop.propose(receivingAddress=merchant, amount=str(MILLI_ETH)))[
            "transactionId"
        ]
        host = shop.server.url.replace("http://", "ws://")
        printed: list[str] = []
        namespace: dict[str, object] = {"print": printed.append}
        exec(DOCUMENT_EXAMPLE.replace("wss://api.identipay.com", host), namespace)

        def run_example(transaction_id: str) -> None:
            asyncio.run(namespace["monitor_transaction"](transaction_id))  # type: ignore[operator]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, run_example, tx_id)
            with trio.fail_after(10):
                while "Status: pending" not in printed:
                    await trio.sleep(0.02)
            paid = await anvil.transfer(buyer, merchant, MILLI_ETH)
        assert printed[1:] == ["Status: pending", f"Settled! Digest: {paid}"]
        # An unknown id: the example prints the error and stops.
        printed.clear()
        await trio.to_thread.run_sync(run_example, "550e8400-e29b-41d4-a716-446655440000")
        assert printed[1:] == ["Error: Transaction not found"]

"""The wallet socket end to end on a real Anvil chain: registry, auth, the initial
sequence, live transfers and balances per user, KYC/IBAN pushes, the HTTP fallback."""

from __future__ import annotations

import re
from pathlib import Path

from anvil import Anvil
from trio_websocket import open_websocket_url

from rtserver.protocols.wallet._wire import checksum
from wallet.helpers import (
    ADMIN_HEADERS,
    INITIAL,
    SYMBOL,
    UNIT,
    authenticate,
    create_app,
    deploy_token,
    jwt_for,
    next_of,
    put_safe,
    quiet,
    recv,
    request,
    send_token,
    wallet_config,
    ws_url,
)

from conftest import rtserver_client, run_server

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_transfer_reaches_every_socket_of_its_user_only(tmp_path: Path, anvil: Anvil) -> None:
    token = await deploy_token(anvil)
    data_dir = tmp_path / "data"
    app_id = create_app(data_dir)
    alice_safe, bob_safe = anvil.accounts[3], anvil.accounts[4]
    chain_id = anvil.chain_id
    config = wallet_config(data_dir, anvil, token, app_id)
    async with run_server(config) as server:
        await put_safe(server.url, app_id, "alice", chain_id, alice_safe)
        await put_safe(server.url, app_id, "bob", chain_id, bob_safe)
        async with rtserver_client(server.url, timeout=10) as client:
            answer = await client.put(
                f"/admin/v1/apps/{app_id}/users/alice/kyc",
                json={"state": "PENDING"},
                headers=ADMIN_HEADERS,
            )
            assert answer.json() == {"previous_state": None, "new_state": "PENDING"}
            answer = await client.put(
                f"/admin/v1/apps/{app_id}/users/alice/safes/{chain_id}/iban",
                json={"iban": "FR7630006000011234567890189", "bic": "AGRIFRPP", "state": "PENDING"},
                headers=ADMIN_HEADERS,
            )
            assert answer.status_code == 200, answer.text
        alice_jwt, bob_jwt = jwt_for("alice", app_id), jwt_for("bob", app_id)

        async with (
            open_websocket_url(ws_url(server.url, chain_id)) as alice1,
            open_websocket_url(ws_url(server.url)) as alice2,  # the default chain
            open_websocket_url(ws_url(server.url, chain_id)) as bob,
        ):
            first = await authenticate(alice1, alice_jwt)
            await authenticate(alice2, alice_jwt)
            await authenticate(bob, bob_jwt)

            # The initial sequence, complete and in order.
            assert [m["type"] for m in first] == INITIAL
            assert all(ISO_MS.fullmatch(m["timestamp"]) for m in first)
            auth, balance, transactions, chains, recovery, user = (m["data"] for m in first)
            assert auth == {
                "safeAddress": checksum(alice_safe),
                "message": "Connected to real-time updates",
            }
            balances = {b["symbol"]: b for b in balance["balance"]["balances"]}
            assert balances[SYMBOL] == {
                "token": checksum(token),
                "symbol": SYMBOL,
                "balance": "0.0",
                "decimals": 18,
            }
            assert balances["ETH"]["balance"] == "10000.0"
            assert transactions == {
                "safeAddress": checksum(alice_safe),
                "transactions": {"data": []},
            }
            assert chains == {"defaultChainId": chain_id, "supportedChainIds": [chain_id]}
            assert recovery["safeAddress"] == checksum(alice_safe)
            assert recovery["recoveryEnabled"] is False and recovery["canExecute"] is False
            assert user == {
                "id": "alice",
                "ky": "PENDING",
                "signers": [
                    {
                        "id": "signer-alice",
                        "safes": [
                            {
                                "address": checksum(alice_safe),
                                "threshold": 1,
                                "iban": {
                                    "chainId": chain_id,
                                    "iban": "FR7630006000011234567890189",
                                    "bic": "AGRIFRPP",
                                    "state": "PENDING",
                                },
                            }
                        ],
                    }
                ],
            }

            # An ERC-20 transfer to alice's Safe: new_transaction and balance_update on
            # both of her sockets, with the right figures; nothing on bob's.
            tx_hash = await send_token(anvil, token, alice_safe, 3 * UNIT // 2)
            for ws in (alice1, alice2):
                pushed = await next_of(ws, "new_transaction")
                data = pushed["data"]
                assert data["address"] == checksum(alice_safe)
                item = data["newTransaction"]
                assert item["hash"] == tx_hash
                assert item["from"] == checksum(anvil.accounts[0])
                assert item["to"] == checksum(alice_safe)
                assert item["tokenAddress"] == checksum(token)
                assert item["tokenType"] == "ERC20" and item["tokenSymbol"] == SYMBOL
                assert item["value"] == "1.5" and item["direction"] == "IN"
                assert ISO_MS.fullmatch(item["timestamp"])
                assert data["recentTransactions"] == [item]
                assert data["transactionCount"] == 1 and data["historyLimit"] == 5
                update = await next_of(ws, "balance_update")
                assert update["data"]["address"] == checksum(alice_safe)
                assert update["data"]["balance"] == str(3 * UNIT // 2)
                assert update["data"]["token"] == checksum(token)
                assert update["data"]["symbol"] == SYMBOL and update["data"]["decimals"] == 18
                assert ISO_MS.fullmatch(update["data"]["updated_at"])
            await quiet(bob)

            # Requests after auth, with requestId echoed.
            answer = await request(alice1, {"type": "get_balance", "requestId": "b-1"})
            assert answer["type"] == "balance_data" and answer["data"]["requestId"] == "b-1"
            assert {b["symbol"]: b["balance"] for b in answer["data"]["balance"]["balances"]}[
                SYMBOL
            ] == "1.5"
            listed = await request(
                alice1,
                {
                    "type": "get_transactions",
                    "requestId": "t-1",
                    "params": {"limit": 10, "startDate": "2000-01-01", "endDate": "2999-12-31"},
                },
            )
            assert listed["type"] == "transaction_data" and listed["data"]["requestId"] == "t-1"
            assert [t["hash"] for t in listed["data"]["transactions"]["data"]] == [tx_hash]
            none = await request(
                alice1, {"type": "get_transactions", "params": {"endDate": "2001-01-01"}}
            )
            assert none["data"]["transactions"]["data"] == [] and "requestId" not in none["data"]

            # KYC and IBAN changes through the admin API: pushed with the stored previous state.
            async with rtserver_client(server.url, timeout=10) as client:
                answer = await client.put(
                    f"/admin/v1/apps/{app_id}/users/alice/kyc",
                    json={"state": "VERIFIED"},
                    headers=ADMIN_HEADERS,
                )
                assert answer.json() == {"previous_state": "PENDING", "new_state": "VERIFIED"}
                await client.put(
                    f"/admin/v1/apps/{app_id}/users/alice/safes/{chain_id}/iban",
                    json={
                        "iban": "FR7630006000011234567890189",
                        "bic": "AGRIFRPP",
                        "state": "VERIFIED",
                    },
                    headers=ADMIN_HEADERS,
                )
            for ws in (alice1, alice2):
                kyc = await recv(ws)
                assert kyc["type"] == "user.ky.updated"
                assert kyc["data"]["safeAddress"] == checksum(alice_safe)
                assert (kyc["data"]["previousKyc"], kyc["data"]["newKyc"]) == (
                    "PENDING",
                    "VERIFIED",
                )
                iban = await recv(ws)
                assert iban["type"] == "user.iban.updated"
                assert iban["data"]["iban"] == "FR7630006000011234567890189"
                assert (iban["data"]["previousState"], iban["data"]["newState"]) == (
                    "PENDING",
                    "VERIFIED",
                )
            await quiet(bob)

            # The HTTP fallback answers the same data as the socket.
            socket_balance = (await request(alice1, {"type": "get_balance"}))["data"]
            socket_txs = (await request(alice1, {"type": "get_transactions"}))["data"]
            headers = {"Authorization": f"Bearer {alice_jwt}", "X-Blockchain-Id": str(chain_id)}
            async with rtserver_client(server.url, timeout=10, headers=headers) as client:
                assert (await client.get("/v1.2/users/me/balances")).json() == socket_balance
                assert (await client.get("/v1.2/users/me/transactions")).json() == socket_txs
                me = (await client.get("/v1.2/users/me")).json()
                assert me["id"] == "alice" and me["ky"] == "VERIFIED"
                bad = await client.get("/v1.2/users/me", headers={"Authorization": "Bearer nope"})
                assert bad.status_code == 401 and bad.json()["message"] == "Invalid JWT token"
                wrong = await client.get("/v1.2/users/me", headers={"X-Blockchain-Id": "999"})
                assert wrong.status_code == 400

        # A native transfer out of bob's Safe (an Anvil account) is an OUT transaction.
        async with open_websocket_url(ws_url(server.url, chain_id)) as bob:
            await authenticate(bob, bob_jwt)
            sent = await anvil.transfer(bob_safe, anvil.accounts[5], UNIT)
            pushed = await next_of(bob, "new_transaction")
            item = pushed["data"]["newTransaction"]
            assert item["hash"] == sent.lower() and item["direction"] == "OUT"
            assert item["tokenType"] == "NATIVE" and item["value"] == "1.0"
            update = await next_of(bob, "balance_update")
            assert update["data"]["symbol"] == "ETH"
            assert int(update["data"]["balance"]) < 9999 * UNIT  # less the value and the gas


async def test_a_reorg_that_drops_a_transfer_reads_the_balance_again(
    tmp_path: Path, anvil: Anvil
) -> None:
    token = await deploy_token(anvil)
    data_dir = tmp_path / "data"
    app_id = create_app(data_dir)
    safe, chain_id = anvil.accounts[5], anvil.chain_id
    async with run_server(wallet_config(data_dir, anvil, token, app_id)) as server:
        await put_safe(server.url, app_id, "carol", chain_id, safe)
        async with open_websocket_url(ws_url(server.url, chain_id)) as ws:
            await authenticate(ws, jwt_for("carol", app_id))
            await anvil.mine(1)  # the token's deployment stays below the fork
            await send_token(anvil, token, safe, 2 * UNIT)
            update = await next_of(ws, "balance_update")
            assert update["data"]["balance"] == str(2 * UNIT)
            # The block with the transfer is replaced by one without it: re-read, never
            # arithmetic on deltas, gives the Safe's real balance again.
            await anvil.reorg(1, [])
            await anvil.mine(1)  # the next block reveals the reorg to the watcher
            update = await next_of(ws, "balance_update", within=30)
            assert update["data"]["token"] == checksum(token)
            assert update["data"]["balance"] == "0"
            answer = await request(ws, {"type": "get_balance", "requestId": "after"})
            balances = {b["symbol"]: b["balance"] for b in answer["data"]["balance"]["balances"]}
            assert balances[SYMBOL] == "0.0"

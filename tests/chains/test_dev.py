"""``rtserver dev`` as a newcomer runs it: one command brings up a local chain, a server
following it and a demo app; the printed test transfer is pushed to the printed stream;
Ctrl-C stops the server and the chain, and the throw-away data goes."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx
import trio
from trio_websocket import open_websocket_url

from rtserver.dev import DEMO_ADDRESS

from conftest import read_dev_banner, start_dev_process


async def test_one_command_brings_up_a_chain_a_server_and_a_demo_that_pushes() -> None:
    dev = await trio.to_thread.run_sync(start_dev_process)
    proc, port, anvil_port = dev.proc, dev.port, dev.anvil_port
    try:
        banner = await trio.to_thread.run_sync(read_dev_banner, proc)
        data_dir = Path(banner["data"].split(" (")[0])
        assert await trio.to_thread.run_sync(data_dir.exists)
        assert banner["watching"].startswith(DEMO_ADDRESS)
        async with httpx.AsyncClient() as client:
            # Printed once the server listens: the first request a newcomer makes works.
            assert (await client.get(banner["server"] + "/healthz")).status_code == 200
        async with httpx.AsyncClient() as client:  # ready: the chain followed
            with trio.fail_after(30):
                while True:
                    try:
                        if (await client.get(banner["server"] + "/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await trio.sleep(0.1)
        stream = banner["stream"]
        assert stream.startswith(f"ws://127.0.0.1:{port}/") and "api_key=rtk_" in stream
        async with open_websocket_url(stream) as ws:
            with trio.fail_after(10):
                assert json.loads(await ws.get_message())["type"] == "connected"
            # The printed test transfer, as printed (a curl command's JSON body).
            body = json.loads(re.search(r"-d '(.*)'$", banner["curl"]).group(1))  # type: ignore[union-attr]
            async with httpx.AsyncClient() as client:
                sent = (await client.post(f"http://127.0.0.1:{anvil_port}", json=body)).json()
            with trio.fail_after(20):
                push = json.loads(await ws.get_message())
            assert push["type"] == "transaction"
            assert push["data"]["txhash"] == sent["result"]
            assert push["data"]["listenAddress"] == [DEMO_ADDRESS]
        proc.send_signal(signal.SIGINT)
        assert await trio.to_thread.run_sync(lambda: proc.wait(30)) == 0
        assert not await trio.to_thread.run_sync(data_dir.exists)  # thrown away
        with trio.fail_after(10):  # the chain stopped with the server
            while True:
                try:
                    async with httpx.AsyncClient() as client:
                        await client.post(f"http://127.0.0.1:{anvil_port}", json=body)
                except httpx.HTTPError:
                    break
                await trio.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

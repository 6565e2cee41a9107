"""The demo page and the dashboard in a real browser (headless Chromium), against a real
``rtserver dev`` subprocess and its Anvil node.

The demo: pressing its button sends a transfer on the local chain, and the page shows it
(amount and hash) pushed by every protocol's socket, the address-monitoring push within
a second of the click. The dashboard, in the same browser: shows nothing without the
admin token, then a new connection and a new event as they happen, without reloading.

With ``SCREENSHOT_DIR=<dir>`` (``scripts/screenshots``) the test also saves
``demo.png`` and ``dashboard.png`` there, taken at the moments it checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anvil import anvil_binary
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from websockets.sync.client import connect

from rtserver.dev import DEMO_ADDRESS

from conftest import read_dev_banner, start_dev_process

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.anvil,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="chromium and chromium-driver not installed (./scripts/test installs them)",
    ),
    pytest.mark.skipif(anvil_binary() is None, reason="Anvil not installed (run ./scripts/test)"),
]

#: Generous: the machine may be busy. The demo's own one-second bound is measured by the
#: page's clock between the click and the push, not by these waits.
TIMEOUT = 30


@pytest.fixture
def dev_server() -> Iterator[dict[str, str]]:
    """``rtserver dev`` as a newcomer starts it; its banner, by label."""
    proc = start_dev_process().proc
    try:
        yield read_dev_banner(proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = Options()
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    return WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(
        condition, message=f"waited {TIMEOUT} s for {what}"
    )


def text_of(driver: WebDriver, selector: str) -> str:
    """The text of the first element ``selector`` matches, ``""`` when none does; read in
    one script call (the dashboard replaces its rows at every update)."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';"
    return str(driver.execute_script(script, selector))


def item_for(panel: str, tx_hash: str) -> Callable[[WebDriver], Any]:
    """Condition: the panel's feed has an item for ``tx_hash`` (returns it)."""

    def found(driver: WebDriver) -> Any:
        items = driver.find_elements(By.CSS_SELECTOR, f"#{panel} li[data-tx='{tx_hash}']")
        return items[0] if items else False

    return found


def screenshot(driver: WebDriver, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def send_transfer(banner: dict[str, str]) -> str:
    """The banner's test transfer, as printed (a curl command's JSON body); its hash."""
    match = re.search(r"-d '(.*)'$", banner["curl"])
    assert match is not None
    url = "http://" + banner["curl"].split()[2]
    answer = httpx.post(url, json=json.loads(match.group(1)), timeout=10).json()
    return str(answer["result"])


def test_demo_shows_the_pushed_transfer_and_the_dashboard_follows_live(
    dev_server: dict[str, str], browser: WebDriver
) -> None:
    server = dev_server["server"]
    assert dev_server["demo"].startswith(f"{server}/demo")

    # -- the demo page ---------------------------------------------------------------
    browser.get(f"{server}/demo")
    for panel in ("address-monitoring", "wallet", "channels"):
        wait_for(
            browser,
            lambda d, p=panel: text_of(d, f"#{p} [data-socket]") == "open",
            f"the {panel} socket to open",
        )
    wait_for(browser, lambda d: d.find_element(By.ID, "send").is_enabled(), "the button")
    browser.find_element(By.ID, "send").click()
    tx_hash = wait_for(
        browser,
        lambda d: (
            re.fullmatch(r"0x[0-9a-f]{64}", text_of(d, "#last-transfer"))
            and text_of(d, "#last-transfer")
        ),
        "the transfer's hash",
    )
    pushed = wait_for(browser, item_for("address-monitoring", tx_hash), "the push")
    latency = wait_for(browser, lambda d: pushed.get_attribute("data-latency-ms"), "latency")
    assert int(latency) <= 1000, f"pushed {latency} ms after the click"
    assert pushed.get_attribute("data-amount") == str(10**18)
    assert "1 ETH" in pushed.text and DEMO_ADDRESS in pushed.text
    wait_for(browser, lambda d: "ACKed" in pushed.text, "the ACK's answer")
    # Every other protocol shows the same transfer.
    wallet = wait_for(browser, item_for("wallet", tx_hash), "the wallet's new_transaction")
    assert "new_transaction" in wallet.text and "1.0 ETH IN" in wallet.text
    payment = wait_for(browser, item_for("payment-status", tx_hash), "the settlement")
    assert "settlement" in payment.text
    channel = wait_for(browser, item_for("channels", tx_hash), "the channel event")
    assert "DEMO_TRANSFER" in channel.text and "1 ETH" in channel.text
    screenshot(browser, "demo.png")

    # -- the dashboard, in the same browser --------------------------------------------
    browser.get(f"{server}/dashboard")
    assert not browser.find_element(By.ID, "board").is_displayed()  # nothing before the token
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(browser, lambda d: "Refused" in text_of(d, "#lock-message"), "the refusal")
    assert not browser.find_element(By.ID, "board").is_displayed()
    browser.find_element(By.ID, "token").send_keys(dev_server["admin"])
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(
        browser,
        lambda d: text_of(d, f"#events li[data-tx='{tx_hash}']"),
        "the demo's transfer in the recent events",
    )
    browser.execute_script("window.notReloaded = true")
    chain = text_of(browser, "#chains tr[data-chain='anvil:31337']")
    assert chain.split()[0] == "anvil:31337"

    def open_streams(driver: WebDriver) -> str:
        return text_of(driver, "#connections tr[data-endpoint='address-monitoring'] td.open")

    # The demo page's stream closed when the browser left it.
    wait_for(browser, lambda d: open_streams(d) == "0", "no address-monitoring stream open")
    stream = dev_server["stream"]
    with connect(stream, open_timeout=TIMEOUT) as client:
        assert json.loads(client.recv(TIMEOUT))["type"] == "connected"
        wait_for(browser, lambda d: open_streams(d) == "1", "the new connection")
        second = send_transfer(dev_server)
        wait_for(browser, lambda d: text_of(d, f"#events li[data-tx='{second}']"), "the new event")
        assert json.loads(client.recv(TIMEOUT))["data"]["txhash"] == second
    listed = browser.execute_script(
        "return [...document.querySelectorAll('#events li[data-tx]')]"
        ".map((e) => [e.dataset.tx, e.innerText])"
    )
    assert [tx for tx, _ in listed[:2]] == [second, tx_hash]
    assert "block 2" in listed[0][1] and "for app" in listed[0][1] and "1 ETH" in listed[0][1]
    assert browser.execute_script("return window.notReloaded") is True
    screenshot(browser, "dashboard.png")

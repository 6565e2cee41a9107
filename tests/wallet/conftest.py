"""Fixtures of the wallet tests: the chain tests' real Anvil node."""

from __future__ import annotations

import pytest
from anvil import anvil_binary
from chains.conftest import anvil

__all__ = ["anvil"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if anvil_binary() is None:
        for item in items:
            if "wallet" in item.nodeid.split("/"):
                item.add_marker(pytest.mark.skip(reason="Anvil not installed (run ./scripts/test)"))

"""EVM chains (Ethereum, BSC, Gnosis, Arbitrum, ... and Anvil): the first chain adapter."""

from rtserver.chains.evm._adapter import NATIVE_SYMBOLS, EvmAdapter
from rtserver.chains.evm._balances import Asset, BalanceReader, Balances
from rtserver.chains.evm._rpc import RpcClient, RpcError

__all__ = [
    "NATIVE_SYMBOLS",
    "Asset",
    "BalanceReader",
    "Balances",
    "EvmAdapter",
    "RpcClient",
    "RpcError",
]

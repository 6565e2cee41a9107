"""EVM chains (Ethereum, BSC, Gnosis, Arbitrum, ... and Anvil): the first chain adapter."""

from rtserver.chains.evm._adapter import EvmAdapter
from rtserver.chains.evm._rpc import RpcClient, RpcError

__all__ = ["EvmAdapter", "RpcClient", "RpcError"]

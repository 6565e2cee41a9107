"""rtserver: a self-hosted realtime server for wallet and payment apps."""

from rtserver.config import Config, load_config
from rtserver.server import serve

__all__ = ["Config", "load_config", "serve"]
__version__ = "0.1.0"

"""rtserver: a self-hosted realtime server for wallet and payment apps."""

from typing import TYPE_CHECKING, Any

from rtserver.config import Config, load_config

if TYPE_CHECKING:
    from rtserver.server import serve

__all__ = ["Config", "load_config", "serve"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use: ``import rtserver.store`` (the CLI, the core's own modules)
    # must not pull in the HTTP front and its dependencies.
    if name == "serve":
        from rtserver.server import serve

        return serve
    raise AttributeError(f"module 'rtserver' has no attribute {name!r}")

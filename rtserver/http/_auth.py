"""The one app-key lookup every API shares: an API key (however a protocol carries it,
``X-API-Key`` or ``Authorization: Bearer``) identifies an active app."""

from __future__ import annotations

from rtserver.core import Core
from rtserver.exceptions import AuthenticationError
from rtserver.store import apps
from rtserver.store.apps import App

#: Longest key accepted before hashing (ours are 47 characters).
MAX_KEY_LENGTH = 256


async def authenticate_key(core: Core, key: str) -> App:
    """The active app that owns ``key``; :class:`AuthenticationError` otherwise."""
    if len(key) > MAX_KEY_LENGTH:
        raise AuthenticationError("invalid API key")
    app = await core.store.read(apps.authenticate, key)
    if app is None:
        raise AuthenticationError("invalid API key")
    return app

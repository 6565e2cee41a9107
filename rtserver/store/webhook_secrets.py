"""Webhook signing secrets at rest: AES-256-GCM under a key that is not in the database.

A signing secret must be recoverable (it signs every request), so it cannot be hashed
like an API key: it is encrypted. The database (and its backups, WAL and copies) then
reveals no secret without the key, which lives elsewhere:

1. ``webhooks.secret_key`` (or ``RTSERVER_WEBHOOKS_SECRET_KEY``), base64 of 32 bytes;
2. else the file ``webhooks.secret_key_file``, which must exist;
3. else ``<data_dir>/webhook-secrets.key``, created with mode 0600 when first needed, so
   that zero configuration keeps working (a server's first start creates it).

``webhooks.previous_secret_keys`` are keys for decryption only: values they open are
re-encrypted with the current key (:func:`rtserver.store.webhooks.seal_stored_secrets`,
run by the server at start and by ``rtserver apps webhook``).

A stored value is ``rtenc1.<key id>.<base64url(nonce | ciphertext | tag)>``. The key id
(a hash of the key, not the key) tells which key a value needs, so a missing or wrong key
is reported as exactly that. The associated data is the app id: a value copied into
another app's row does not open. Values written by versions before encryption start with
``whsec_`` and are read as they are until sealed.

The server and the CLI resolve the key of a database the same way: whoever opens one
with a configuration declares it with :func:`use_config`; repositories then find the key
with :func:`box_for`. A database nobody declared uses the default key file beside it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import sqlite3
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from Crypto.Cipher import AES

from rtserver.config import WebhookConfig, decode_secret_key
from rtserver.exceptions import ConfigError, StoreError

log = logging.getLogger("rtserver.webhooks")

WEBHOOK_SECRET_PREFIX = "whsec_"
#: The zero-configuration key file, in the data directory beside the database.
KEY_FILE_NAME = "webhook-secrets.key"
_FORMAT = "rtenc1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_AAD = b"rtserver webhook secret\x00"


def key_id(key: bytes) -> str:
    """A public name for ``key``: tells keys apart without revealing them."""
    return hashlib.sha256(b"rtserver webhook-secrets key id\x00" + key).hexdigest()[:16]


@dataclass(frozen=True)
class SecretBox:
    """Seals and opens the webhook secrets of one database."""

    key: bytes
    previous: tuple[bytes, ...] = ()
    #: Where the current key came from, for messages: a config key or a file path.
    source: str = "webhooks.secret_key"

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    @property
    def previous_ids(self) -> tuple[str, ...]:
        return tuple(key_id(k) for k in self.previous)

    def seal(self, app_id: str, secret: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        cipher = AES.new(self.key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG_BYTES)
        cipher.update(_AAD + app_id.encode())
        sealed, tag = cipher.encrypt_and_digest(secret.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed + tag).decode()
        return f"{_FORMAT}.{self.key_id}.{blob}"

    def open(self, app_id: str, stored: str) -> str:
        """The secret in ``stored``; :class:`ConfigError` when its key is not configured,
        :class:`StoreError` when it does not authenticate (changed or moved)."""
        if stored.startswith(WEBHOOK_SECRET_PREFIX):
            return stored
        wanted = sealed_key_id(stored)
        keys = {key_id(k): k for k in (*self.previous, self.key)}
        if wanted is None:
            raise StoreError(f"the stored webhook secret of {app_id} has an unknown format")
        if wanted not in keys:
            raise ConfigError(
                "webhooks.secret_key",
                f"the webhook secret of {app_id} is encrypted with key id {wanted}, which"
                f" is not configured (current key id {self.key_id}, from {self.source})",
            )
        try:
            blob = base64.urlsafe_b64decode(stored.rsplit(".", 1)[1])
            nonce, sealed, tag = (
                blob[:_NONCE_BYTES],
                blob[_NONCE_BYTES:-_TAG_BYTES],
                blob[-_TAG_BYTES:],
            )
            cipher = AES.new(keys[wanted], AES.MODE_GCM, nonce=nonce, mac_len=_TAG_BYTES)
            cipher.update(_AAD + app_id.encode())
            return cipher.decrypt_and_verify(sealed, tag).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise StoreError(
                f"the stored webhook secret of {app_id} does not authenticate (changed,"
                " or copied from another app)"
            ) from None


def sealed_key_id(stored: str) -> str | None:
    """The key id a stored value was sealed with; None for plaintext or unknown formats."""
    parts = stored.split(".")
    if len(parts) != 3 or parts[0] != _FORMAT:
        return None
    return parts[1]


def load_box(config: WebhookConfig, data_dir: Path) -> SecretBox:
    """The configured keys (see the module docstring); :class:`ConfigError` if unusable."""
    previous = tuple(decode_secret_key(k) for k in config.previous_secret_keys)
    if config.secret_key:
        return SecretBox(decode_secret_key(config.secret_key), previous)
    if config.secret_key_file:
        path = Path(config.secret_key_file)
        return SecretBox(_read_key_file(path, "webhooks.secret_key_file"), previous, str(path))
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        _create_key_file(path)
    return SecretBox(_read_key_file(path, "webhooks.secret_key_file"), previous, str(path))


def _read_key_file(path: Path, option: str) -> bytes:
    try:
        text = path.read_text("ascii")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise ConfigError(option, f"cannot read the key file {str(path)!r}: {problem}") from None
    if stat.S_IMODE(mode) & 0o077:
        log.warning(
            "the webhook secrets key file %s can be read by other users; chmod 600 it", path
        )
    try:
        return decode_secret_key(text)
    except ValueError as exc:
        raise ConfigError(option, f"the key file {str(path)!r} holds no key: {exc}") from None


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` (0600), unless another process just did."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: a concurrent reader (the CLI while a server
    # starts) sees no file or a complete one, and only one of two creators wins.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.link(temporary, path)
    except FileExistsError:
        return
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    log.warning(
        "created %s, the key that encrypts webhook secrets in the database: back it up"
        " with the database (without it the stored secrets are lost); in production, set"
        " webhooks.secret_key instead",
        path,
    )


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- which key protects which database, in this process ------------------------------------

_lock = threading.Lock()
_configs: dict[str, WebhookConfig] = {}
_boxes: dict[str, SecretBox] = {}


def use_config(database_path: str | os.PathLike[str], config: WebhookConfig) -> None:
    """Declare the key configuration of ``database_path`` (the key file default: beside it)."""
    path = os.path.realpath(database_path)
    with _lock:
        if _configs.get(path) != config:
            _configs[path] = config
            _boxes.pop(path, None)


def box_for_path(database_path: str | os.PathLike[str]) -> SecretBox:
    """The keys of ``database_path``, loaded (and the default key file created) on first use."""
    path = os.path.realpath(database_path)
    with _lock:
        box = _boxes.get(path)
        if box is None:
            box = load_box(_configs.get(path, WebhookConfig()), Path(path).parent)
            _boxes[path] = box
        return box


def box_for(conn: sqlite3.Connection) -> SecretBox:
    """The keys of the database ``conn`` is open on."""
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            if not file:
                raise StoreError("webhook secrets need a database file (not in memory)")
            return box_for_path(file)
    raise StoreError("no main database")  # pragma: no cover

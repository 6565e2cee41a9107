"""Who an end user is: JWTs from the app's own auth server, and rtserver's access tokens.

The wallet and channel sockets authenticate end users here, with no wire format of their
own: a protocol maps :class:`TokenExpiredError` and :class:`AuthenticationError` to its
document's messages.

JWT rules (``[jwt]``): the algorithm must be in ``jwt.algorithms`` (never ``none``) and
match the kind of key that verifies it (a shared secret verifies only HS256, a public key
only RS256/ES256, so a public key can never be used as an HMAC secret); ``exp`` is
required, ``exp`` and ``nbf`` are checked against the core's clock with ``jwt.leeway``;
``iss`` and ``aud`` when configured; the user id is the ``jwt.user_claim`` claim. Keys are
read once, at start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt

from rtserver.clock import Clock
from rtserver.config import JwtConfig
from rtserver.exceptions import AuthenticationError, ConfigError, TokenExpiredError
from rtserver.store.users import UserRef, validate_user_id

_PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")
#: Longest end-user token looked at (a JWT with a few claims is well under 2 KiB): an
#: overlong one is refused before any parsing or hashing.
MAX_TOKEN_LENGTH = 8192


class JwtVerifier:
    """Verifies end users' JWTs with the keys of ``[jwt]`` (see the module docstring)."""

    def __init__(self, config: JwtConfig, clock: Clock) -> None:
        """Reads the key files now: ConfigError naming the file if one cannot be used."""
        self._config = config
        self._clock = clock
        allowed = config.algorithms
        self._secret_algorithms = ["HS256"] if "HS256" in allowed else []
        self._public_algorithms = [a for a in allowed if a in _PUBLIC_KEY_ALGORITHMS]
        self._public_key: Any = None
        self._jwks: dict[str, Any] = {}
        if config.public_key_file:
            try:
                self._public_key = Path(config.public_key_file).read_text()
            except OSError as exc:
                raise ConfigError("jwt.public_key_file", f"cannot read: {exc}") from exc
        if config.jwks_file:
            try:
                keys = jwt.PyJWKSet.from_dict(json.loads(Path(config.jwks_file).read_text()))
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                raise ConfigError("jwt.jwks_file", f"not a usable JWKS file: {exc}") from exc
            self._jwks = {key.key_id or "": key.key for key in keys.keys}

    @property
    def enabled(self) -> bool:
        return self._config.enabled

    def verify(self, token: str) -> UserRef:
        """The user the token names; TokenExpiredError past ``exp`` (with leeway),
        AuthenticationError (with a reason) for anything else wrong."""
        cfg = self._config
        if not cfg.enabled:
            raise AuthenticationError("JWT authentication is not configured")
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("malformed JWT") from exc
        algorithm = header.get("alg")
        if algorithm not in cfg.algorithms:
            raise AuthenticationError(f"JWT algorithm {algorithm!r} is not allowed")
        key, algorithms = self._key_for(algorithm, header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=cfg.audience or None,
                issuer=cfg.issuer or None,
                # exp and nbf are checked below against the core's clock, not the OS's.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": bool(cfg.audience),
                    "verify_iss": bool(cfg.issuer),
                    "require": ["exp"],
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid JWT: {exc}") from exc
        now = self._clock.time()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise AuthenticationError("invalid JWT: exp must be a number")
        if nbf is not None and (not isinstance(nbf, int | float) or isinstance(nbf, bool)):
            raise AuthenticationError("invalid JWT: nbf must be a number")
        if now > exp + cfg.leeway:
            raise TokenExpiredError("JWT expired")
        if nbf is not None and now < nbf - cfg.leeway:
            raise AuthenticationError("JWT not valid yet (nbf)")
        try:
            user_id = validate_user_id(claims.get(cfg.user_claim))
        except Exception as exc:
            raise AuthenticationError(f"JWT claim {cfg.user_claim!r}: not a user id") from exc
        return UserRef(cfg.app_id, user_id)

    def _key_for(self, algorithm: str, kid: object) -> tuple[Any, list[str]]:
        cfg = self._config
        if algorithm == "HS256":
            if not cfg.hs256_secret:
                raise AuthenticationError("no HS256 secret is configured")
            return cfg.hs256_secret, self._secret_algorithms
        if self._jwks:
            key = self._jwks.get(kid if isinstance(kid, str) else "")
            if key is None and len(self._jwks) == 1 and kid is None:
                key = next(iter(self._jwks.values()))
            if key is None:
                raise AuthenticationError(f"no JWKS key with kid {kid!r}")
            return key, [algorithm]
        if self._public_key is None:
            raise AuthenticationError(f"no public key is configured for {algorithm}")
        return self._public_key, [algorithm]


def mint_hs256(config: JwtConfig, user_id: str, *, ttl: float, now: float) -> str:
    """A token for local use (``rtserver users jwt``), signed with ``jwt.hs256_secret``."""
    if not config.hs256_secret:
        raise ConfigError("jwt.hs256_secret", "set it to mint tokens")
    claims: dict[str, Any] = {config.user_claim: user_id, "iat": int(now), "exp": int(now + ttl)}
    if config.issuer:
        claims["iss"] = config.issuer
    if config.audience:
        claims["aud"] = config.audience
    return str(jwt.encode(claims, config.hs256_secret, algorithm="HS256"))

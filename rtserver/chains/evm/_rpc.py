"""JSON-RPC over HTTP for EVM nodes: batches, timeouts, retries with backoff, failover.

Guarantees:

* a request either returns the node's answer or raises :class:`ChainError`; it never
  returns a partial or made-up answer (malformed JSON, a batch with missing ids, an HTTP
  error status all count as failures and are retried);
* failures are retried with capped exponential backoff and full jitter, moving to the
  next of ``rpc_urls`` after each failed attempt; the last URL that answered is used first;
* a JSON-RPC *error object* for one call is the node's answer, not a transport failure:
  :meth:`RpcClient.call` raises it as :class:`RpcError`, :meth:`RpcClient.batch` returns
  it in that call's :class:`RpcReply` (callers decide: a revert is an answer, a missing
  block is a reason to retry the whole batch later).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from rtserver.clock import Clock
from rtserver.exceptions import ChainError
from rtserver.metrics import Metrics

log = logging.getLogger("rtserver.chains.rpc")

#: JSON-RPC error codes that mean "busy, ask again" rather than a real answer.
_RETRYABLE_CODES = frozenset({-32005, -32097, 429})
#: Largest body accepted from a node (a busy block's receipts or traces can be tens of MB).
_MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class RpcError(ChainError):
    """The node answered a call with a JSON-RPC error object."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.code = error.get("code")
        self.message = str(error.get("message", ""))
        self.data = error.get("data")
        super().__init__(f"{method}: node error {self.code}: {self.message}")


@dataclass(frozen=True)
class RpcReply:
    """One call's answer in a batch: ``result``, or the node's ``error`` object."""

    result: Any = None
    error: dict[str, Any] | None = None

    def unwrap(self, method: str) -> Any:
        if self.error is not None:
            raise RpcError(method, self.error)
        return self.result


class _Failure(Exception):
    """One failed attempt (retried): ``kind`` labels the error metric."""

    def __init__(self, kind: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retry_after = retry_after


class RpcClient:
    """A JSON-RPC client over ``urls`` (tried in order, failing over on errors)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float,
        chain: str,
        clock: Clock,
        metrics: Metrics | None = None,
        attempts: int = 6,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
    ) -> None:
        if not urls:
            raise ValueError("at least one RPC URL is needed")
        self.urls = tuple(urls)
        self.timeout = timeout
        self.chain = chain
        self._clock = clock
        self.attempts = attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._metrics = metrics
        self._current = 0
        self._ids = itertools.count(1)
        #: Monotonic time of the first failed attempt since the last success (see
        #: :meth:`failing_for`).
        self.failing_since: float | None = None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            headers={"content-type": "application/json"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def failing_for(self) -> float | None:
        """Seconds since the first of the attempts that failed in a row (every URL, any
        call), or None when the last attempt succeeded: readiness reads it, so a dead
        node shows within seconds, not after a caller's retries run out."""
        if self.failing_since is None:
            return None
        return self._clock.monotonic() - self.failing_since

    async def call(self, method: str, params: list[Any], *, attempts: int | None = None) -> Any:
        """The result of one call; :class:`RpcError` for a node error, ChainError after retries."""
        (reply,) = await self.batch([(method, params)], attempts=attempts)
        return reply.unwrap(method)

    async def batch(
        self, calls: Sequence[tuple[str, list[Any]]], *, attempts: int | None = None
    ) -> list[RpcReply]:
        """Send ``calls`` as one JSON-RPC batch; replies in the order of ``calls``."""
        if not calls:
            return []
        attempts = attempts or self.attempts
        method = calls[0][0]
        last: _Failure | None = None
        for attempt in range(attempts):
            if attempt:
                delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)
                if last is not None and last.retry_after is not None:
                    delay = max(delay, min(self.backoff_cap, last.retry_after))
                await trio.sleep(delay)
            url = self.urls[self._current]
            try:
                replies = await self._attempt(url, calls)
            except _Failure as failure:
                last = failure
                if self.failing_since is None:
                    self.failing_since = self._clock.monotonic()
                if self._metrics is not None:
                    self._metrics.chain_rpc_errors.labels(self.chain, failure.kind).inc()
                # Debug only: every attempt is counted in rtserver_chain_rpc_errors_total,
                # and the caller logs the call that failed after all its attempts (an
                # outage would otherwise log a warning per attempt per call).
                log.debug(
                    "chain %s: %s via %s failed (%s: %s); attempt %d of %d",
                    self.chain,
                    method,
                    _redact(url),
                    failure.kind,
                    failure,
                    attempt + 1,
                    attempts,
                )
                # Fail over: the next attempt goes to the next URL.
                self._current = (self._current + 1) % len(self.urls)
            else:
                self.failing_since = None
                return replies
        assert last is not None
        raise ChainError(
            f"{method} failed after {attempts} attempts on {len(self.urls)} RPC URL(s): "
            f"{last.kind}: {last}"
        )

    async def _attempt(self, url: str, calls: Sequence[tuple[str, list[Any]]]) -> list[RpcReply]:
        ids = [next(self._ids) for _ in calls]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        started = self._clock.monotonic()
        body: bytes | None = None
        status = 0
        headers: httpx.Headers | None = None
        with trio.move_on_after(self.timeout) as scope:
            try:
                async with self._client.stream(
                    "POST", url, content=json.dumps(payload)
                ) as response:
                    status, headers = response.status_code, response.headers
                    # Read with a cap: a node (or a proxy) must not make us buffer without bound.
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > _MAX_RESPONSE_BYTES:
                            raise _Failure(
                                "malformed", f"response over {_MAX_RESPONSE_BYTES} bytes"
                            )
                        chunks.append(chunk)
                    body = b"".join(chunks)
            except httpx.TimeoutException as exc:
                raise _Failure("timeout", str(exc) or "timed out") from None
            except httpx.HTTPError as exc:
                raise _Failure("transport", str(exc) or type(exc).__name__) from None
        if scope.cancelled_caught or body is None or headers is None:
            raise _Failure("timeout", f"no answer within {self.timeout} s")
        if self._metrics is not None:
            self._metrics.chain_rpc_duration.labels(self.chain, calls[0][0]).observe(
                self._clock.monotonic() - started
            )
        if status == 429:
            raise _Failure("rate_limited", "HTTP 429", _retry_after(headers))
        if status != 200:
            raise _Failure("http_status", f"HTTP {status}")
        try:
            decoded = json.loads(body)
        except ValueError:
            raise _Failure("malformed", f"not JSON: {body[:80]!r}") from None
        return self._replies(ids, decoded)

    def _replies(self, ids: list[int], decoded: Any) -> list[RpcReply]:
        if isinstance(decoded, dict):
            # A single object for a batch: the node rejected the batch as a whole.
            error = decoded.get("error")
            if isinstance(error, dict) and len(ids) == 1 and decoded.get("id") == ids[0]:
                decoded = [decoded]
            else:
                raise _Failure("rejected", f"batch rejected: {str(decoded)[:120]}")
        if not isinstance(decoded, list):
            raise _Failure("malformed", f"expected a list, got {type(decoded).__name__}")
        by_id: dict[Any, RpcReply] = {}
        for item in decoded:
            if not isinstance(item, dict) or "id" not in item:
                raise _Failure("malformed", f"bad batch item: {str(item)[:80]}")
            error = item.get("error")
            if error is not None:
                if not isinstance(error, dict):
                    raise _Failure("malformed", f"bad error object: {str(error)[:80]}")
                if error.get("code") in _RETRYABLE_CODES:
                    raise _Failure("rate_limited", str(error.get("message", ""))[:120])
                by_id[item["id"]] = RpcReply(error=error)
            elif "result" in item:
                by_id[item["id"]] = RpcReply(result=item["result"])
            else:
                raise _Failure("malformed", f"item without result or error: {str(item)[:80]}")
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise _Failure("malformed", f"{len(missing)} of {len(ids)} replies missing")
        return [by_id[i] for i in ids]


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _redact(url: str) -> str:
    """The URL without path and query: providers put API keys there."""
    try:
        parsed = httpx.URL(url)
    except Exception:
        return "<rpc url>"
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


def hex_int(value: Any) -> int:
    """A JSON-RPC quantity (``0x``-hex string) as an int; ChainError when it is not one."""
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ChainError(f"expected a hex quantity, got {value!r}")


def opt_int(value: Any) -> int | None:
    return None if value is None else hex_int(value)

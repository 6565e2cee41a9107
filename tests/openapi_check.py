"""Checks the responses the test suite receives against the OpenAPI description.

Every HTTP client a test opens on an rtserver (``rtserver_client``, ``RunningServer.client``)
carries :func:`check_async_response` as a response hook: the response's operation is
looked up by method and path template, its status must be one the operation documents,
its content type the documented one, and a JSON body must match the schema (JSON Schema
2020-12, refs into ``components``). A mismatch raises at the test's call site and is also
recorded, so a test that swallows exceptions still fails at teardown (``conftest.py``).

A path no description matches is not checked here: ``tests/test_openapi.py`` fails for a
route the server registers without a description.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from rtserver.http.openapi import openapi_document

_PARAMETER = re.compile(r"\{[^/{}]+\}")


def path_pattern(template: str) -> re.Pattern[str]:
    """A path template (``/apps/{app_id}``) as a regular expression of concrete paths."""
    parts = _PARAMETER.split(template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts) + "$")


@dataclass
class ResponseChecker:
    document: dict[str, Any]
    #: (template, its pattern), literal paths before parameterised ones.
    _patterns: list[tuple[str, re.Pattern[str]]] = field(init=False)
    _validators: dict[tuple[str, str, str, str], Draft202012Validator] = field(
        init=False, default_factory=dict
    )
    #: Responses checked, per "METHOD template status".
    checked: Counter[str] = field(init=False, default_factory=Counter)
    #: "METHOD path" of responses no described operation matched.
    unchecked: Counter[str] = field(init=False, default_factory=Counter)
    problems: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        templates = sorted(self.document["paths"], key=lambda t: (t.count("{"), t))
        self._patterns = [(t, path_pattern(t)) for t in templates]

    def template_of(self, path: str) -> str | None:
        for template, pattern in self._patterns:
            if pattern.match(path):
                return template
        return None

    def check(
        self, method: str, path: str, status: int, content_type: str, body: bytes
    ) -> str | None:
        """What is wrong with this response by the description (None: it matches)."""
        method = method.lower()
        template = self.template_of(path)
        operation = None if template is None else self.document["paths"][template].get(method)
        if template is None or operation is None:
            self.unchecked[f"{method.upper()} {path}"] += 1
            return None
        where = f"{method.upper()} {path} ({template}) answered {status}"
        response = operation["responses"].get(str(status))
        if response is None:
            return f"{where}: the description documents only {sorted(operation['responses'])}"
        self.checked[f"{method.upper()} {template} {status}"] += 1
        content = response.get("content")
        if not content:
            return None if not body else f"{where} with a body the description has none for"
        media = content_type.split(";")[0].strip().lower()
        if media not in content:
            return f"{where} as {media!r}; the description says {sorted(content)}"
        if media != "application/json":
            return None
        try:
            value = json.loads(body)
        except ValueError as exc:
            return f"{where}: the body is not JSON ({exc})"
        validator = self._validator(template, method, str(status), media)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            shown = "; ".join(
                f"at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in errors[:3]
            )
            return f"{where}: the body does not match the description: {shown}\nbody: {value!r}"
        return None

    def _validator(
        self, template: str, method: str, status: str, media: str
    ) -> Draft202012Validator:
        key = (template, method, status, media)
        if key not in self._validators:
            schema = self.document["paths"][template][method]["responses"][status]["content"][
                media
            ]["schema"]
            # The components beside the schema: its "#/components/..." refs resolve in it.
            root = {**schema, "components": self.document["components"]}
            self._validators[key] = Draft202012Validator(root)
        return self._validators[key]

    def unreached(self) -> list[str]:
        """The described operations no checked response reached ("METHOD template")."""
        reached = {key.rsplit(" ", 1)[0] for key in self.checked}
        return sorted(
            f"{method.upper()} {template}"
            for template, item in self.document["paths"].items()
            for method in item
            if f"{method.upper()} {template}" not in reached
        )

    def observe(self, response: httpx.Response) -> None:
        """Check a response that was read (an endless stream: its status and media type
        only); AssertionError (also recorded) if it is wrong."""
        request = response.request
        problem = self.check(
            request.method,
            request.url.path,
            response.status_code,
            response.headers.get("content-type", ""),
            b"" if endless(response) else response.content,
        )
        if problem is not None:
            self.problems.append(problem)
            raise AssertionError(f"response does not match the OpenAPI description: {problem}")


#: One checker for the whole session (the description is built once per process).
CHECKER = ResponseChecker(openapi_document())


def async_hook(checker: ResponseChecker = CHECKER) -> Callable[[httpx.Response], Awaitable[None]]:
    """An ``httpx.AsyncClient`` response hook that checks with ``checker``."""

    async def check(response: httpx.Response) -> None:
        if not endless(response):
            await response.aread()
        checker.observe(response)

    return check


def check_response(response: httpx.Response) -> None:
    """The ``httpx.Client`` response hook."""
    if not endless(response):
        response.read()
    CHECKER.observe(response)


def endless(response: httpx.Response) -> bool:
    """A response that is a stream of events (server-sent events): reading it to its
    end would wait for the server to stop."""
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return response.status_code == 200 and media == "text/event-stream"

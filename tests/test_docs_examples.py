"""Every example in README.md and docs/*.md runs as written (issue 18), and no link leaves the
repository.

The convention, one HTML comment on the line before each fenced block (a block without one
fails the test):

``<!-- example: run -->``
    Shell (``sh``): run in the doc's one shell session, in order, so variables set by one
    block (``$API_KEY``, ``$APP_ID``, ``$ADMIN_TOKEN``...) are there for the next ones, as in
    a reader's terminal. ``python``: run with ``.venv/bin/python``. ``js``: run with Node,
    the browser's ``WebSocket`` given by the ``ws`` package. Attributes: ``expect="text"``
    (the block's output must contain it; several are separated by `` && ``), ``serves``
    (the block starts the server in the background: the next block waits for its
    ``/healthz``), ``until="text"`` (a client that runs until stopped: it is stopped once its
    output contains the text), ``check="name"`` (a further check in :data:`CHECKS`).
``<!-- example: serve -->``
    Each line is a command that runs the server in the foreground: it is started, must
    answer ``/healthz``, and must exit 0 on SIGTERM.
``<!-- example: config file="NAME" -->``
    A TOML file: loaded with the server's own loader, and written as NAME into the working
    directory before the doc's commands run.
``<!-- example: output -->``
    What a command prints or a message looks like; a ``json`` block must parse (as one value
    or one value per line).
``<!-- example: skip reason="..." -->``
    Not run, and why (Docker, systemd, an interactive client).

Where the examples run: a temporary directory laid out as a fresh clone after
``./scripts/serve`` made ``.venv`` (every top-level entry of the repository, and a ``.venv``
whose ``bin/python`` and ``bin/rtserver`` are this interpreter), with ``HOME`` in it, and a
real Anvil node. The examples name the documented addresses; the test gives each a free
port instead: ``localhost:8080`` / ``127.0.0.1:8080`` (the server's default, also set as
``RTSERVER_SERVER_BIND``), ``127.0.0.1:9000`` and ``127.0.0.1:8545`` (Anvil). In the shell,
``curl`` fails on an HTTP error status (``--fail-with-body``), and ``set -euo pipefail`` stops
the doc at the first failing command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from anvil import Anvil, anvil_binary, start_anvil

from rtserver.config import load_config
from rtserver.delivery import sign

from conftest import REPO, clean_env, free_port

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
KINDS = {"run", "serve", "config", "output", "skip"}
ATTRIBUTES = {"expect", "serves", "until", "check", "file", "reason"}
#: Skips are for what cannot run here (Docker, systemd, the suite and the benchmarks themselves,
#: `rtserver dev` on its default ports, an interactive wscat, a browser page); more means
#: examples went untested.
MAX_SKIPS = 7
BLOCK_TIMEOUT = 60.0
YEAR = 365 * 24 * 3600.0

_MARKER = re.compile(r"^<!--\s*example:\s*(\w+)(.*?)-->\s*$")
_ATTR = re.compile(r"""(\w[\w-]*)(?:="([^"]*)"|='([^']*)')?""")
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Example:
    """One fenced block of a doc and how its marker says to treat it."""

    doc: Path
    line: int
    lang: str
    text: str
    kind: str
    attrs: dict[str, str]

    def where(self) -> str:
        doc = self.doc.relative_to(REPO) if self.doc.is_relative_to(REPO) else self.doc.name
        return f"{doc}:{self.line}"


def doc_examples(doc: Path) -> list[Example]:
    """The fenced blocks of ``doc``; an unmarked block has the kind ``""``."""
    found: list[Example] = []
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        previous = lines[i - 1].strip() if i else ""
        marker = _MARKER.match(previous)
        kind, attrs = ("", {})
        if marker is not None:
            kind = marker.group(1)
            attrs = {
                m.group(1): m.group(2) or m.group(3) or "" for m in _ATTR.finditer(marker.group(2))
            }
        found.append(
            Example(doc, i + 1, fence.group(1), "\n".join(lines[i + 1 : end]), kind, attrs)
        )
        i = end + 1
    return found


ALL_EXAMPLES = [example for doc in DOCS for example in doc_examples(doc)]


def test_every_block_is_run_or_skipped_with_a_reason() -> None:
    problems = [
        f"{e.where()}: no <!-- example: KIND --> marker before the block"
        for e in ALL_EXAMPLES
        if not e.kind
    ]
    problems += [
        f"{e.where()}: unknown kind {e.kind!r}"
        for e in ALL_EXAMPLES
        if e.kind and e.kind not in KINDS
    ]
    problems += [
        f"{e.where()}: unknown attributes {sorted(set(e.attrs) - ATTRIBUTES)}"
        for e in ALL_EXAMPLES
        if set(e.attrs) - ATTRIBUTES
    ]
    problems += [
        f"{e.where()}: a skip needs a reason"
        for e in ALL_EXAMPLES
        if e.kind == "skip" and not e.attrs.get("reason")
    ]
    problems += [
        f"{e.where()}: {e.kind} of a {e.lang or 'plain'} block"
        for e in ALL_EXAMPLES
        if (e.kind in {"run", "serve"} and e.lang not in {"sh", "python", "js"})
        or (e.kind == "serve" and e.lang != "sh")
        or (e.kind == "config" and (e.lang != "toml" or not e.attrs.get("file")))
    ]
    assert problems == []
    skips = [e.where() for e in ALL_EXAMPLES if e.kind == "skip"]
    assert len(skips) <= MAX_SKIPS, skips


@pytest.mark.parametrize(
    "example",
    [e for e in ALL_EXAMPLES if e.kind == "config"],
    ids=lambda e: e.where(),
)
def test_config_blocks_load_with_the_servers_loader(example: Example, tmp_path: Path) -> None:
    path = tmp_path / example.attrs["file"]
    path.write_text(example.text)
    config = load_config(path, env={})
    declared = tomllib.loads(example.text)
    assert len(config.chains) == len(declared.get("chains", []))


@pytest.mark.parametrize(
    "example",
    [e for e in ALL_EXAMPLES if e.kind == "output" and e.lang == "json"],
    ids=lambda e: e.where(),
)
def test_json_outputs_parse(example: Example) -> None:
    try:
        json.loads(example.text)
    except json.JSONDecodeError:
        for line in example.text.splitlines():
            json.loads(line)


# ---------------------------------------------------------------------------------------------
# Running a doc's examples


@dataclass
class Ports:
    """The documented addresses and the free ports the test gives them."""

    mapping: dict[str, int]

    @classmethod
    def fresh(cls, anvil: Anvil) -> Ports:
        return cls({"8080": free_port(), "9000": free_port(), "8545": anvil.port})

    def apply(self, text: str) -> str:
        for documented, port in self.mapping.items():
            text = re.sub(
                rf"\b(?:localhost|127\.0\.0\.1):{documented}\b", f"127.0.0.1:{port}", text
            )
        return text

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.mapping['8080']}"


def _node_modules_with_ws() -> Path | None:
    for candidate in (REPO / ".tools" / "node_modules", REPO / "benchmarks/loadgen/node_modules"):
        if (candidate / "ws").is_dir():
            return candidate
    return None


def _fresh_clone(root: Path) -> Path:
    """A working directory laid out as a clone after ``./scripts/serve`` made ``.venv``."""
    clone = root / "clone"
    clone.mkdir(parents=True)
    # What a clone has (the files git tracks), and the tools ./scripts/test installs; nothing a
    # developer made in the repository, so that no example writes there through a link.
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for name in {path.split("/")[0] for path in tracked.splitlines()} | {".tools"}:
        if (REPO / name).exists():
            (clone / name).symlink_to(REPO / name)
    venv_bin = clone / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name, command in (("python", ""), ("rtserver", " -m rtserver")):
        script = venv_bin / name
        script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)}{command} "$@"\n')
        script.chmod(0o755)
    # As ./scripts/serve leaves it, and newer than any pyproject.toml: it never installs here.
    stamp = clone / ".venv" / ".rtserver-installed"
    stamp.touch()
    os.utime(stamp, (time.time() + 10 * YEAR, time.time() + 10 * YEAR))
    return clone


@dataclass
class DocSession:
    """One reader's terminal for one doc: a shell that runs its blocks in order."""

    root: Path
    clone: Path
    ports: Ports
    env: dict[str, str]
    shell: subprocess.Popen[bytes]
    ran: int = 0

    @classmethod
    def start(cls, root: Path, anvil: Anvil) -> DocSession:
        clone = _fresh_clone(root)
        ports = Ports.fresh(anvil)
        home = root / "home"
        home.mkdir(parents=True)
        env = {
            **clean_env(),
            "HOME": str(home),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",  # prints show at once, as in a terminal
            "RTSERVER_SERVER_BIND": f"127.0.0.1:{ports.mapping['8080']}",
        }
        node_modules = _node_modules_with_ws()
        if node_modules is not None:
            env["NODE_PATH"] = str(node_modules)
        shell = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "shell.log", "wb"),  # noqa: SIM115 - the shell keeps it
            cwd=clone,
            env=env,
            start_new_session=True,  # its own process group: everything it starts stops with it
        )
        session = cls(root, clone, ports, env, shell)
        session._send('set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n')
        return session

    def _send(self, text: str) -> None:
        assert self.shell.stdin is not None
        self.shell.stdin.write(text.encode())
        self.shell.stdin.flush()

    def run_shell(self, example: Example) -> str:
        """Run a block in the shell; its output (stdout and stderr)."""
        self.ran += 1
        out, done = self.root / f"block-{self.ran}.out", self.root / f"block-{self.ran}.rc"
        self._send(f"{{\n{self.ports.apply(example.text)}\n}} >{out} 2>&1\necho 0 >{done}\n")
        deadline = time.monotonic() + BLOCK_TIMEOUT
        while not done.exists():
            if self.shell.poll() is not None:
                raise AssertionError(f"{example.where()} failed:\n{out.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{example.where()} still runs:\n{out.read_text()}")
            time.sleep(0.05)
        return out.read_text()

    def wait_serving(self, url: str, example: Example, pid: int | None = None) -> None:
        """Wait until ``url`` answers ``/healthz`` (and process ``pid``, if given, still runs)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.shell.poll() is not None:
                raise AssertionError(f"{example.where()}: the shell stopped")
            if pid is not None and not _alive(pid):
                raise AssertionError(f"{example.where()}: the server exited before serving")
            if _serving(url):
                return
            time.sleep(0.1)
        raise AssertionError(f"{example.where()}: no server at {url}")

    def _start_background(self, command: str, out: Path) -> int:
        """Start ``command`` in the background of the shell (with its variables); its pid."""
        self.ran += 1
        pid_file = self.root / f"block-{self.ran}.pid"
        out.touch()
        self._send(f"( exec {command}\n) >{out} 2>&1 &\necho $! >{pid_file}.tmp\n")
        self._send(f"mv {pid_file}.tmp {pid_file}\n")
        deadline = time.monotonic() + 10
        while not pid_file.exists():
            assert self.shell.poll() is None and time.monotonic() < deadline, f"no {command}"
            time.sleep(0.02)
        return int(pid_file.read_text())

    def _exit_status(self, pid: int, timeout: float) -> int:
        """Wait (in the shell) for the background process ``pid``; its exit status."""
        rc = self.root / f"exit-{pid}.rc"
        self._send(f"if wait {pid}; then echo 0 >{rc}; else echo $? >{rc}; fi\n")
        deadline = time.monotonic() + timeout
        while not rc.exists() or not rc.read_text().strip():
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"process {pid} still runs after {timeout} s")
            time.sleep(0.05)
        return int(rc.read_text())

    def serve_each_line(self, example: Example) -> None:
        """Start each command, see it serve, stop it with SIGTERM: it must exit 0."""
        for line in example.text.splitlines():
            command = self.ports.apply(line)
            bind = re.search(r"--bind\s+(\S+)", command)
            url = f"http://{bind.group(1)}" if bind else self.ports.server
            # What answers next must be this command's server.
            assert not _serving(url), f"{example.where()}: something already serves at {url}"
            out = self.root / f"serve-{self.ran}.out"
            server = self._start_background(command, out)
            self.wait_serving(url, example, server)
            os.kill(server, signal.SIGTERM)
            status = self._exit_status(server, 20)
            assert status == 0, f"{example.where()}: {line} exited {status}\n{out.read_text()}"

    def run_program(self, example: Example) -> str:
        """Run a Python or JavaScript block as its own process, from the shell; its output."""
        source = self.ports.apply(example.text)
        if example.lang == "python":
            path = self.clone / f"example-{self.ran}.py"
            command = f".venv/bin/python {path}"
        else:
            if "NODE_PATH" not in self.env:
                pytest.skip("the ws package is not installed (./scripts/install-tools)")
            # Node has no browser WebSocket: the ws package stands in for it.
            source = "globalThis.WebSocket = require('ws');\n" + source
            path = self.clone / f"example-{self.ran}.js"
            command = f"node {path}"
        path.write_text(source)
        until = example.attrs.get("until")
        out = self.root / f"program-{self.ran}.out"
        pid = self._start_background(command, out)
        if until is not None:  # a client that runs until stopped: stop it once it said `until`
            deadline = time.monotonic() + BLOCK_TIMEOUT
            while until not in out.read_text() and _alive(pid):
                assert time.monotonic() < deadline, f"{example.where()}: no {until!r} yet"
                time.sleep(0.05)
            if until in out.read_text():
                os.kill(pid, signal.SIGTERM)
                self._exit_status(pid, BLOCK_TIMEOUT)
                return out.read_text()
        status = self._exit_status(pid, BLOCK_TIMEOUT)
        output = out.read_text()
        assert until is None, f"{example.where()} ended without printing {until!r}:\n{output}"
        assert status == 0, f"{example.where()} exited {status}:\n{output}"
        return output

    def run_all(self, examples: list[Example]) -> None:
        """Write the doc's files, then run its blocks in order and check what they say."""
        for example in examples:
            if example.kind == "config":
                path = self.clone / example.attrs["file"]
                assert not path.exists(), f"{example.where()}: {path.name} is a file of the clone"
                path.write_text(self.ports.apply(example.text))
        for example in examples:
            if example.kind == "serve":
                self.serve_each_line(example)
                continue
            if example.kind != "run":
                continue
            if example.lang == "sh":
                output = self.run_shell(example)
            elif "check" in example.attrs:
                output = ""
            else:
                output = self.run_program(example)
            for expected in filter(None, example.attrs.get("expect", "").split(" && ")):
                assert expected in output, f"{example.where()}: no {expected!r} in\n{output}"
            if "serves" in example.attrs:
                self.wait_serving(self.ports.server, example)
            if "check" in example.attrs:
                CHECKS[example.attrs["check"]](example, self)

    def stop(self) -> None:
        assert self.shell.stdin is not None
        self.shell.stdin.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.shell.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.shell.wait(15)
                break
            except subprocess.TimeoutExpired:
                continue


def _serving(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def _verifies_a_signed_request(example: Example, session: DocSession) -> None:
    """README's ``verify`` accepts what rtserver's webhook sender signs, and nothing else."""
    namespace: dict[str, object] = {}
    exec(example.text, namespace)
    verify = namespace["verify"]
    assert callable(verify)
    secret = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LTMyLWJ5dGVzLWxvbmc="
    body = b'[{"txhash":"0x01"}]'
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign([secret], "msg_1", now, body),
    }
    assert verify(secret, headers, body) is True
    assert verify(secret, headers, body + b" ") is False
    old = {**headers, "webhook-timestamp": str(now - 600)}
    old["webhook-signature"] = sign([secret], "msg_1", now - 600, body)
    assert verify(secret, old, body) is False


#: Further checks a block names with ``check="..."``.
CHECKS: dict[str, Callable[[Example, DocSession], None]] = {
    "verify-webhook": _verifies_a_signed_request,
}


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    if anvil_binary() is None:
        pytest.skip("Anvil not installed (run ./scripts/test)")
    node = start_anvil(tmp_path_factory.mktemp("anvil"))
    yield node
    node.stop()


RUN_DOCS = [doc for doc in DOCS if any(e.kind in {"run", "serve"} for e in doc_examples(doc))]


@pytest.mark.anvil
@pytest.mark.parametrize("doc", RUN_DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_the_docs_examples_run_as_written(doc: Path, anvil: Anvil, tmp_path: Path) -> None:
    session = DocSession.start(tmp_path, anvil)
    try:
        session.run_all(doc_examples(doc))
    finally:
        session.stop()


_SERVER = "<!-- example: run serves -->\n```sh\n.venv/bin/rtserver serve &\n```\n"


@pytest.mark.anvil
@pytest.mark.parametrize(
    ("doc", "complaint"),
    [
        ("<!-- example: run -->\n```sh\nfalse\necho after\n```\n", "doc.md:2 failed"),
        (_SERVER + "<!-- example: run -->\n```sh\ncurl -s localhost:8080/nope\n```\n", "404"),
        ('<!-- example: run expect="pong" -->\n```sh\necho ping\n```\n', "no 'pong' in"),
        ("<!-- example: run -->\n```python\nraise SystemExit(3)\n```\n", "exited 3"),
        ('<!-- example: run until="never" -->\n```python\nprint("once")\n```\n', "ended without"),
        (
            _SERVER + "<!-- example: serve -->\n```sh\n.venv/bin/rtserver serve\n```\n",
            "already serves",
        ),
    ],
    ids=[
        "a-failing-command",
        "an-http-error",
        "a-missing-output",
        "an-exit-status",
        "until",
        "serve",
    ],
)
def test_a_failing_example_fails_the_test(
    doc: str, complaint: str, anvil: Anvil, tmp_path: Path
) -> None:
    path = tmp_path / "doc.md"
    path.write_text(doc)
    session = DocSession.start(tmp_path / "session", anvil)
    try:
        with pytest.raises(AssertionError, match=re.escape(complaint)):
            session.run_all(doc_examples(path))
    finally:
        session.stop()


# ---------------------------------------------------------------------------------------------
# Links

_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<(https?://[^>]+)>")
_BARE_URL = re.compile(r"https?://[^\s)>`\"']+")
_OUTSIDE_PATH = re.compile(r"`(\.\./[^`]+)`")
_LOCAL_HOSTS = {"localhost", "127.0.0.1"}


def _prose(doc: Path) -> Iterator[tuple[int, str]]:
    """The doc's lines outside fenced blocks, with their numbers."""
    in_block = False
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if _FENCE.match(line) or line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            yield number, line


def link_problems(doc: Path, repo: Path = REPO) -> list[str]:
    """Links of ``doc`` that leave ``repo`` or name a file it does not have."""
    problems: list[str] = []
    for number, line in _prose(doc):
        where = f"{doc.relative_to(repo)}:{number}"
        targets = [m.group(1) or m.group(2) for m in _LINK.finditer(line)]
        targets += [m.group(0) for m in _BARE_URL.finditer(_LINK.sub("", line))]
        for target in targets:
            if re.match(r"https?://", target):
                host = httpx.URL(target).host
                if host not in _LOCAL_HOSTS:
                    problems.append(f"{where}: {target} points outside the repository")
                continue
            path = target.split("#")[0]
            if not path:
                continue
            resolved = (doc.parent / path).resolve()
            if not resolved.is_relative_to(repo.resolve()):
                problems.append(f"{where}: {target} points outside the repository")
            elif not resolved.exists():
                problems.append(f"{where}: {target} does not exist")
        problems += [
            f"{where}: {m.group(1)} points outside the repository"
            for m in _OUTSIDE_PATH.finditer(line)
        ]
    return problems


def test_no_link_points_outside_the_repository() -> None:
    assert [problem for doc in DOCS for problem in link_problems(doc)] == []


def test_the_link_check_finds_outside_and_missing_targets(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "architecture.md").touch()
    doc = tmp_path / "docs" / "sample.md"
    doc.write_text(
        "[a](https://example.com/x) [b](missing.md) [c](architecture.md) <http://localhost:8080/>\n"
        "`../shared/spec/x.txt` and https://example.org in prose; [d](../../outside.md)\n"
        "```sh\ncurl https://example.net\n```\n"
    )
    assert link_problems(doc, tmp_path) == [
        "docs/sample.md:1: https://example.com/x points outside the repository",
        "docs/sample.md:1: missing.md does not exist",
        "docs/sample.md:2: ../../outside.md points outside the repository",
        "docs/sample.md:2: https://example.org points outside the repository",
        "docs/sample.md:2: ../shared/spec/x.txt points outside the repository",
    ]

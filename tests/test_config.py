from __future__ import annotations

from pathlib import Path

import pytest

from rtserver.config import load_config
from rtserver.exceptions import ConfigError

from conftest import run_cli


def test_defaults_listen_on_loopback_8080_with_local_data_dir() -> None:
    config = load_config(env={})
    assert config.server.bind == "127.0.0.1:8080"
    assert config.server.data_dir == "./rtserver-data"
    assert config.server.shutdown_grace == 10.0
    assert config.server.max_body_bytes == 1024 * 1024
    assert config.store.synchronous == "full"
    assert config.chains == ()


def test_file_then_env_then_flags_override_in_order(tmp_path: Path) -> None:
    path = tmp_path / "rt.toml"
    path.write_text(
        '[server]\nbind = "127.0.0.1:9000"\nshutdown_grace = 3\nlog_format = "json"\n'
        "[store]\nbatch_max = 7\n"
        '[[chains]]\nchain_type = "ethereum"\nchain_id = 1\nrpc_urls = ["http://127.0.0.1:8545"]\n'
    )
    config = load_config(
        path,
        env={"RTSERVER_STORE_BATCH_MAX": "9", "RTSERVER_SERVER_ADMIN_TOKEN": "t", "HOME": "/x"},
        overrides={"server": {"bind": "127.0.0.1:9001", "data_dir": None}},
    )
    assert config.server.bind == "127.0.0.1:9001"
    assert config.server.shutdown_grace == 3.0
    assert config.server.log_format == "json"
    assert config.server.admin_token == "t"
    assert config.store.batch_max == 9
    assert config.chains[0].rpc_urls == ("http://127.0.0.1:8545",)
    assert config.chains[0].confirmations == 0


@pytest.mark.parametrize(
    ("toml", "env", "key", "problem"),
    [
        ("[server]\nbindd = 1\n", {}, "server.bindd", "unknown key"),
        ("[nope]\nx = 1\n", {}, "nope", "unknown key"),
        ('[server]\nshutdown_grace = "soon"\n', {}, "server.shutdown_grace", "expected a number"),
        ("[server]\nmax_body_bytes = true\n", {}, "server.max_body_bytes", "expected an integer"),
        ("[server]\nmax_body_bytes = 0\n", {}, "server.max_body_bytes", "must be positive"),
        ('[server]\nbind = "nowhere"\n', {}, "server.bind", "expected HOST:PORT"),
        ('[store]\nsynchronous = "off"\n', {}, "store.synchronous", "expected one of"),
        ("", {"RTSERVER_STORE_READERS": "many"}, "store.readers", "cannot parse"),
        ("[store]\ncache_mib = 0\n", {}, "store.cache_mib", "must be positive"),
        ("", {"RTSERVER_SERVER_NOPE": "1"}, "server.nope", "unknown key"),
        ("", {"RTSERVER_BOGUS": "1"}, "RTSERVER_BOGUS", "unknown environment variable"),
        ("[[chains]]\nchain_id = 1\n", {}, "chains[0].chain_type", "is required"),
        (
            '[[chains]]\nchain_type = "ethereum"\nchain_id = 1\nrpc_urls = ["ftp://x"]\n',
            {},
            "chains[0].rpc_urls",
            "not an http(s) URL",
        ),
    ],
)
def test_wrong_config_names_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], key: str, problem: str
) -> None:
    path = tmp_path / "rt.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_unreadable_and_invalid_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad, env={})


def test_example_config_is_complete_and_valid() -> None:
    """config.example.toml loads, and every option of every section appears in it."""
    import dataclasses
    import tomllib

    from rtserver.config import ChainConfig, Config

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    load_config(example, env={})
    text = example.read_text()
    # Options are documented commented-out with their default: "# key = value".
    for section in dataclasses.fields(Config):
        if section.name == "chains":
            continue
        assert f"[{section.name}]" in text
        for option in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            assert f"# {option.name} = " in text or f"\n{option.name} = " in text, option.name
    for option in dataclasses.fields(ChainConfig):
        assert f"{option.name} = " in text, option.name
    tomllib.loads(text)


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["serve", "--config", "/nonexistent/rt.toml"], {}, "--config: cannot read"),
        (["serve"], {"RTSERVER_SERVER_BIND": "x"}, "server.bind"),
        (["apps", "list"], {"RTSERVER_STORE_TYPO": "1"}, "store.typo: unknown key"),
    ],
)
def test_cli_exits_2_with_one_line_naming_the_problem(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]

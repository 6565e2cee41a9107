"""The ``rtserver`` command: ``serve`` and ``apps`` management.

Exit codes: 0 success, 1 failure at run time (a crashed service, a port in use, an
unknown app), 2 wrong usage or configuration. ``apps`` commands open the database
directly, so they work while a server runs on the same data directory.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import logging
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from rtserver import dev
from rtserver.addresses import validate_address
from rtserver.clock import Clock
from rtserver.config import Config, load_config
from rtserver.demo import demo_component
from rtserver.exceptions import (
    BindError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
    RtserverError,
    ServiceCrashedError,
)
from rtserver.logs import configure_logging
from rtserver.server import DEFAULT_COMPONENTS, ComponentFactory, serve
from rtserver.store import (
    SCHEMA_VERSION,
    apps,
    backup_database,
    connect_database,
    pools,
    transaction,
    users,
    wallets,
    webhook_secrets,
    webhooks,
)
from rtserver.store.users import UserRef, validate_user_id
from rtserver.usage import usage_for_app
from rtserver.user_auth import mint_hs256

log = logging.getLogger("rtserver.cli")


def main(
    argv: Sequence[str] | None = None,
    *,
    components: Sequence[ComponentFactory] = DEFAULT_COMPONENTS,
) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    try:
        config = load_config(
            args.config,
            overrides={
                "server": {
                    "bind": getattr(args, "bind", None),
                    "data_dir": args.data_dir,
                    "log_format": args.log_format,
                    "log_level": args.log_level,
                }
            },
        )
    except ConfigError as exc:
        print(f"rtserver: config error: {exc}", file=sys.stderr)
        return 2
    command: object = args.command
    if command is _serve:  # the commands that also take the components
        return _serve(config, args, components)
    if command is _dev:
        return _dev(config, args, components)
    handler: Callable[[Config, argparse.Namespace], int] = args.command
    try:
        return handler(config, args)
    except NotFoundError as exc:
        print(f"rtserver: {exc}", file=sys.stderr)
        return 1
    except InvalidInputError as exc:  # a bad argument, like argparse's usage errors
        print(f"rtserver: {exc}", file=sys.stderr)
        return 2
    except (RtserverError, sqlite3.Error) as exc:
        print(f"rtserver: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="TOML configuration file")
    common.add_argument("--data-dir", metavar="DIR", help="where the database lives")
    common.add_argument("--log-format", choices=("text", "json"), help="log line format")
    common.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    parser = argparse.ArgumentParser(
        prog="rtserver",
        description="Self-hosted realtime server for wallet and payment apps.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"rtserver {_version()} (database schema {SCHEMA_VERSION})",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", parents=[common], help="run the server")
    serve_cmd.add_argument("--bind", metavar="HOST:PORT", help="listen address (127.0.0.1:8080)")
    serve_cmd.set_defaults(command=_serve)

    apps_cmd = commands.add_parser("apps", help="manage apps and their API keys")
    apps_sub = apps_cmd.add_subparsers(title="apps commands", metavar="ACTION", required=True)
    create = apps_sub.add_parser(
        "create", parents=[common], help="create an app; prints its API key once"
    )
    create.add_argument("name")
    create.add_argument("--webhook-url", metavar="URL")
    create.set_defaults(command=_apps_create)
    listing = apps_sub.add_parser("list", parents=[common], help="list apps as JSON")
    listing.set_defaults(command=_apps_list)
    revoke = apps_sub.add_parser("revoke", parents=[common], help="revoke an app's API key")
    revoke.add_argument("app_id")
    revoke.set_defaults(command=_apps_revoke)
    usage = apps_sub.add_parser(
        "usage", parents=[common], help="requests and pushed messages per day, as JSON"
    )
    usage.add_argument("app_id")
    usage.add_argument("--days", type=int, default=31, help="how many days back (31)")
    usage.set_defaults(command=_apps_usage)

    pools_cmd = commands.add_parser("pools", help="manage DEX pools and their recent trades")
    pools_sub = pools_cmd.add_subparsers(title="pools commands", metavar="ACTION", required=True)
    pools_list = pools_sub.add_parser("list", parents=[common], help="list pools as JSON")
    pools_list.set_defaults(command=_pools_list)
    for action, text in (
        ("add", "watch a pool (or re-enable it)"),
        ("enable", "resume keeping a pool's trades"),
        ("disable", "stop keeping a pool's trades (kept trades stay readable)"),
        ("remove", "forget a pool and its trades"),
    ):
        sub = pools_sub.add_parser(action, parents=[common], help=text)
        sub.add_argument("chain_type")
        sub.add_argument("chain_id", type=int)
        sub.add_argument("address")
        sub.set_defaults(command=_pools_change, action=action)

    dev_cmd = commands.add_parser(
        "dev",
        parents=[common],
        help="a local chain (Anvil), a server following it and a demo app, in one command",
    )
    dev_cmd.add_argument("--bind", metavar="HOST:PORT", help="listen address (127.0.0.1:8080)")
    dev_cmd.add_argument(
        "--anvil-port", type=int, default=8545, help="the local chain's port (8545)"
    )
    dev_cmd.set_defaults(command=_dev)

    backup = commands.add_parser(
        "backup", parents=[common], help="copy the database to a new file, while it serves"
    )
    backup.add_argument("destination", help="the new file (must not exist)")
    backup.set_defaults(command=_backup)

    users_cmd = commands.add_parser("users", help="end users' access tokens and JWTs")
    users_sub = users_cmd.add_subparsers(title="users commands", metavar="ACTION", required=True)
    token = users_sub.add_parser(
        "token", parents=[common], help="issue an access token for a user; prints it once"
    )
    token.add_argument("app_id")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=float, help="seconds (default channels.access_token_ttl)")
    token.set_defaults(command=_users_token)
    untoken = users_sub.add_parser(
        "revoke",
        parents=[common],
        help="revoke a user's access tokens (a running server logs it out)",
    )
    untoken.add_argument("app_id")
    untoken.add_argument("user_id")
    untoken.set_defaults(command=_users_revoke)
    minted = users_sub.add_parser(
        "jwt",
        parents=[common],
        help="mint an HS256 JWT for a user with jwt.hs256_secret (local use)",
    )
    minted.add_argument("user_id")
    minted.add_argument("--ttl", type=float, default=3600.0, help="seconds (3600)")
    minted.set_defaults(command=_users_jwt)

    _add_wallet_commands(users_sub, common)
    _add_webhook_commands(apps_sub, common)
    return parser


def _backup(config: Config, args: argparse.Namespace) -> int:
    source = config.database_path
    if not source.exists():
        raise NotFoundError(f"no database at {source}")
    destination = Path(args.destination)
    try:
        size = backup_database(source, destination, config.store)
    except FileExistsError as exc:
        raise InvalidInputError(str(exc)) from None
    hooks = config.webhooks
    key: Path | None = None  # a key given in the environment is the operator's to keep
    if not hooks.secret_key:
        key = Path(hooks.secret_key_file or config.data_dir / webhook_secrets.KEY_FILE_NAME)
    _print(
        {
            "database": str(destination),
            "bytes": size,
            # Without its key the webhook secrets in the copy cannot be read.
            "also_keep": str(key) if key is not None and key.exists() else None,
        }
    )
    return 0


def _version() -> str:
    try:
        return importlib.metadata.version("rtserver")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _add_wallet_commands(users_sub: Any, common: argparse.ArgumentParser) -> None:
    """The wallet registry (docs/wallet.md). Changes made here reach a running server's
    watch index within seconds; KYC and IBAN changes made here are not pushed to open
    sockets (the admin API pushes them): sockets show them from their next connect."""
    show = users_sub.add_parser("show", parents=[common], help="a user's KYC state and Safes")
    show.add_argument("app_id")
    show.add_argument("user_id")
    show.set_defaults(command=_users_show)
    safe = users_sub.add_parser(
        "safe", parents=[common], help="register a user's Safe on a configured chain"
    )
    safe.add_argument("app_id")
    safe.add_argument("user_id")
    safe.add_argument("chain_id", type=int)
    safe.add_argument("address")
    safe.add_argument("--signer", help="the signer that owns it (default: the address)")
    safe.add_argument("--threshold", type=int, default=1)
    safe.set_defaults(command=_users_safe)
    kyc = users_sub.add_parser("kyc", parents=[common], help="set a user's KYC state")
    kyc.add_argument("app_id")
    kyc.add_argument("user_id")
    kyc.add_argument("state")
    kyc.set_defaults(command=_users_kyc)
    iban = users_sub.add_parser("iban", parents=[common], help="set the IBAN of a user's Safe")
    iban.add_argument("app_id")
    iban.add_argument("user_id")
    iban.add_argument("chain_id", type=int)
    iban.add_argument("iban")
    iban.add_argument("--bic")
    iban.add_argument("--state", default="PENDING")
    iban.set_defaults(command=_users_iban)


def _wallet_user_json(conn: sqlite3.Connection, user: UserRef) -> Any:
    found = wallets.get_wallet_user(conn, user)
    if found is None:
        raise NotFoundError(f"no user {user.user_id!r} in app {user.app_id!r}")
    return {
        "app_id": user.app_id,
        "user_id": user.user_id,
        "kyc_state": found.kyc_state,
        "safes": [
            {
                "chain_id": s.chain_id,
                "address": s.address,
                "signer_id": s.signer_id,
                "threshold": s.threshold,
                "iban": {"iban": s.iban.iban, "bic": s.iban.bic, "state": s.iban.state},
            }
            for s in found.safes
        ],
    }


def _users_show(config: Config, args: argparse.Namespace) -> int:
    user = UserRef(args.app_id, validate_user_id(args.user_id))
    _print(_with_database(config, lambda conn: _wallet_user_json(conn, user)))
    return 0


def _users_safe(config: Config, args: argparse.Namespace) -> int:
    user = UserRef(args.app_id, validate_user_id(args.user_id))
    chain = next((c for c in config.chains if c.chain_id == args.chain_id), None)
    if chain is None:
        raise InvalidInputError(f"chain {args.chain_id} is not configured ([[chains]])")
    address = wallets.validate_evm_address(args.address, "address")
    signer = wallets.validate_signer(args.signer or address)
    threshold = wallets.validate_threshold(args.threshold)

    def work(conn: sqlite3.Connection) -> Any:
        wallets.put_safe(
            conn,
            user,
            chain_type=chain.chain_type,
            chain_id=chain.chain_id,
            address=address,
            signer_id=signer,
            threshold=threshold,
            now=Clock.system().time(),
        )
        return _wallet_user_json(conn, user)

    _print(_with_database(config, work))
    return 0


def _users_kyc(config: Config, args: argparse.Namespace) -> int:
    user = UserRef(args.app_id, validate_user_id(args.user_id))
    state = wallets.validate_state(args.state, "state")
    change = _with_database(
        config, lambda conn: wallets.set_kyc(conn, user, state, now_ms=Clock.system().time_ms())
    )
    _print({"previous_state": change.previous, "new_state": change.new})
    return 0


def _users_iban(config: Config, args: argparse.Namespace) -> int:
    user = UserRef(args.app_id, validate_user_id(args.user_id))
    iban = wallets.validate_iban(args.iban)
    bic = None if args.bic is None else wallets.validate_bic(args.bic)
    state = wallets.validate_state(args.state, "state")
    change = _with_database(
        config,
        lambda conn: wallets.set_iban(
            conn,
            user,
            args.chain_id,
            iban=iban,
            bic=bic,
            state=state,
            now_ms=Clock.system().time_ms(),
        ),
    )
    _print({"previous_state": change.previous.state, "new_state": change.safe.iban.state})
    return 0


def _users_token(config: Config, args: argparse.Namespace) -> int:
    user_id = validate_user_id(args.user_id)
    ttl = args.ttl if args.ttl is not None else config.channels.access_token_ttl
    if ttl <= 0:
        raise InvalidInputError("--ttl: must be positive")
    issued = _with_database(
        config,
        lambda conn: users.issue_token(
            conn, args.app_id, user_id, ttl=ttl, now=Clock.system().time()
        ),
    )
    _print(issued.to_json())
    return 0


def _users_revoke(config: Config, args: argparse.Namespace) -> int:
    user_id = validate_user_id(args.user_id)
    revoked = _with_database(
        config,
        lambda conn: users.revoke_tokens(
            conn, args.app_id, user_id, now_ms=Clock.system().time_ms()
        ),
    )
    _print({"app_id": args.app_id, "user_id": user_id, "revoked": revoked})
    return 0


def _users_jwt(config: Config, args: argparse.Namespace) -> int:
    user_id = validate_user_id(args.user_id)
    token = mint_hs256(config.jwt, user_id, ttl=args.ttl, now=Clock.system().time())
    _print({"token": token, "user_id": user_id, "app_id": config.jwt.app_id})
    return 0


def _serve(
    config: Config,
    args: argparse.Namespace,
    components: Sequence[ComponentFactory],
    on_listening: Callable[[list[str]], None] | None = None,
) -> int:
    """Serve until a signal; ``on_listening(binds)`` runs once the server accepts."""
    configure_logging(
        config.server.log_format, config.server.log_level, libraries=config.server.log_libraries
    )
    _tune_gc()
    try:
        trio.run(_serve_until_signal, config, components, on_listening)
    except BaseExceptionGroup as group:
        crashed, rest = group.split(ServiceCrashedError)
        if rest is not None:
            expected, other = rest.split((BindError, OSError))
            if other is not None:
                raise
            # One line per cause, naming it (not the nursery that carried it).
            for exc in _leaves(expected) if expected is not None else ():
                log.critical("cannot serve: %s", exc)
        # A service that found the configuration wrong at start (e.g. a webhook secret
        # key that does not open the stored secrets) is a config error: exit code 2.
        if crashed is not None and any(
            isinstance(exc.__cause__, ConfigError) for exc in _leaves(crashed)
        ):
            return 2
        return 1
    return 0


def _dev(config: Config, args: argparse.Namespace, components: Sequence[ComponentFactory]) -> int:
    """``rtserver dev`` (rtserver/dev.py): set up, serve, say where everything is."""
    throwaway = args.data_dir is None
    directory = Path(args.data_dir or tempfile.mkdtemp(prefix="rtserver-dev-"))
    try:
        try:
            binary = dev.find_anvil()
        except (ConfigError, subprocess.CalledProcessError) as exc:
            print(f"rtserver dev: {exc}", file=sys.stderr)
            return 2
        config = dev.dev_config(config, directory, args.anvil_port)
        setup = dev.prepare(directory, config)
        config = dev.with_demo_app(config, setup)

        def listening(binds: list[str]) -> None:
            # Only now: every address printed answers (the chain is followed, the
            # front accepts), so a newcomer's first request cannot race the start.
            print(dev.banner(binds[0], config, setup, args.anvil_port, throwaway), flush=True)

        extra = (dev.anvil_component(binary, args.anvil_port), demo_component(setup))
        return _serve(config, args, (*extra, *components), listening)
    finally:
        if throwaway:
            shutil.rmtree(directory, ignore_errors=True)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [
        leaf
        for exc in group.exceptions
        for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]


def _tune_gc() -> None:
    """Keep the cyclic garbage collector from pausing a server with a large heap.

    With thousands of connections the heap holds millions of long-lived objects, and
    CPython's default thresholds make full collections frequent and long (seconds at
    10,000 sockets). Objects alive at start are frozen out of collection, and young
    generations are collected less often; reference counting still frees almost
    everything at once.
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def _serve_until_signal(
    config: Config,
    components: Sequence[ComponentFactory],
    on_listening: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; a second signal cancels the graceful shutdown."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        requested = trio.Event()
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not requested.is_set():
                        log.info("%s received: graceful shutdown", name)
                        requested.set()
                    else:
                        log.warning("%s received again: stopping now", name)
                        nursery.cancel_scope.cancel()

            async def run_server(*, task_status: trio.TaskStatus[list[str]]) -> None:
                await serve(
                    config,
                    shutdown_trigger=requested.wait,
                    components=components,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_signals)
            binds = await nursery.start(run_server)
            if on_listening is not None:
                on_listening(binds)


def _with_database(config: Config, work: Callable[[sqlite3.Connection], Any]) -> Any:
    # Webhook secrets written here must use the server's key (webhooks.secret_key).
    webhook_secrets.use_config(config.database_path, config.webhooks)
    conn = connect_database(config.data_dir, config.database_path, config.store)
    try:
        with transaction(conn):
            return work(conn)
    finally:
        conn.close()


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=None))


def _apps_create(config: Config, args: argparse.Namespace) -> int:
    allow_private = config.webhooks.allow_private_addresses
    created = _with_database(
        config,
        lambda conn: apps.create_app(
            conn,
            args.name,
            args.webhook_url,
            now=Clock.system().time(),
            allow_private_addresses=allow_private,
        ),
    )
    _print(created.to_json())
    return 0


def _apps_list(config: Config, args: argparse.Namespace) -> int:
    found = _with_database(config, apps.list_apps)
    _print([app.to_json() for app in found])
    return 0


def _apps_revoke(config: Config, args: argparse.Namespace) -> int:
    app = _with_database(
        config, lambda conn: apps.revoke_app(conn, args.app_id, now=Clock.system().time())
    )
    _print(app.to_json())
    return 0


def _apps_usage(config: Config, args: argparse.Namespace) -> int:
    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        app = apps.get_app(conn, args.app_id)
        days = usage_for_app(conn, app.app_id, args.days, now=Clock.system().time())
        return {"app_id": app.app_id, "days": days}

    _print(_with_database(config, read))
    return 0


def _pools_list(config: Config, args: argparse.Namespace) -> int:
    _print([pool.to_json() for pool in _with_database(config, pools.list_pools)])
    return 0


def _pools_change(config: Config, args: argparse.Namespace) -> int:
    """Pool changes reach a running server within its index refresh interval."""
    chain_type = args.chain_type.lower()
    address = validate_address(chain_type, args.address)
    key = (chain_type, args.chain_id, address)

    def change(conn: sqlite3.Connection) -> Any:
        if args.action == "add":
            return pools.add_pool(conn, *key, now=Clock.system().time()).to_json()
        if args.action == "remove":
            pools.remove_pool(conn, *key)
            return {"removed": True}
        return pools.set_enabled(conn, *key, args.action == "enable").to_json()

    _print(_with_database(config, change))
    return 0


# -- webhooks (issue 5) --------------------------------------------------------------------


def _add_webhook_commands(apps_sub: Any, common: argparse.ArgumentParser) -> None:
    hook = apps_sub.add_parser(
        "webhook",
        parents=[common],
        help="show or change an app's webhook; list and retry its dead letters",
    )
    hook.add_argument("app_id")
    action = hook.add_mutually_exclusive_group()
    action.add_argument("--url", metavar="URL", help="set the endpoint (and re-enable it)")
    action.add_argument("--clear", action="store_true", help="remove the endpoint")
    action.add_argument(
        "--rotate-secret", action="store_true", help="new secret; the old one signs for a day"
    )
    action.add_argument("--dead-letters", action="store_true", help="list dead deliveries")
    action.add_argument(
        "--retry", metavar="DELIVERY_ID", help="requeue a dead delivery ('all' for every one)"
    )
    hook.set_defaults(command=_apps_webhook)


def _apps_webhook(config: Config, args: argparse.Namespace) -> int:
    """Exit 2 for a URL that is refused and for a key that does not open the secrets."""
    app_id = args.app_id
    allow_private = config.webhooks.allow_private_addresses
    if args.url is not None:  # refused before the database is opened
        webhooks.validate_url(args.url, allow_private_addresses=allow_private)

    clock = Clock.system()

    def work(conn: sqlite3.Connection) -> tuple[Any, webhooks.SealReport]:
        # The same step as at server start: what an older version stored in plaintext,
        # or under a previous key, is encrypted with this key first.
        report = webhooks.seal_stored_secrets(conn)
        if not args.rotate_secret:
            # Rotating is how an app recovers from a lost key: it needs no old secret.
            report.check(webhook_secrets.box_for(conn))
        if args.url is not None:
            settings = webhooks.set_webhook(
                conn, app_id, args.url, allow_private_addresses=allow_private
            )
            return settings.to_json(), report
        if args.clear:
            return webhooks.set_webhook(conn, app_id, None).to_json(), report
        if args.rotate_secret:
            overlap = config.webhooks.secret_overlap
            settings = webhooks.rotate_secret(conn, app_id, overlap, now=clock.time())
            return settings.to_json(), report
        if args.dead_letters:
            return webhooks.dead_letters(conn, app_id), report
        if args.retry is not None:
            one = None if args.retry == "all" else args.retry
            requeued = webhooks.retry_dead(conn, app_id, one, now_ms=clock.time_ms())
            return {"app_id": app_id, "requeued": requeued}, report
        return webhooks.get_settings(conn, app_id).to_json(), report

    webhook_secrets.use_config(config.database_path, config.webhooks)
    conn = connect_database(config.data_dir, config.database_path, config.store)
    try:
        with transaction(conn):
            result, report = work(conn)
        if report.sealed:
            # Pages that held plaintext must not stay in the WAL (a running server may
            # keep it from being emptied; it is then emptied at a later checkpoint).
            webhooks.checkpoint(conn)
    except ConfigError as exc:
        print(f"rtserver: config error: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    if report.missing_keys:
        try:
            report.check(webhook_secrets.box_for_path(config.database_path))
        except ConfigError as exc:
            print(f"rtserver: warning: {exc}", file=sys.stderr)
    if report.damaged:
        print(
            "rtserver: warning: the stored webhook secrets of"
            f" {', '.join(report.damaged)} do not authenticate; rotate them",
            file=sys.stderr,
        )
    # A running server picks requeued deliveries up within a minute (its next poll).
    _print(result)
    return 0

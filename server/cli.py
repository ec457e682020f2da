"""The `kefu` command: serve, check-config, keygen, key list/retire, app add/add-bulk/list/revoke/retire-key, session
list/end, staff add/passwd/list/disable/enable/remove/signout, webhook add/list/remove, backup, restore, verify,
status, audit verify/export/tail, data-key rotate/status/retire.

Theory of operation: every subcommand loads the configuration the same way (defaults <- --config file <-
KEFU_* environment <- flags), so `kefu check-config` shows exactly what `kefu serve` would run with. This
module imports only the standard library and kefu.server.config/log at import time: the server's
dependencies (uvloop, lmdb, prometheus-client; the `kefu[server]` extra) and the crypto are imported by the
subcommand that needs them, so `kefu --help` works on a plain `pip install kefu`.

Exit status: 0 success, 1 failure (bad configuration, refused operation, unhealthy server), 2 usage error
or missing server extra, 141 standard output closed before it was all written (`kefu app list | head`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import log
from .config import CONFIG_ENV, Config, ConfigError, describe_settings, load_config, render_example_toml, render_toml
from .engine.audit import Action
from .engine.identity import ROLES

__all__ = ["build_parser", "main"]

SERVER_EXTRA = ("uvloop", "lmdb", "prometheus_client")
STORE_EXTRA = ("lmdb",)
EXTRA_HINT = "pip install 'kefu[server]'"
STATUS_TIMEOUT_S = 5.0
EXIT_PIPE_CLOSED = 141
"""The status a command exits with when the reader of its output went away (128 + SIGPIPE, as the shell reports a
command SIGPIPE ended): `kefu app list | head` ends quietly."""

_SERVE_EPILOG = """\
Every setting below can be set in the TOML file given by --config (or $KEFU_CONFIG), overridden by its
environment variable, and the flags above override both. Lists in the environment are comma-separated;
booleans accept 1/0/true/false. `kefu check-config` prints the effective configuration.

"""


_CHECK_DESCRIPTION = """\
Print the effective configuration, then check what `kefu serve` checks before it writes anything: the settings,
the data directory (it can be made, read and written by this user; its key and store files too), the store's frame
and deployment marker, the service directory file, every routing rule (compiled) and every AI plugin (loaded).
Exit status 0: kefu serve would start (file modes wider than wanted are warnings: serve narrows them); 1: it would
refuse, each reason on its own line. The ports are not checked: the server this precedes may hold them.
"""


class CliError(Exception):
    """A failure to report on stderr as `kefu: <message>` with exit status 1."""


# --- the parser -----------------------------------------------------------------------------------------


def _config_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", metavar="PATH", help="TOML configuration file (default: $KEFU_CONFIG, else none)")
    p.add_argument("--data-dir", metavar="DIR", help="override [server] data_dir")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="override [log] level")
    p.add_argument("--log-json", action="store_true", default=None, help="log JSON lines ([log] json = true)")
    return p


def _listen_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--host", help="override [server] host")
    p.add_argument("--port", type=int, help="override [server] port")
    p.add_argument("--metrics-port", type=int, help="override [metrics] port")
    p.add_argument("--api-port", type=int, help="override [api] port")
    p.add_argument("--web-port", type=int, help="override [web] port")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of the `kefu` command."""
    parser = argparse.ArgumentParser(prog="kefu", description="kefu customer-service messaging server.")
    parser.add_argument("--version", action="version", version=f"kefu {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cfg, listen = _config_parent(), _listen_parent()
    raw = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("serve", parents=[cfg, listen], help="run the server", formatter_class=raw,
                       description="Run the server until SIGTERM/SIGINT. SIGHUP reloads the settings marked "
                       "reloadable, the service directory (with its rules and plugins), the data keys and app "
                       "credentials; the rest needs a restart (systemd/OPERATIONS.md).",
                       epilog=_SERVE_EPILOG + describe_settings())  # fmt: skip
    p.set_defaults(run=_cmd_serve)
    p = sub.add_parser("check-config", parents=[cfg, listen], help="check everything kefu serve would refuse, and "
                       "print the effective configuration", formatter_class=raw, description=_CHECK_DESCRIPTION,
                       epilog=describe_settings())  # fmt: skip
    p.add_argument("--example", action="store_true", help="print the commented example file (every key, defaults)")
    p.set_defaults(run=_cmd_check_config)
    p = sub.add_parser("keygen", parents=[cfg], help="add a server signing key (rotation)")
    p.add_argument("--type", choices=("sm2", "ed25519", "both"), default="both", help="key type (default: both)")
    p.set_defaults(run=_cmd_keygen)
    p = sub.add_parser("backup", parents=[cfg], help="copy the store consistently, even while serving")
    p.add_argument("dest", metavar="DEST", help="directory to create for the copy (must not exist)")
    p.set_defaults(run=_cmd_backup)
    p = sub.add_parser("restore", parents=[cfg], help="replace the store by a backup (the server must be stopped)",
                       description="Check BACKUP (made by kefu backup), set the current store aside as "
                       "wal.before-restore-<time>, and copy BACKUP in. Refused while a server runs on the data "
                       "directory. Keys are not in backups and are left as they are.")  # fmt: skip
    p.add_argument("backup", metavar="BACKUP", help="a directory made by kefu backup")
    p.add_argument("--force", action="store_true", help="restore a backup kefu verify finds damaged (its damaged "
                   "records are never served); one sealed under data keys not in keys/ is refused even so")  # fmt: skip
    p.set_defaults(run=_cmd_restore)
    p = sub.add_parser("verify", parents=[cfg], help="check every record of a store or a backup (exit 1: damage)",
                       description="Check every record of PATH (a store directory or a backup; default: the data "
                       "directory's store, and its archives): LMDB's structure, every value opened with its data "
                       "key and checked against its key and the records it points at, the log after the indexed "
                       "position, archive files. Read-only, beside a running server too. Exit status: 0 clean, 1 "
                       "damage found (or records that could not be checked), 2 usage error.")  # fmt: skip
    p.add_argument("path", metavar="PATH", nargs="?", help="a store directory or a backup (default: the data dir's)")
    p.add_argument("--archives", metavar="DIR", help="check the archive files in DIR too")
    p.add_argument("--keys", metavar="DIR", help="the data keys: a data directory, or its keys/ (default: ours)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_cmd_verify)
    p = sub.add_parser("status", parents=[cfg, listen], help="ask a running server's metrics port how it is")
    p.add_argument("--timeout", type=float, default=STATUS_TIMEOUT_S, help="seconds to wait (default: 5)")
    p.set_defaults(run=_cmd_status)
    _add_app_parsers(sub, cfg)
    _add_key_parsers(sub, cfg)
    _add_session_parsers(sub, cfg)
    _add_webhook_parsers(sub, cfg)
    _add_staff_parsers(sub, cfg)
    _add_audit_parsers(sub, cfg)
    _add_data_key_parsers(sub, cfg)
    return parser


def _add_data_key_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], cfg: argparse.ArgumentParser
) -> None:
    data_key = sub.add_parser("data-key", help="rotate and retire the data keys that seal the store").add_subparsers(
        dest="data_key_command", required=True, metavar="ACTION"
    )
    p = data_key.add_parser("rotate", parents=[cfg], help="add a data key ([storage] seal_cipher): it seals from the "
                            "server's next reload or start; older values are resealed in the background")  # fmt: skip
    p.add_argument("--reload", action="store_true", help="send SIGHUP to the server running on the data directory")
    p.set_defaults(run=_cmd_data_key)
    p = data_key.add_parser("status", parents=[cfg], help="per data key, the values sealed under it in the store, "
                            "the log and the archives (read-only, beside a running server too)")  # fmt: skip
    p.set_defaults(run=_cmd_data_key)
    p = data_key.add_parser("retire", parents=[cfg], help="delete an old data key once nothing is sealed under it")
    p.add_argument("key_id", metavar="N", type=int, help="the key's id (see data-key status)")
    p.set_defaults(run=_cmd_data_key)


def _cmd_data_key(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import datakeys  # noqa: PLC0415 - crypto and lmdb load only when needed

    return datakeys.command(args.data_key_command, args, config)


def _add_audit_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], cfg: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", help="verify and export the audit trail (read-only; beside a running server too)")
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", metavar="DIR", help="a store or backup directory (default: the data directory's)")
    p = actions.add_parser(
        "verify", parents=[cfg, store], help="prove the chain intact (exit 1 naming the first bad entry)"
    )
    p.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH",
                   help="a chain head from an audit.anchor log line, to check against; repeatable")  # fmt: skip
    p.set_defaults(run=_cmd_audit_verify)
    p = actions.add_parser("export", parents=[cfg, store], help="write the entries as JSON Lines (for a SIEM)")
    p.add_argument("--since", metavar="SEQ|TIME", help="from entry SEQ, or from an ISO time (UTC unless it says)")
    p.add_argument("--output", metavar="FILE", help="write to FILE (default: standard output)")
    p.set_defaults(run=_cmd_audit_export)
    p = actions.add_parser("tail", parents=[cfg, store], help="show the last entries")
    p.add_argument("-n", type=int, default=20, metavar="N", help="how many (default: 20)")
    p.set_defaults(run=_cmd_audit_tail)


def _add_key_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], cfg: argparse.ArgumentParser) -> None:
    key = sub.add_parser("key", help="list and retire server signing keys (see keygen)").add_subparsers(
        dest="key_command", required=True, metavar="ACTION"
    )
    p = key.add_parser("list", parents=[cfg], help="list the server keys, their pins and which ones sign")
    p.set_defaults(run=_cmd_key_list)
    p = key.add_parser("retire", parents=[cfg], help="delete an old key once every client pins its successor")
    p.add_argument("pin", metavar="PIN", help="the retired key's pin (sm2:<hex> or ed25519:<hex>, see key list)")
    p.set_defaults(run=_cmd_key_retire)


def _add_app_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], cfg: argparse.ArgumentParser) -> None:
    app = sub.add_parser("app", help="manage app credentials").add_subparsers(
        dest="app_command", required=True, metavar="ACTION"
    )
    p = app.add_parser("add", parents=[cfg], help="register an app and print its secret (once)")
    p.add_argument("name", metavar="NAME", help="the app id clients present")
    p.add_argument("--client-key-pin", action="append", default=[], metavar="PIN",
                   help="require a client signature by this key (sm2:<hex> or ed25519:<hex>); repeatable")  # fmt: skip
    p.add_argument("--role", default="app", choices=ROLES, help="what the app may do (spec section 13.1; default: app)")
    p.add_argument("--tenant", default="", help="the tenant it belongs to (default: none)")
    p.set_defaults(run=_cmd_app_add)
    p = app.add_parser(
        "add-bulk", parents=[cfg], help="benchmarking aid: register PREFIX0..PREFIX{COUNT-1} with derivable secrets"
    )
    p.add_argument("prefix", metavar="PREFIX", help="app ids are PREFIX followed by 0, 1, ... COUNT-1")
    p.add_argument("count", metavar="COUNT", type=int, help="how many apps")
    seed_help = "each secret is HMAC-SHA256(SEED, app id): anyone with SEED is every one of these apps"
    p.add_argument("--secret-seed", required=True, metavar="SEED", help=seed_help)
    p.add_argument("--role", default="app", choices=ROLES, help="what the apps may do (default: app)")
    p.set_defaults(run=_cmd_app_add_bulk)
    p = app.add_parser("list", parents=[cfg], help="list apps")
    p.set_defaults(run=_cmd_app_list)
    p = app.add_parser("revoke", parents=[cfg], help="delete an app's credentials and end its live sessions")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=_cmd_app_revoke)
    p = app.add_parser("retire-key", parents=[cfg], help="remove a client key of an app and end its sessions")
    p.add_argument("name", metavar="NAME")
    p.add_argument("pin", metavar="PIN", help="the client key's pin (sm2:<hex> or ed25519:<hex>, see app list)")
    p.set_defaults(run=_cmd_app_retire_key)


def _add_staff_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], cfg: argparse.ArgumentParser) -> None:
    staff = sub.add_parser("staff", help="manage staff accounts (console sign-in, spec section 16)").add_subparsers(
        dest="staff_command", required=True, metavar="ACTION"
    )
    password_help = "read the password from the first line of stdin (default: asked twice on the terminal)"  # noqa: S105
    p = staff.add_parser("add", parents=[cfg], help="create a staff account (and its app record, if missing)")
    p.add_argument("name", metavar="NAME", help="the account's name: the app id its sessions authenticate as")
    p.add_argument("--role", required=True, choices=("agent", "supervisor"), help="what the account may do")
    p.add_argument("--tenant", required=True, help="the tenant it belongs to")
    p.add_argument("--password-stdin", action="store_true", help=password_help)
    p.set_defaults(run=_cmd_staff_add)
    p = staff.add_parser("passwd", parents=[cfg], help="set a new password (signs the account out everywhere)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--password-stdin", action="store_true", help=password_help)
    p.set_defaults(run=_cmd_staff_passwd)
    p = staff.add_parser("list", parents=[cfg], help="list staff accounts")
    p.set_defaults(run=_cmd_staff_list)
    p = staff.add_parser("disable", parents=[cfg], help="refuse an account's sign-ins (signs it out everywhere)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=_cmd_staff_enable, enable=False)
    p = staff.add_parser("enable", parents=[cfg], help="let a disabled account sign in again")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=_cmd_staff_enable, enable=True)
    p = staff.add_parser("remove", parents=[cfg], help="delete a staff account and end its sessions")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=_cmd_staff_remove)
    p = staff.add_parser("signout", parents=[cfg], help="revoke an account's session credentials, end its sessions")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=_cmd_staff_signout)


def _add_webhook_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], cfg: argparse.ArgumentParser
) -> None:
    webhook = sub.add_parser("webhook", help="manage webhook subscriptions (spec section 18)").add_subparsers(
        dest="webhook_command", required=True, metavar="ACTION"
    )
    p = webhook.add_parser("add", parents=[cfg], help="subscribe a URL to events; prints its id, then its signing"
                           " secret (shown once)")  # fmt: skip
    p.add_argument("url", metavar="URL", help="the http:// or https:// endpoint the events are POSTed to")
    p.add_argument("--events", required=True, metavar="TYPES", help="comma-separated: message.committed,"
                   " conversation.opened, conversation.assigned, conversation.transferred, conversation.ended,"
                   " draft.decided; or all")  # fmt: skip
    p.add_argument("--tenant", default="", help="whose events (default: the tenant '' of apps without one)")
    p.add_argument("--algorithms", default="", metavar="ALGS",
                   help="comma-separated signature algorithms: hmac-sm3, hmac-sha256 (default: both)")  # fmt: skip
    p.set_defaults(run=_cmd_webhook_add)
    p = webhook.add_parser("list", parents=[cfg], help="list webhook subscriptions (without their secrets)")
    p.set_defaults(run=_cmd_webhook_list)
    p = webhook.add_parser("remove", parents=[cfg], help="delete a subscription (a running server stops within 1 s)")
    p.add_argument("id", metavar="ID")
    p.set_defaults(run=_cmd_webhook_remove)


def _add_session_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], cfg: argparse.ArgumentParser
) -> None:
    session = sub.add_parser("session", help="list and end a running server's live sessions").add_subparsers(
        dest="session_command", required=True, metavar="ACTION"
    )
    p = session.add_parser("list", parents=[cfg], help="list live sessions (app, role, process, address, since, suite)")
    p.add_argument("--app", default="", help="only this app's sessions")
    p.set_defaults(run=_cmd_session_list)
    p = session.add_parser("end", parents=[cfg], help="end every live session of an app (it may connect again)")
    p.add_argument("name", metavar="APP")
    p.set_defaults(run=_cmd_session_end)


def _version() -> str:
    from importlib import metadata  # noqa: PLC0415 - only for --version

    try:
        return metadata.version("kefu")
    except metadata.PackageNotFoundError:
        return "0+unknown"


# --- shared steps ---------------------------------------------------------------------------------------

_FLAGS = {
    "data_dir": "server.data_dir",
    "host": "server.host",
    "port": "server.port",
    "metrics_port": "metrics.port",
    "api_port": "api.port",
    "web_port": "web.port",
    "log_level": "log.level",
    "log_json": "log.json",
}


def _load(args: argparse.Namespace) -> Config:
    overrides = {name: getattr(args, attr) for attr, name in _FLAGS.items() if getattr(args, attr, None) is not None}
    return load_config(args.config, overrides=overrides)


def config_loader(argv: Sequence[str]) -> Callable[[], Config]:
    """What loads the configuration that `kefu serve` flags `argv` name (the worker processes of a server are started
    with them): call it again to reload (SIGHUP). ConfigError if invalid."""
    parser = argparse.ArgumentParser(prog="kefu", parents=[_config_parent(), _listen_parent()], add_help=False)
    args = parser.parse_args(list(argv))
    return lambda: _load(args)


def _require(modules: Sequence[str], what: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise CliError(f"{what} needs the server extra (missing {', '.join(missing)}): {EXTRA_HINT}")


# --- subcommands ----------------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace, config: Config) -> int:
    try:
        _require(SERVER_EXTRA, "kefu serve")
    except CliError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    from .runtime.serve import serve  # noqa: PLC0415 - the server and its dependencies load only to serve

    return serve(config, reload=lambda: _load(args), argv=_serve_argv(args))


def _serve_argv(args: argparse.Namespace) -> list[str]:
    """The configuration flags of this `kefu serve`, for its worker processes to load the same configuration."""
    argv = ["--config", args.config] if args.config else []
    for attr in _FLAGS:
        value = getattr(args, attr, None)
        if value is True:
            argv.append("--" + attr.replace("_", "-"))
        elif value is not None:
            argv += ["--" + attr.replace("_", "-"), str(value)]
    return argv


def _cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    if args.example:
        print(render_example_toml(), end="")
        return 0
    from . import startcheck  # noqa: PLC0415 - the service checks load lupa and the plugins

    config_file = args.config or os.environ.get(CONFIG_ENV)
    source = config_file or "no file"
    print(f"# kefu effective configuration ({source}, environment and flags applied)")
    print(render_toml(config, comments=False), end="")
    for warning in startcheck.warnings(config, config_file):
        print(f"kefu: warning: {warning}", file=sys.stderr)
    problems = startcheck.refusals(config)  # the very checks `kefu serve` runs before it writes anything
    if problems:
        print("kefu: kefu serve would refuse to start:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if not config.storage.seal:
        print(
            "kefu: WARNING: [storage] seal = false: a new store keeps every message, app and record IN CLEAR on disk,"
            " in its log, backups and archives (meant only for measuring the cost of sealing)",
            file=sys.stderr,
        )
    print(f"kefu: configuration OK ({source})", file=sys.stderr)
    return 0


def _cmd_keygen(args: argparse.Namespace, config: Config) -> int:
    from kefu.protocol.crypto import KeyType  # noqa: PLC0415 - keeps --help free of the crypto import

    from .admin import keys  # noqa: PLC0415

    types = [KeyType.SM2, KeyType.ED25519] if args.type == "both" else [KeyType[args.type.upper()]]
    for added in keys.generate(config, types):
        print(f"{added.path.name}  {added.pin}")
        _audit_key(config, Action.SERVER_KEY_ADD, added)
    print(
        "kefu: give these pins to clients before restarting the server: from its next start, the newest key of\n"
        "each type signs. Older keys stay pinned until `kefu key retire PIN` (see systemd/OPERATIONS.md).",
        file=sys.stderr,
    )
    return 0


def _cmd_key_list(args: argparse.Namespace, config: Config) -> int:
    from .admin import keys  # noqa: PLC0415 - crypto loads only when needed

    print(f"{'FILE':<18} {'STATUS':<7} PIN")
    for f, signs in keys.list_keys(config):
        print(f"{f.path.name:<18} {'signs' if signs else 'pinned':<7} {f.pin}")
    return 0


def _cmd_key_retire(args: argparse.Namespace, config: Config) -> int:
    from .admin import keys  # noqa: PLC0415 - crypto loads only when needed

    removed = keys.retire(config, args.pin)
    print(f"{removed.path.name}  {removed.pin}  retired")
    _audit_key(config, Action.SERVER_KEY_RETIRE, removed)
    print(
        f"kefu: {removed.path.name} deleted; {config.keys_path / 'pins.txt'} no longer lists it. Copies in key\n"
        "backups are still secrets: destroy them under your key-management procedure.",
        file=sys.stderr,
    )
    return 0


def _audit_key(config: Config, action: str, key_file: Any) -> None:
    """Record a server key's change in the audit trail (when the store exists and lmdb is installed)."""
    if importlib.util.find_spec("lmdb") is not None:
        from .admin.audit import record_if_store  # noqa: PLC0415

        record_if_store(config, action, key_file.path.name, {"pin": key_file.pin})


def _cmd_app_add(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import apps  # noqa: PLC0415 - crypto and lmdb load only when needed
    from .engine.identity import Role  # noqa: PLC0415
    from .identity.keys import encode_secret  # noqa: PLC0415

    record, secret = apps.add_app(
        config, args.name, client_key_pins=args.client_key_pin, role=Role(args.role), tenant=args.tenant
    )
    print(
        f"kefu: app {record.app_id!r} created (role {record.role}). Its secret, shown only this once:", file=sys.stderr
    )
    print(encode_secret(secret))
    return 0


def _cmd_app_add_bulk(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import apps  # noqa: PLC0415 - crypto and lmdb load only when needed
    from .engine.identity import Role  # noqa: PLC0415

    created = apps.add_apps_in_bulk(config, args.prefix, args.count, args.secret_seed.encode(), role=Role(args.role))
    print(f"kefu: {created} new apps {args.prefix}0..{args.prefix}{args.count - 1} (secret = HMAC-SHA256(seed, id));"
          " a benchmarking aid: never use derivable secrets for real apps", file=sys.stderr)  # fmt: skip
    print(created)
    return 0


def _cmd_app_list(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import apps  # noqa: PLC0415

    rows = [
        (r.app_id, str(r.role), r.tenant or "-", _utc(r.created_ms), ",".join(r.pins) or "-")
        for r in apps.list_apps(config)
    ]
    _print_table(("APP", "ROLE", "TENANT", "CREATED (UTC)", "CLIENT KEY PINS"), rows)
    return 0


def _utc(ms: int) -> str:
    import datetime as dt  # noqa: PLC0415

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns as wide as their widest cell (the last one unpadded), two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    for row in (headers, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        print("  ".join([*cells, row[-1]]))


def _cmd_app_revoke(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import apps  # noqa: PLC0415

    poke = apps.revoke(config, args.name)
    print(f"kefu: app {args.name!r} revoked; {_ended(poke)}", file=sys.stderr)
    return 0


def _cmd_app_retire_key(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import apps  # noqa: PLC0415

    _, poke = apps.retire_key(config, args.name, args.pin)
    print(f"kefu: client key {args.pin} of app {args.name!r} retired; {_ended(poke)}", file=sys.stderr)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    """The new password: the first line of stdin (--password-stdin), or asked twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("standard input is not a terminal: pass the password with --password-stdin")
    import getpass  # noqa: PLC0415 - only when a password is asked for

    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise CliError("the passwords differ")
    return first


def _cmd_staff_add(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import staff  # noqa: PLC0415 - crypto and lmdb load only when needed
    from .engine.identity import Role  # noqa: PLC0415

    created = staff.add_staff(config, args.name, _read_password(args), role=Role(args.role), tenant=args.tenant)
    app = f"app {args.name!r} created" if created else f"its existing app {args.name!r} kept"
    print(f"kefu: staff account {args.name!r} created ({args.role} of tenant {args.tenant!r}; {app})", file=sys.stderr)
    return 0


def _cmd_staff_passwd(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import staff  # noqa: PLC0415

    poke = staff.set_password(config, args.name, _read_password(args))
    print(f"kefu: password of {args.name!r} changed, its sessions revoked; {_ended(poke)}", file=sys.stderr)
    return 0


def _cmd_staff_list(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import staff  # noqa: PLC0415

    rows = [
        (r.name, r.role, r.tenant or "-", "yes" if r.enabled else "no", _utc(r.created_ms), str(r.sessions))
        for r in staff.list_staff(config)
    ]
    _print_table(("NAME", "ROLE", "TENANT", "ENABLED", "CREATED (UTC)", "SESSIONS"), rows)
    return 0


def _cmd_staff_enable(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import staff  # noqa: PLC0415

    poke = staff.set_enabled(config, args.name, enabled=args.enable)
    what = "enabled" if args.enable else f"disabled, its sessions revoked; {_ended(poke)}"
    print(f"kefu: staff account {args.name!r} {what}", file=sys.stderr)
    return 0


def _cmd_staff_remove(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import staff  # noqa: PLC0415

    poke = staff.remove(config, args.name)
    print(f"kefu: staff account {args.name!r} removed (its app record stays: kefu app revoke deletes it);"
          f" {_ended(poke)}", file=sys.stderr)  # fmt: skip
    return 0


def _cmd_staff_signout(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import staff  # noqa: PLC0415

    revoked, poke = staff.signout(config, args.name)
    print(f"kefu: {revoked} session credential(s) of {args.name!r} revoked; {_ended(poke)}", file=sys.stderr)
    return 0


def _cmd_webhook_add(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    import time  # noqa: PLC0415

    from .admin import webhooks  # noqa: PLC0415 - crypto and lmdb load only when needed

    events, algorithms = args.events.split(","), [a for a in args.algorithms.split(",") if a]
    sub = webhooks.add_webhook(
        config, args.url, events, tenant=args.tenant, algorithms=algorithms, now_ms=int(time.time() * 1000)
    )
    print(f"kefu: webhook {sub.id} created ({', '.join(sub.events)} of tenant {sub.tenant!r} to {sub.url}); its id,"
          " then its signing secret, shown only this once:", file=sys.stderr)  # fmt: skip
    print(sub.id)
    print(sub.secret.decode())
    return 0


def _cmd_webhook_list(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import webhooks  # noqa: PLC0415

    rows = [
        (s.id, s.tenant or "-", _utc(s.created_ms), ",".join(s.algorithms), ",".join(s.events), s.url)
        for s in webhooks.list_webhooks(config)
    ]
    _print_table(("ID", "TENANT", "CREATED (UTC)", "SIGNED WITH", "EVENTS", "URL"), rows)
    return 0


def _cmd_webhook_remove(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import webhooks  # noqa: PLC0415

    webhooks.remove_webhook(config, args.id)
    print(f"kefu: webhook {args.id} removed", file=sys.stderr)
    return 0


def _cmd_session_list(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import sessions  # noqa: PLC0415

    found = sessions.list_sessions(config, args.app)
    columns = ("app", "role", "process", "address", "since", "suite")
    rows = [[str(s[c]) for c in columns] + [s["client_key"] or "-"] for s in found.sessions]
    _print_table(("APP", "ROLE", "PROCESS", "ADDRESS", "SINCE (UTC)", "SUITE", "CLIENT KEY"), rows)
    for process in found.truncated:
        print(f"kefu: {process} listed only its first sessions (use --app to narrow)", file=sys.stderr)
    for process in found.unreachable:
        print(f"kefu: {process} did not answer", file=sys.stderr)
    return 1 if found.unreachable else 0


def _cmd_session_end(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import sessions  # noqa: PLC0415

    poke = sessions.end(config, args.name)
    print(f"kefu: sessions of app {args.name!r}: {_ended(poke)}", file=sys.stderr)
    return 0


def _ended(poke: Any) -> str:
    """What a running server's processes did with a session order, in words."""
    if not poke.running:
        return "no server is running here (a server that starts refuses what the store no longer allows)"
    if not poke.reached and not poke.unreachable:  # its operator sockets are gone: it reads its orders from the store
        pid = f" (pid {poke.pid})" if poke.pid is not None else ""
        return (f"the running server{pid} was not reached over an operator socket; its gateways apply the order "
                "from the store within a second")  # fmt: skip
    text = f"{poke.ended} live session(s) ended by {', '.join(poke.reached) or 'no process'}"
    if poke.unreachable:
        text += f"; {', '.join(poke.unreachable)} did not answer and will apply it within a second"
    return text


def _cmd_backup(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import backup  # noqa: PLC0415 - lmdb is an optional extra

    dest = Path(args.dest)
    backup.backup(config, dest)
    print(f"kefu: store copied to {dest}")
    print(
        f"kefu: the server keys in {config.keys_path} are not in this copy: back them up separately, as secrets.",
        file=sys.stderr,
    )
    return 0


def _cmd_restore(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "kefu restore")
    from .admin import backup  # noqa: PLC0415 - lmdb is an optional extra

    info, aside = backup.restore(config, Path(args.backup), force=args.force)
    counts = ", ".join(f"{info.entries.get(db, 0)} {db}" for db in ("messages", "conversations", "apps"))
    print(f"kefu: restored {info.path} into {config.store_path} (schema {info.schema_version}; {counts})")
    if aside is not None:
        print(f"kefu: the previous store is in {aside}: delete it once the restore is confirmed", file=sys.stderr)
    print(
        f"kefu: keys in {config.keys_path} were left as they are (backups do not hold keys). Messages stored after\n"
        "the backup was made are not in the restored store; see systemd/OPERATIONS.md before starting the server.",
        file=sys.stderr,
    )
    return 0


def _cmd_verify(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "kefu verify")
    from .admin import verify  # noqa: PLC0415 - lmdb is an optional extra

    return verify.command(args, config)


def _cmd_status(args: argparse.Namespace, config: Config) -> int:
    from .admin.status import status  # noqa: PLC0415

    found = status(config, args.timeout)
    health = found.health
    uptime = float(health.get("uptime_s", 0))
    print(f"kefu {health.get('version', '?')} at {found.base}: {health.get('status', '?')}, up {uptime:.0f} s")
    for line in found.summary:
        print("  " + line)
    return 0 if found.healthy else 1


def _cmd_audit_verify(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import audit  # noqa: PLC0415 - crypto and lmdb load only when needed

    with audit.open_for_reading(config, args.store) as store:
        report = audit.verify(store, args.anchor)
    seq, digest = report.head
    if report.problem is not None:
        problem = report.problem
        print(f"kefu: audit trail NOT intact: entry {problem.seq} {problem.kind}: {problem.detail}")
        print(f"kefu: entries 1..{seq} are intact (head {seq}:{digest.hex()})", file=sys.stderr)
        return 1
    anchors = f"; {report.anchors_matched} anchor(s) matched" if args.anchor else ""
    print(f"kefu: audit trail intact: {report.checked} entries, head {seq}:{digest.hex()}{anchors}")
    return 0


def _cmd_audit_export(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import audit  # noqa: PLC0415

    with audit.open_for_reading(config, args.store) as store:
        if args.output:
            with open(args.output, "w", encoding="utf-8") as out:
                written, unreadable = audit.export(store, out, args.since)
        else:
            written, unreadable = audit.export(store, sys.stdout, args.since)
    for line in unreadable:
        print(f"kefu: left out: {line}", file=sys.stderr)
    print(f"kefu: {written} audit entries exported", file=sys.stderr)
    return 1 if unreadable else 0


def _cmd_audit_tail(args: argparse.Namespace, config: Config) -> int:
    _require(STORE_EXTRA, "this command")
    from .admin import audit  # noqa: PLC0415

    with audit.open_for_reading(config, args.store) as store:
        for line in audit.tail(store, args.n):
            print(line)
    return 0


# --- entry point ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `kefu` command; returns the exit status."""
    from .storage.modes import private_umask  # noqa: PLC0415 - standard library only

    private_umask()  # whatever started kefu, what it creates is its user's alone (kefu.server.storage.modes)
    args = build_parser().parse_args(argv)
    try:
        config = _load(args)
    except ConfigError as exc:
        print("kefu: configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    # serve logs at the configured level; one-shot commands only warnings unless --log-level asks for more
    level = config.log.level if args.run is _cmd_serve or args.log_level else "warning"
    log.configure(level, json_lines=config.log.json)
    from .admin.errors import AdminError  # noqa: PLC0415 - standard library only
    from .storage.preflight import OpenRefused  # noqa: PLC0415 - standard library only

    try:
        status: int = args.run(args, config)
        sys.stdout.flush()  # here, where a reader gone early is caught, rather than at exit
    except (CliError, AdminError, OpenRefused) as exc:  # OpenRefused: the store was not opened (damaged, not ours)
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `kefu app list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is left unflushed goes nowhere
        return EXIT_PIPE_CLOSED
    return status


if __name__ == "__main__":
    raise SystemExit(main())

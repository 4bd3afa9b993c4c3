"""`csignal config`: the account configuration as YAML — check, import, export, schema.

While control runs, `import` and `export` go through its operator API: control owns the
configuration (validates, stores, audits and publishes it to workers), resolving `${VAR}` secrets
from its own environment. Otherwise `import` stores the configuration in
`$SIGNAL_DATA_DIR/account.yaml`, in export form (secrets only as `${VAR}` references, resolved
from the environment of whoever loads it), which control takes over when it first starts.

Exit codes: 0 done (incomplete flows are warnings), 1 the configuration has problems or is
missing, 3 a part this build does not have yet.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from apiclient.client import ApiClient
from apiclient.errors import ApiError, ControlUnreachable, RequestRefused
from config.completeness import completeness
from config.models import Account
from config.schema import account_json_schema
from config.settings import Settings
from config.yamlio import Loaded, YamlSyntaxError, dump_account, load_text, write_account

OK = 0
INVALID = 1
NOT_YET = 3

CHANGE_SCHEMA_MODULE = "stream.certain.schema"
CHANGE_SCHEMA_FUNCTION = "change_event_json_schema"


@dataclass(frozen=True)
class ConfigCommand:
    name: str = "config"
    help: str = "account configuration: import, export, check, schema"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name, help=self.help, description=__doc__.split("\n\n")[0] if __doc__ else None
        )
        actions = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND")

        check = actions.add_parser("check", help="report every problem in a configuration file")
        check.add_argument("file", type=Path, metavar="FILE")
        check.set_defaults(handler=run_check)

        imp = actions.add_parser("import", help="validate a file and store it as the account's")
        imp.add_argument("file", type=Path, metavar="FILE")
        imp.set_defaults(handler=run_import)

        exp = actions.add_parser("export", help="write the stored configuration (no secrets)")
        exp.add_argument("--output", "-o", type=Path, metavar="FILE", help="default: stdout")
        exp.set_defaults(handler=run_export)

        schema = actions.add_parser("schema", help="print the JSON Schema of the configuration")
        schema.add_argument(
            "--change", action="store_true", help="print the change-event schema instead"
        )
        schema.set_defaults(handler=run_schema)

        parser.set_defaults(handler=lambda _args: _usage(parser))
        return parser


COMMAND = ConfigCommand()


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


# --- check / import ----------------------------------------------------------------------------


def _load_file(path: Path, err: TextIO) -> Loaded | None:
    """The file loaded and validated, or None after saying why it could not even be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        print(f"{path}: cannot read: {error.strerror or error}", file=err)
        return None
    except UnicodeDecodeError as error:
        print(f"{path}: not UTF-8 text ({error.reason})", file=err)
        return None
    try:
        # An unset `${VAR}` is a warning, as control's import says it: the connection has no
        # secret until the variable is set where the configuration is loaded.
        return load_text(text, require_env=False, allow=Settings().env_allowlist)
    except YamlSyntaxError as error:
        where = f":{error.line}:{error.column}" if error.line is not None else ""
        print(f"{path}{where}: YAML syntax error: {error.problem}", file=err)
        return None


def _report(loaded: Loaded, out: TextIO) -> None:
    for problem in loaded.problems:
        print(str(problem), file=out)
    for path in loaded.literal_secrets:
        print(
            f"warning: {path}: literal secret; it is never exported or stored — "
            "give it as ${VAR} instead",
            file=out,
        )
    if loaded.account is None:
        return
    refused = {p.path for p in loaded.problems}
    # (where, its secret's field, the variable named, the value it gave, what goes without it)
    references = [
        (
            f"connections[{i}]",
            "client_secret",
            c.client_secret_ref,
            c.client_secret,
            "it sends nothing to Marketo",
        )
        for i, c in enumerate(loaded.account.connections)
    ] + [
        (f"certain_sources[{i}]", "password", s.password_ref, s.password, "it polls nothing")
        for i, s in enumerate(loaded.account.certain_sources)
    ]
    for where, field, ref, value, without in references:
        if ref and value is None and f"{where}.{field}" not in refused:
            what = field.replace("_", " ")
            print(
                f"warning: {where}: no {what} (environment variable {ref} is not set); "
                f"{without} until the variable is set",
                file=out,
            )
    for index, flow in enumerate(loaded.account.flows):
        reasons = completeness(flow, loaded.account)
        if reasons:
            print(
                f"warning: flows[{index}] {flow.id!r} is incomplete and will not run: "
                + "; ".join(reasons),
                file=out,
            )


def run_check(args: argparse.Namespace) -> int:
    loaded = _load_file(args.file, sys.stdout)
    if loaded is None:
        return INVALID
    _report(loaded, sys.stdout)
    if not loaded.ok:
        count = len(loaded.problems)
        print(f"{args.file}: {count} problem{'s' if count != 1 else ''}", file=sys.stdout)
        return INVALID
    print(f"{args.file}: valid ({_summary(loaded.account)})")
    return OK


def run_import(args: argparse.Namespace) -> int:
    handled = _import_via_control(args.file)
    if handled is not None:
        return handled
    loaded = _load_file(args.file, sys.stderr)
    if loaded is None:
        return INVALID
    if not loaded.ok or loaded.account is None:
        _report(loaded, sys.stderr)
        print(f"{args.file}: not imported", file=sys.stderr)
        return INVALID
    _report(loaded, sys.stdout)
    target = Settings().account_path
    write_account(loaded.account, target)
    print(f"imported account {loaded.account.account}: {_summary(loaded.account)} → {target}")
    return OK


def _summary(account: Account | None) -> str:
    if account is None:
        return "nothing loaded"
    complete = sum(1 for flow in account.flows if not completeness(flow, account))
    return (
        f"{_count(account.tags, 'tag')}, {_count(account.connections, 'connection')}, "
        f"{_count(account.mappings, 'mapping')}, {_count(account.flows, 'flow')} "
        f"({complete} complete, {len(account.flows) - complete} incomplete)"
    )


def _count(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


# --- export ------------------------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    handled = _export_via_control(args.output)
    if handled is not None:
        return handled
    source = Settings().account_path
    if not source.exists():
        print(
            f"no account configuration stored at {source} (csignal config import FILE first)",
            file=sys.stderr,
        )
        return INVALID
    try:
        loaded = load_text(source.read_text(encoding="utf-8"), require_env=False)
    except YamlSyntaxError as error:
        where = f":{error.line}:{error.column}" if error.line is not None else ""
        print(f"{source}{where}: YAML syntax error: {error.problem}", file=sys.stderr)
        return INVALID
    if loaded.account is None:
        _report(loaded, sys.stderr)
        print(f"{source}: stored configuration does not load", file=sys.stderr)
        return INVALID
    text = dump_account(loaded.account)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"exported account {loaded.account.account} → {args.output}", file=sys.stderr)
    return OK


# --- through control ---------------------------------------------------------------------------
# While control runs it owns the configuration (stored, audited, published to workers), so import
# and export go through its API; the file in the data dir is only the fallback when it does not.


def _with_control(work: Callable[[ApiClient], Awaitable[int]]) -> int | None:
    """Run `work` against control; None when control is not reachable (use the file instead)."""

    async def main() -> int | None:
        async with ApiClient() as client:
            try:
                await client.healthz()
            except ControlUnreachable:
                return None
            return await work(client)

    try:
        return asyncio.run(main())
    except RequestRefused as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        if not error.problems:
            print(error.detail, file=sys.stderr)
        return INVALID
    except ApiError as error:
        print(f"csignal config: {error}", file=sys.stderr)
        return INVALID


def _import_via_control(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # the file path reports it

    async def work(client: ApiClient) -> int:
        try:
            result = await client.put_config(text)
        except RequestRefused:
            print(f"{path}: not imported", file=sys.stderr)
            raise
        for warning in result.get("warnings") or []:
            print(f"warning: {warning}")
        changed = ", ".join(
            f"{len(result.get(key) or [])} {key}" for key in ("created", "updated", "deleted")
        )
        print(
            f"imported account {result.get('account', '?')} into control at "
            f"{client.base_url}: {changed}"
        )
        return OK

    return _with_control(work)


def _export_via_control(output: Path | None) -> int | None:
    async def work(client: ApiClient) -> int:
        text = await client.get_config()
        if output is None:
            sys.stdout.write(text)
        else:
            await asyncio.to_thread(output.write_text, text, encoding="utf-8")
            print(f"exported the account from control → {output}", file=sys.stderr)
        return OK

    return _with_control(work)


# --- schema ------------------------------------------------------------------------------------


def run_schema(args: argparse.Namespace) -> int:
    if args.change:
        schema = change_schema()
        if schema is None:
            print(
                "csignal config schema --change: not yet available in this build", file=sys.stderr
            )
            return NOT_YET
    else:
        schema = account_json_schema()
    print(json.dumps(schema, indent=2, ensure_ascii=False))
    return OK


def change_schema() -> dict[str, Any] | None:
    """The change-event schema from `stream.certain`, or None when that part is not built."""
    try:
        module = importlib.import_module(CHANGE_SCHEMA_MODULE)
    except ImportError:
        return None
    build = getattr(module, CHANGE_SCHEMA_FUNCTION, None)
    if build is None:
        return None
    schema: dict[str, Any] = build()
    return schema

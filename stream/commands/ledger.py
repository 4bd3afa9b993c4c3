"""`csignal backup DIR` and `csignal restore DIR`: a consistent copy of the ledger taken by the
running control, and its restore into a stopped installation.

`backup` asks control (the only process that opens the ledger) to write the copy on its host, then
follows the job, printing each table's progress and, at the end, the size written. `restore`
works on the data directory itself and refuses while a control holds the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from apiclient.client import ApiClient
from stream.commands._api import FAILED, add_api_option, run_with_client
from stream.commands.base import add_format_option, write_csv_record

POLL_S = 0.5


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


async def follow_job(
    client: ApiClient, job: dict[str, Any], out: TextIO, poll_s: float = POLL_S
) -> dict[str, Any]:
    """Poll a ledger job until it ends, printing a line each time it moves to another table."""
    shown: str | None = None
    while True:
        table = job.get("table")
        if table and table != shown:
            print(f"  copying {table} ({job.get('rows_total', 0)} rows)", file=out, flush=True)
            shown = table
        if job.get("state") != "running":
            return job
        await asyncio.sleep(poll_s)
        job = await client.ledger_job(str(job["id"]))


@dataclass(frozen=True)
class BackupCommand:
    name: str = "backup"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help="a consistent copy of the ledger, taken while Signal runs",
            description="Ask the running control for a consistent copy of the ledger (every "
            "table as of one instant) in DIR, a new or empty directory on control's host. "
            "Secrets and API tokens are not part of it.",
        )
        parser.add_argument("dir", metavar="DIR", help="where to write the backup")
        add_api_option(parser)
        parser.set_defaults(handler=run_backup)
        return parser


def run_backup(args: argparse.Namespace) -> int:
    directory = str(Path(args.dir).expanduser().absolute())

    async def work(client: ApiClient) -> int:
        job = await client.ledger_backup(directory)
        print(f"backing up the ledger into {directory} ({job['id']})", flush=True)
        job = await follow_job(client, job, sys.stdout)
        if job.get("state") != "done":
            print(f"csignal backup: failed: {job.get('error')}", file=sys.stderr)
            return FAILED
        result = job.get("result") or {}
        for table, count in sorted((result.get("tables") or {}).items()):
            print(f"  {table}: {count} rows")
        rows = sum(int(n) for n in (result.get("tables") or {}).values())
        print(
            f"backup done: {rows} rows in {len(result.get('tables') or {})} tables, "
            f"{human_bytes(int(result.get('bytes', 0)))} written to {directory} "
            f"(schema version {result.get('schema_version')}, {result.get('elapsed_s')} s)"
        )
        return 0

    return run_with_client("backup", args, work)


@dataclass(frozen=True)
class RestoreCommand:
    name: str = "restore"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help="restore a backup into a stopped installation",
            description="Put the backup in DIR in place of the data directory's ledger. Control "
            "must be stopped; a ledger that already holds rows is replaced only with --force; "
            "a backup from a newer Signal is refused.",
        )
        parser.add_argument("dir", metavar="DIR", help="a directory written by csignal backup")
        parser.add_argument(
            "--data-dir",
            metavar="DIR",
            default=None,
            help="the installation's data directory (default: $SIGNAL_DATA_DIR, ./var)",
        )
        parser.add_argument(
            "--force", action="store_true", help="replace a ledger that already holds rows"
        )
        parser.set_defaults(handler=run_restore)
        return parser


def run_restore(args: argparse.Namespace) -> int:
    from config.settings import Settings
    from stream.store.backup import restore_backup
    from stream.store.errors import StoreError

    data_dir = Path(args.data_dir) if args.data_dir else Settings().data_dir
    try:
        report = restore_backup(Path(args.dir), data_dir, force=args.force)
    except StoreError as error:
        print(f"csignal restore: {error}", file=sys.stderr)
        return FAILED
    rows = sum(report.tables.values())
    print(
        f"restored {rows} rows in {len(report.tables)} tables "
        f"({human_bytes(report.bytes)}, schema version {report.schema_version}) into "
        f"{report.data_dir}; start control to use it"
    )
    if report.replaced:
        print(f"replaced a ledger of {sum(report.replaced.values())} rows")
    return 0


EXPORT_TABLES = ("outcomes", "changes", "api_calls")


@dataclass(frozen=True)
class ExportCommand:
    name: str = "export"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help="the ledger as Parquet for a warehouse, by day, incrementally",
            description="Write a table of the ledger as Parquet files under DIR/TABLE/day=…/ on "
            "control's host: the rows recorded since the last export into DIR (the first "
            "time: every row, or those from --since on). README: 'Caring for the ledger'.",
        )
        parser.add_argument("dir", metavar="DIR", help="where the files go")
        parser.add_argument("--table", choices=EXPORT_TABLES, required=True)
        parser.add_argument(
            "--since",
            metavar="WHEN",
            default=None,
            help="only rows from this UTC date or time on (2026-12-01, 2026-12-01T08:00:00Z)",
        )
        parser.add_argument("--format", choices=("parquet",), default="parquet")
        add_api_option(parser)
        parser.set_defaults(handler=run_export)
        return parser


def run_export(args: argparse.Namespace) -> int:
    directory = str(Path(args.dir).expanduser().absolute())

    async def work(client: ApiClient) -> int:
        job = await client.ledger_export(args.table, directory, args.since)
        print(f"exporting {args.table} into {directory} ({job['id']})", flush=True)
        job = await follow_job(client, job, sys.stdout)
        if job.get("state") != "done":
            print(f"csignal export: failed: {job.get('error')}", file=sys.stderr)
            return FAILED
        result = job.get("result") or {}
        days = result.get("days") or []
        span = f", days {days[0]} to {days[-1]}" if days else ""
        print(
            f"export done: {result.get('rows', 0)} rows in {len(result.get('files') or [])} "
            f"files ({human_bytes(int(result.get('bytes', 0)))}) under "
            f"{result.get('destination')}{span}; watermark {result.get('watermark_to')}"
        )
        return 0

    return run_with_client("export", args, work)


REFUSED = 2


def _add_selector(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", metavar="ADDRESS", help="the person's email address")
    who.add_argument("--registration", metavar="CODE", help="one of their registration codes")


def _selector(args: argparse.Namespace) -> dict[str, str]:
    if args.email is not None:
        return {"email": args.email}
    return {"registration": args.registration}


@dataclass(frozen=True)
class ExportPersonCommand:
    name: str = "export-person"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help="everything the ledger holds on one person, as JSON",
            description="Print, as JSON, everything the ledger holds on one person: their "
            "changes (payloads included), outcomes, retry items, rejected records and the "
            "Marketo calls whose errors quote them. Audited without the person's data.",
        )
        _add_selector(parser)
        add_api_option(parser)
        parser.set_defaults(handler=run_export_person)
        return parser


def run_export_person(args: argparse.Namespace) -> int:
    async def work(client: ApiClient) -> int:
        found = await client.person_data(_selector(args))
        json.dump(found, sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
        return 0

    return run_with_client("export-person", args, work)


@dataclass(frozen=True)
class EraseCommand:
    name: str = "erase"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help="erase one person from the ledger (right to erasure)",
            description="Remove or redact one person's data in every table of the ledger and "
            "make the bytes leave the file; figures stay. Confirmed with --yes, or at a "
            "terminal by typing the email or registration code again. Prints what was touched "
            "and the Marketo lead ids delivered (Marketo keeps them: delete them there).",
        )
        _add_selector(parser)
        parser.add_argument("--yes", action="store_true", help="erase without being asked")
        add_format_option(parser)
        add_api_option(parser)
        parser.set_defaults(handler=run_erase)
        return parser


def run_erase(args: argparse.Namespace) -> int:
    selector = _selector(args)
    ((kind, value),) = selector.items()
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "csignal erase: erasing a person cannot be undone; add --yes to confirm (there "
                "is no terminal to ask in). Nothing changed.",
                file=sys.stderr,
            )
            return REFUSED
        typed = input(
            f"Erase everything the ledger holds on {kind} {value}? This cannot be undone.\n"
            f"Type the {kind} again to confirm: "
        )
        if typed.strip().lower() != value.strip().lower():
            print("csignal erase: not confirmed. Nothing changed.", file=sys.stderr)
            return REFUSED

    async def work(client: ApiClient) -> int:
        report = await client.erase_person(selector)
        if args.format == "json":
            json.dump(report, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
            return 0
        if args.format == "csv":
            write_csv_record(report, sys.stdout)
            return 0
        print(
            f"erased: {report.get('registrations')} registrations, {report.get('changes')} "
            f"changes (audit {report.get('audit_id')})"
        )
        for table, counts in sorted((report.get("touched") or {}).items()):
            done = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
            print(f"  {table}: {done}")
        leads = report.get("marketo_lead_ids") or []
        if leads:
            print(
                "Marketo lead ids delivered (delete them in Marketo too): "
                + ", ".join(str(n) for n in leads)
            )
        for destination in report.get("exported_to") or []:
            print(f"Parquet files under {destination} written before still hold this person")
        for topic, n in sorted((report.get("tombstones") or {}).items()):
            print(f"  {topic}: {n} tombstones (compaction removes the person's keys)")
        if report.get("tombstone_error"):
            print(f"  {report['tombstone_error']} (erase again to retry)")
        if report.get("topics_note"):
            print(str(report["topics_note"]))
        return 0

    return run_with_client("erase", args, work)


BACKUP = BackupCommand()
EXPORT = ExportCommand()
EXPORT_PERSON = ExportPersonCommand()
ERASE = EraseCommand()
RESTORE = RestoreCommand()

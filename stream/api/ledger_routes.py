"""Caring for the ledger over HTTP: backups and Parquet exports (background jobs), a person's
data as JSON, the erasure of a person, and what retention keeps.

Every route here but the retention status is a POST (or a GET of a job), so a read-only token is
refused by the auth middleware before it reaches them: a backup or an export writes files on
control's host, a person's data is personal data, an erasure changes the ledger. Each action
leaves a row in `config_audit` (object `ledger`) naming who asked, never the personal data
itself.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from stream.api.bodies import json_object
from stream.api.deps import DEPS, deps_of
from stream.api.errors import json_error
from stream.api.middleware import actor_of
from stream.control.ledger_jobs import Finish, JobBusy, LedgerJob, LedgerJobs, Work
from stream.control.redrive import audit
from stream.store.backup import BackupError, check_target, take_backup
from stream.store.export import (
    ExportError,
    ExportReport,
    ExportRequest,
    export_table,
    save_watermark,
)
from stream.store.person import (
    ErasureReport,
    PersonError,
    Selector,
    audit_erasure,
    erase_person,
    export_person,
    scrub_free_blocks,
)
from stream.store.retention import file_bytes, oldest_rows
from stream.store.writer import Con

JOBS: web.AppKey[LedgerJobs] = web.AppKey("signal_ledger_jobs", LedgerJobs)
OBJECT = "ledger"
log = logging.getLogger("signal.ledger")


def jobs_of(request: web.Request) -> LedgerJobs:
    return request.app[JOBS]


def _directory(body: dict[str, Any]) -> Path:
    value = body.get("dir")
    if not isinstance(value, str) or not value.strip():
        raise BackupError("dir: required, an absolute path on control's host")
    path = Path(value)
    if not path.is_absolute():
        raise BackupError(f"dir: expected an absolute path, got {value!r}")
    return path


async def start_backup(request: web.Request) -> web.Response:
    body = await json_object(request)
    try:
        directory = _directory(body)
        check_target(directory)
    except BackupError as error:
        return json_error(400, str(error).removeprefix("dir: "), "dir")

    def work(con: Con, job: LedgerJob) -> dict[str, Any]:
        return take_backup(con, directory, job.progress).to_dict()

    return await _start(request, "backup", work, {"dir": str(directory)})


async def _start(
    request: web.Request,
    kind: str,
    work: Work,
    change: dict[str, Any],
    finish: Finish | None = None,
) -> web.Response:
    """Start a job audited as `kind` (the audit row is written before the job starts)."""
    actor = actor_of(request)
    store = deps_of(request).store

    async def audited(job_id: str) -> None:
        await audit(
            store, actor=actor, object_kind=OBJECT, object_id=job_id, action=kind, change=change
        )

    try:
        job = await jobs_of(request).start(kind, actor, work, finish, before=audited)
    except JobBusy as error:
        return json_error(409, str(error))
    return web.json_response(job.to_dict(), status=202)


async def get_job(request: web.Request) -> web.Response:
    job = jobs_of(request).get(request.match_info["job_id"])
    if job is None:
        return json_error(404, f"no ledger job {request.match_info['job_id']!r}")
    return web.json_response(job.to_dict())


async def start_export(request: web.Request) -> web.Response:
    body = await json_object(request)
    try:
        export = ExportRequest.parse(body)
    except ExportError as error:
        field, _, message = str(error).partition(": ")
        return json_error(400, message, field)
    store = deps_of(request).store

    def work(con: Con, job: LedgerJob) -> dict[str, Any]:
        return export_table(con, export, job.progress).to_dict()

    async def finish(result: dict[str, Any]) -> None:
        report = ExportReport(**result)
        await store.write(lambda con: save_watermark(con, report))

    change = {
        "table": export.table,
        "dir": str(export.directory),
        "since": export.since.isoformat() if export.since else None,
    }
    return await _start(request, "export", work, change, finish)


def _selector(body: dict[str, Any]) -> Selector:
    return Selector.parse(body)


async def export_person_route(request: web.Request) -> web.Response:
    body = await json_object(request)
    store = deps_of(request).store
    try:
        selector = _selector(body)
        found = await store.read(lambda con: export_person(con, selector))
    except PersonError as error:
        field, _, message = str(error).partition(": ")
        return json_error(
            400 if "expected" in message or "exactly" in message else 404, message, field
        )
    await audit(
        store,
        actor=actor_of(request),
        object_kind=OBJECT,
        object_id=f"person-export-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        action="export-person",
        change={"selector": selector.kind, "changes": len(found["change_ids"])},
    )
    return web.json_response(found, dumps=_dumps)


async def erase_route(request: web.Request) -> web.Response:
    body = await json_object(request)
    store = deps_of(request).store
    try:
        selector = _selector(body)
    except PersonError as error:
        field, _, message = str(error).partition(": ")
        return json_error(400, message, field)
    busy = jobs_of(request).running()
    if busy is not None:
        return json_error(409, f"a {busy.kind} ({busy.id}) is running; erase once it finished")
    actor, at = actor_of(request), datetime.now(UTC)
    audit_id = f"erasure-{at:%Y%m%dT%H%M%S%f}"

    def work(con: Con) -> ErasureReport:
        report = erase_person(con, selector)
        audit_erasure(con, at, actor, audit_id, report)
        return report

    try:
        report = await store.write(work)
    except PersonError as error:
        field, _, message = str(error).partition(": ")
        return json_error(404, message, field)

    def checkpoint_and_scrub(con: Con) -> int:
        con.execute("FORCE CHECKPOINT")
        return scrub_free_blocks(con)

    scrubbed = await store.write_raw(checkpoint_and_scrub)
    log.warning("ledger: erasure %s by %s: %s", audit_id, actor, report.audit_change())
    tombstones, topic_error = await _tombstones(request, report.delivered_keys)
    return web.json_response(
        {
            **report.to_dict(),
            "free_blocks_scrubbed": scrubbed,
            "audit_id": audit_id,
            "tombstones": tombstones,
            "tombstone_error": topic_error,
            "topics_note": TOPICS_NOTE,
        }
    )


TOPICS_NOTE = (
    "signal-delivered is compacted: the tombstones written remove the person's keys at its "
    "next compaction. certain-changes, signal-redrive, signal-outcomes, signal-deliveries and "
    "signal-api-calls are not compacted: their records (payloads on certain-changes and "
    "signal-redrive) stay until the topic's retention.ms (14 days) drops them."
)


async def _tombstones(request: web.Request, keys: list[str]) -> tuple[dict[str, int], str | None]:
    """Tombstones for the person's keys; the ledger's erasure stands if the broker fails, and
    the report says so (an erasure again writes them again)."""
    send = deps_of(request).tombstones
    if send is None or not keys:
        return {}, None
    try:
        return await send(keys), None
    except Exception as error:  # reported to the operator, who can erase again
        log.warning("ledger: erasure tombstones failed: %s", error)
        return {}, f"tombstones not written: {error}"


async def retention_route(request: web.Request) -> web.Response:
    """The retention settings, the last pass, disk use and the oldest row per table: no
    personal data, so a read-only token may read it (the console's Troubleshooting tab)."""
    deps = deps_of(request)
    if deps.retention is not None:
        return web.json_response(await deps.retention(), dumps=_dumps)
    oldest = await deps.store.read(oldest_rows)
    return web.json_response(
        {
            "policy": None,
            "last_pass": None,
            "running": False,
            "totals": {},
            "file_bytes": file_bytes(deps.store.path),
            "oldest": {k: v.isoformat() if v else None for k, v in oldest.items()},
        }
    )


def _dumps(body: Any) -> str:
    return json.dumps(body, default=str)


def add_ledger_routes(app: web.Application) -> None:
    """Register the routes; the jobs live as long as the app (`on_cleanup` waits for one)."""
    jobs = LedgerJobs(app[DEPS].store)
    app[JOBS] = jobs

    async def close(_app: web.Application) -> None:
        await jobs.close()

    app.on_cleanup.append(close)
    app.router.add_post("/api/v1/ledger/backups", start_backup)
    app.router.add_post("/api/v1/ledger/exports", start_export)
    app.router.add_get("/api/v1/ledger/jobs/{job_id}", get_job)
    app.router.add_post("/api/v1/ledger/person", export_person_route)
    app.router.add_post("/api/v1/ledger/erasures", erase_route)
    app.router.add_get("/api/v1/ledger/retention", retention_route)

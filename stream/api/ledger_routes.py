"""Caring for the ledger over HTTP: backups and Parquet exports (background jobs), a person's
data as JSON, and the erasure of a person.

Every route here is a POST (or a GET of a job), so a read-only token is refused by the auth
middleware before it reaches them: a backup or an export writes files on control's host, a
person's data is personal data, an erasure changes the ledger. Each action leaves a row in
`config_audit` (object `ledger`) naming who asked, never the personal data itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from stream.api.deps import DEPS, deps_of
from stream.api.errors import json_error, json_object
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
from stream.store.writer import Con

JOBS: web.AppKey[LedgerJobs] = web.AppKey("signal_ledger_jobs", LedgerJobs)
OBJECT = "ledger"


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

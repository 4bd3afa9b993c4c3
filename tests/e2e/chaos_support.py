"""Chaos runs: a burst of registration changes into a real `csignal run`, a SIGKILL at a chosen
moment, then the ledger and the Marketo sandbox checked for what was lost and what was repeated.

Everything is real: `csignal sandbox --latency-ms 100` in a process of its own (it outlives the
run, so its call log spans the crash), `csignal run --headless --config …` with its embedded
broker, control (DuckDB) and pipeline worker, and the operator API for ingest and SQL.

One run (`chaos_run`):

1. start the sandbox and the run, import an account with a Create/Update Lead flow and its
   campaign (the example account's `registered-to-nurture`, plus a flow that never activates for
   these changes, so every change has two outcomes), announce the event and wait for its outcomes;
2. post a burst of registration changes to `POST /api/v1/changes` (several requests at once) and
   keep the change ids of every 202;
3. kill at the chosen `Moment`, picked by observed progress: `ingest` (a fraction of the burst
   accepted), `delivery` (a fraction of the leads upserted in the sandbox), `recording` (a
   fraction of the changes with a delivered outcome in the ledger);
4. what is killed (`Kill`): `all` = every process of the run at once (runner, broker, control,
   pipeline: SIGKILL to each), then `csignal run --headless` again on the same data dir;
   `broker` = only the embedded broker (the run heals by itself); `rollover` = no kill: SIGUSR1
   to the run, which rolls its broker over (control and the pipeline stopped cleanly, then the
   broker, all three started again on a new, empty one); `worker` = a second pipeline
   worker started next to the run's, then whichever of the two is delivering (the one with a
   connection open to the sandbox: the account's one connection is one partition of
   `signal-deliveries`, so one worker delivers) SIGKILLed mid-burst; its partitions move to the
   other one (the run also restarts its own worker when that was the one killed);
5. wait until every accepted change has a final outcome (not `queued`) for each flow that acts
   on it (`MATCHED`), or the deadline; then count.

Figures (`ChaosResult`): accepted, lost (accepted without its final outcomes at the deadline),
repeats to Marketo (a lead requested for its campaign more than once: each change here has a
lead of its own, so any second request is a repeat), repeats the ledger counted (any `outcomes`
column whose name says "repeat", when the schema has one; None otherwise), and the time from the
kill (the restart, for `all`) to full recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import yaml

from apiclient.client import ApiClient
from apiclient.errors import ApiError
from stream.broker import free_port
from tests.e2e.e2e_support import RunProcess
from tests.support.accounts import example_account_data
from tests.support.clock import recent
from tests.support.processes import ServiceProcess, clean_env, pid_alive, processes_for
from tests.support.waiting import until, until_sync

Phase = Literal["ingest", "delivery", "recording"]
Kill = Literal["all", "broker", "rollover", "worker"]

SANDBOX_LATENCY_MS = 100.0
SECRET_ENV = "MARKETO_CLIENT_SECRET"
SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_SECRET = "sandbox-secret"
CAMPAIGN_ID = 1001
FLOWS = ("registered-to-nurture", "vip-attended")
"""The account's active flows: a change routed in one go gets one outcome for each."""
MATCHED = FLOWS[:1]
"""The flows that act on the burst's changes (a delivery each). The other one never activates
for a registration status change: its `not_activated` outcome is a by-product of routing, and
recovery (which re-drives only the flows that would act) does not recreate it."""
FINAL_EXCLUDED = ("queued",)
"""Outcome statuses that are not final (a delivery in flight)."""

CONNECTIONS = 1
"""Marketo connections of the account (the example account's one)."""
CAMPAIGN_LEADS_PER_CALL = 100
"""The most leads of one campaign request (Marketo's limit; `deliver.py` fills calls up to it)."""
FORM_POSTS_IN_FLIGHT = 0
"""Form submits in flight at once (one lead each, up to the client's 10 calls in flight); the
account delivers no form posts."""
IN_FLIGHT_BOUND = CONNECTIONS * (CAMPAIGN_LEADS_PER_CALL + FORM_POSTS_IN_FLIGHT)
"""The most campaign requests a kill can repeat: per connection, the campaign call in flight
(campaign calls of a connection go one at a time, `deliver.py`) and the form posts in flight.
Whatever the worker delivered before is known after the restart, from control's ledger or from
the worker's own journal of its delivered-keys records (`stream/pipeline/marks_journal.py`,
written back to `signal-delivered` when it starts again on its data dir), so it is skipped as a
duplicate; outcomes still on `signal-outcomes` at the kill no longer matter."""
UNCOUNTED_ALLOWANCE = 0
"""Repeats the ledger may not count: none. The call in flight has its "sending" mark in the
ledger or in the worker's journal, and the worker that delivers it again marks its outcome
`possible_repeat` (before the journal, a call whose mark was still on its way to the ledger at
a kill of everything went uncounted)."""

POST_BATCH = 100
POST_CONCURRENCY = 4
START_WITHIN_S = 180.0
RECOVERY_WITHIN_S = 300.0


@dataclass(frozen=True)
class Moment:
    """When to kill: once `fraction` of the burst has reached `phase`."""

    phase: Phase
    fraction: float

    def __str__(self) -> str:
        return f"{self.phase} {self.fraction:.0%}"


@dataclass
class ChaosResult:
    label: str
    kill: Kill
    moment: Moment
    posted: int = 0
    accepted: int = 0
    lost: int = 0
    marketo_repeats: int = 0
    """Campaign requests beyond the first, for this run's leads."""
    repeated_leads: int = 0
    ledger_repeats: int | None = None
    """What the ledger counts as possible repeats (None: no such column in `outcomes`)."""
    verified: int = 0
    """Deliveries recorded from Marketo's activity log instead of sent again (`verify.py`)."""
    verify_calls: int = 0
    """Activity-log calls the sandbox answered (what verification cost)."""
    not_in_marketo: int = 0
    """Accepted changes delivered according to the ledger whose lead has no campaign request."""
    recovery_s: float | None = None
    """Kill (restart for `all`) → every accepted change with its final outcomes; None: never."""
    at_kill: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    victim: str = ""
    """For `worker`: which worker was killed (`run's` or `second`), and whether it was the one
    delivering at the kill."""

    def line(self) -> str:
        recovery = f"{self.recovery_s:.1f}s" if self.recovery_s is not None else "never"
        ledger = "n/a" if self.ledger_repeats is None else str(self.ledger_repeats)
        seen = ", ".join(f"{k} {v}" for k, v in self.at_kill.items())
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        victim = f" [{self.victim}]" if self.victim else ""
        return (
            f"{self.label:<12} kill {self.kill:<6}{victim} at {self.moment!s:<15} ({seen}): "
            f"accepted {self.accepted}/{self.posted}, lost {self.lost}, "
            f"repeats to Marketo {self.marketo_repeats} ({self.repeated_leads} leads), "
            f"counted by the ledger {ledger}, verified {self.verified} "
            f"({self.verify_calls} activity calls), not in Marketo {self.not_in_marketo}, "
            f"recovery {recovery} [{statuses}]"
        )


# --- the account and the changes --------------------------------------------------------------


def account_yaml(sandbox_url: str) -> str:
    """The example account pointed at the sandbox, its secret an `${ENV}` reference."""
    data = example_account_data()
    connection = data["connections"][0]
    connection.update(
        service_url=sandbox_url, client_id=SANDBOX_CLIENT_ID, client_secret=f"${{{SECRET_ENV}}}"
    )
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def event_change(prefix: str) -> dict[str, Any]:
    return {
        "changeId": f"{prefix}-event",
        "type": "event.create_update",
        "accountCode": "ACME",
        "eventCode": "SUMMIT26",
        "occurredAt": recent(days=1).isoformat(),
        "event": {
            "eventCode": "SUMMIT26",
            "eventName": "Acme Summit 2026",
            "eventStatus": "Active",
            "isTest": False,
            "setup": {
                "attendeeTypes": [{"code": "VIP", "tags": ["vip"]}],
                "eventTags": ["signal_marketo"],
            },
        },
    }


def registration_change(prefix: str, n: int) -> dict[str, Any]:
    """A registration that becomes "New" (tag registered) in the US: one delivery each."""
    return {
        "changeId": f"{prefix}-{n}",
        "type": "registration.status_change",
        "accountCode": "ACME",
        "eventCode": "SUMMIT26",
        "occurredAt": recent(seconds=1).isoformat(),
        "registration": {
            "registrationCode": f"{prefix.upper()}{n:07d}",
            "attendeeTypeCode": "VIP",
            "registrationStatusLabel": "New",
            "previousStatusLabel": "Invited",
            "isTest": False,
            "isActive": True,
            "properties": {"complete": False},
            "profile": {
                "firstName": "Ana",
                "lastName": f"Ruiz{n}",
                "email": f"{prefix}.{n}@example.com",
                "organization": "Acme",
                "position": "CTO",
                "address": {"city": "Seattle", "state": "WA", "country": "US"},
            },
            "registrationQuestions": [],
        },
    }


# --- processes ----------------------------------------------------------------------------------


@dataclass
class SandboxProcess(ServiceProcess):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_sandbox(workdir: Path, latency_ms: float = SANDBOX_LATENCY_MS) -> SandboxProcess:
    """`csignal sandbox --latency-ms N` on a free port, once it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    sandbox = SandboxProcess(
        args=["sandbox", "--port", str(port), "--latency-ms", f"{latency_ms:g}"],
        log_path=workdir / "sandbox.log",
        port=port,
    )
    sandbox.start()
    try:
        sandbox.wait_for_log("Marketo sandbox listening on")
    except BaseException:
        sandbox.kill()
        raise
    return sandbox


def start_run_logged(
    data_dir: Path, args: list[str], log_name: str, env: dict[str, str]
) -> RunProcess:
    """`csignal run --data-dir DATA_DIR ARGS` with its own output file (a restart on the same
    data dir must not find the first run's lines) and the API on a free port."""
    api = f"127.0.0.1:{free_port()}"
    run = RunProcess(
        args=["run", "--data-dir", str(data_dir), *args],
        log_path=data_dir.parent / log_name,
        env=clean_env(**env, SIGNAL_API=api, SIGNAL_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1"),
        data_dir=data_dir,
        api=api,
        started=time.monotonic(),
    )
    run.start()
    return run


def kill_everything(run: RunProcess) -> list[int]:
    """SIGKILL every process of the run at once: the runner and all it started."""
    pids = [run.pid, *processes_for(run.data_dir)]
    for pid in dict.fromkeys(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        run.process and run.process.wait(30)
    until_sync(
        lambda: not any(pid_alive(p) for p in pids), "every process of the run gone", within=30
    )
    return pids


def api_token(run: RunProcess) -> str:
    return (run.data_dir / "api-token").read_text(encoding="utf-8").strip()


def api_client(run: RunProcess) -> ApiClient:
    return ApiClient(run.api_url, api_token(run))


def start_account_run(workdir: Path, sandbox: SandboxProcess) -> RunProcess:
    """`csignal run --headless` with the chaos account against `sandbox`, its data dir in
    `workdir/data`."""
    config = workdir / "account.yaml"
    config.write_text(account_yaml(sandbox.url), encoding="utf-8")
    return start_run_logged(
        workdir / "data",
        ["--headless", "--config", str(config), "--status-every", "5"],
        "run.log",
        {SECRET_ENV: SANDBOX_SECRET},
    )


async def route_event(client: ApiClient, prefix: str) -> None:
    """Post this run's event change and wait until it is routed (one outcome per flow), so
    the burst's registrations find their event."""
    await client.post_changes([event_change(prefix)])

    async def event_routed() -> bool:
        query = f"SELECT count(*) FROM outcomes WHERE change_id = '{prefix}-event'"
        return int(await client.scalar(query) or 0) >= len(FLOWS)

    await until(event_routed, "the event's outcomes", within=180, every=0.5)


async def registration_burst(run: RunProcess, prefix: str, changes: int) -> Burst:
    """`changes` registrations posted through the ingest API, every one accepted."""
    burst = Burst(
        run.api_url, api_token(run), [registration_change(prefix, n) for n in range(changes)]
    )
    await burst.run()
    assert len(burst.accepted) == changes
    return burst


async def sending_marks(client: ApiClient, prefix: str) -> int:
    """Pairs of this run the ledger has marked "sending" (a completing call in flight)."""
    try:
        value = await client.scalar(
            "SELECT count(*) FROM delivery_marks "
            f"WHERE state = 'sending' AND change_id LIKE '{prefix}-%'"
        )
    except ApiError:
        return 0
    return int(value or 0)


async def until_campaign_call_in_flight(
    session: aiohttp.ClientSession, client: ApiClient, sandbox_url: str, prefix: str
) -> None:
    async def in_flight() -> bool:
        status = await get_json(session, f"{sandbox_url}/_sandbox/status")
        return status["inFlight"] > 0 and await sending_marks(client, prefix) > 0

    await until(in_flight, "a campaign call in flight", within=300, every=0.05)


async def until_complete(
    client: ApiClient,
    burst: Burst,
    prefix: str,
    what: str = "every change delivered",
    within: float = 600,
) -> None:
    """Every accepted change of the burst with its final outcomes."""

    async def complete() -> bool:
        try:
            return burst.accepted <= await complete_changes(client, prefix)
        except ApiError:
            return False

    await until(complete, what, within=within, every=1.0)


# --- progress and figures ---------------------------------------------------------------------


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        return await response.json()


async def sandbox_leads(session: aiohttp.ClientSession, sandbox_url: str) -> int:
    body = await get_json(session, f"{sandbox_url}/_sandbox/status")
    return int(body["leads"])


async def set_sandbox_latency(session: aiohttp.ClientSession, sandbox_url: str, ms: float) -> None:
    """The sandbox's extra latency on every call from now on (a call already waiting keeps its
    own)."""
    async with session.post(f"{sandbox_url}/_sandbox/latency", json={"ms": ms}) as reply:
        assert reply.status == 200, await reply.text()


async def delivered_count(client: ApiClient, prefix: str) -> int:
    return int(
        await client.scalar(
            "SELECT count(DISTINCT change_id) FROM outcomes "
            f"WHERE change_id LIKE '{prefix}-%' AND status = 'delivered'"
        )
        or 0
    )


async def complete_changes(client: ApiClient, prefix: str) -> set[str]:
    """Change ids of this run with a final outcome for every flow that acts on them."""
    excluded = ", ".join(f"'{s}'" for s in FINAL_EXCLUDED)
    flows = ", ".join(f"'{f}'" for f in MATCHED)
    result = await client.sql(
        "SELECT change_id FROM outcomes "
        f"WHERE change_id LIKE '{prefix}-%' AND status NOT IN ({excluded}) "
        f"AND flow_id IN ({flows}) "
        f"GROUP BY change_id HAVING count(DISTINCT flow_id) >= {len(MATCHED)}",
        max_rows=100_000,
    )
    return {str(row[0]) for row in result.rows}


async def ledger_figures(client: ApiClient, prefix: str) -> tuple[dict[str, int], int | None]:
    """Outcome statuses of this run's changes, and the possible repeats the ledger counts."""
    rows = (
        await client.sql(
            "SELECT status, count(*) FROM outcomes "
            f"WHERE change_id LIKE '{prefix}-%' GROUP BY status"
        )
    ).rows
    statuses = {str(r[0]): int(r[1]) for r in rows}
    columns = (await client.sql("SELECT * FROM outcomes LIMIT 0")).columns
    repeat_columns = [c for c in columns if "repeat" in c.lower()]
    if not repeat_columns:
        return statuses, None
    counted = " OR ".join(f"coalesce(CAST({c} AS BOOLEAN), false)" for c in repeat_columns)
    value = await client.scalar(
        f"SELECT count(*) FROM outcomes WHERE change_id LIKE '{prefix}-%' AND ({counted})"
    )
    return statuses, int(value or 0)


async def verification_figures(
    client: ApiClient, session: aiohttp.ClientSession, sandbox_url: str, prefix: str
) -> tuple[int, int]:
    """(deliveries of this run recorded as verified in Marketo's activities, activity-log calls
    the sandbox answered)."""
    verified = await client.scalar(
        f"SELECT count(*) FROM outcomes WHERE change_id LIKE '{prefix}-%' "
        "AND lead_result = 'verified_in_marketo'"
    )
    calls = (await get_json(session, f"{sandbox_url}/_sandbox/calls"))["calls"]
    spent = sum(1 for c in calls if str(c.get("endpoint", "")).startswith("activities."))
    return int(verified or 0), spent


async def marketo_repeats(
    session: aiohttp.ClientSession, sandbox_url: str, prefix: str
) -> tuple[int, int, set[str]]:
    """(campaign requests beyond the first, leads requested more than once, emails requested)
    for this run's leads, from the sandbox's own record."""
    leads = (await get_json(session, f"{sandbox_url}/_sandbox/leads"))["leads"]
    runs = (await get_json(session, f"{sandbox_url}/_sandbox/campaign-runs"))["campaignRuns"]
    mine = {
        lead["id"]: str(lead.get("email", "")).lower()
        for lead in leads
        if str(lead.get("email", "")).lower().startswith(f"{prefix}.")
    }
    requests: Counter[int] = Counter()
    for run in runs:
        if int(run.get("campaignId", 0)) != CAMPAIGN_ID:
            continue
        for key in ("leadIds", "suppressedLeadIds"):
            for lead_id in run.get(key) or []:
                if lead_id in mine:
                    requests[lead_id] += 1
    repeats = sum(count - 1 for count in requests.values() if count > 1)
    repeated = sum(1 for count in requests.values() if count > 1)
    return repeats, repeated, {mine[lead_id] for lead_id in requests}


# --- one run ------------------------------------------------------------------------------------


class Burst:
    """Posts the changes in batches, several requests at once; keeps what was accepted."""

    def __init__(self, api_url: str, token: str, changes: list[dict[str, Any]]) -> None:
        self.api_url = api_url
        self.token = token
        self.changes = changes
        self.accepted: set[str] = set()
        self.posted = 0
        self.failed_requests = 0

    async def run(self) -> None:
        batches = [
            self.changes[i : i + POST_BATCH] for i in range(0, len(self.changes), POST_BATCH)
        ]
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for batch in batches:
            queue.put_nowait(batch)
        headers = {"Authorization": f"Bearer {self.token}"}
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            await asyncio.gather(*(self._poster(session, queue) for _ in range(POST_CONCURRENCY)))

    async def _poster(
        self, session: aiohttp.ClientSession, queue: asyncio.Queue[list[dict[str, Any]]]
    ) -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            self.posted += len(batch)
            try:
                async with session.post(f"{self.api_url}/api/v1/changes", json=batch) as response:
                    body = await response.json()
                    if response.status == 202:
                        self.accepted.update(str(c) for c in body.get("change_ids", []))
                    else:
                        self.failed_requests += 1
            except (aiohttp.ClientError, TimeoutError, ValueError):
                self.failed_requests += 1
                return  # the API is gone (killed): the rest of the burst is not sent


async def _wait_started(run: RunProcess) -> None:
    await run.wait_for(r"Signal is running", within=START_WITHIN_S)


async def _progress(
    phase: Phase,
    burst: Burst,
    client: ApiClient,
    session: aiohttp.ClientSession,
    sandbox_url: str,
    prefix: str,
    leads_before: int,
) -> int:
    if phase == "ingest":
        return len(burst.accepted)
    if phase == "delivery":
        return await sandbox_leads(session, sandbox_url) - leads_before
    return await delivered_count(client, prefix)


async def chaos_run(
    workdir: Path,
    *,
    label: str,
    kill: Kill,
    moment: Moment,
    changes: int,
    recovery_within: float = RECOVERY_WITHIN_S,
    latency_ms: float = SANDBOX_LATENCY_MS,
) -> ChaosResult:
    """One chaos run in `workdir` (its own sandbox, data dir and logs); see the module doc."""
    prefix = f"c{uuid.uuid4().hex[:8]}"
    result = ChaosResult(label=label, kill=kill, moment=moment)
    sandbox = await asyncio.to_thread(start_sandbox, workdir, latency_ms)
    config = workdir / "account.yaml"
    config.write_text(account_yaml(sandbox.url), encoding="utf-8")
    env = {SECRET_ENV: SANDBOX_SECRET}
    data_dir = workdir / "data"
    run = start_run_logged(
        data_dir, ["--headless", "--config", str(config), "--status-every", "5"], "run-1.log", env
    )
    runs = [run]
    extra: ServiceProcess | None = None
    try:
        await _wait_started(run)
        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:
            await client.post_changes([event_change(prefix)])
            await until(
                lambda: _count(
                    client,
                    f"SELECT count(*) FROM outcomes WHERE change_id = '{prefix}-event'",
                    len(FLOWS),
                ),
                "the event's outcomes",
                within=START_WITHIN_S,
                every=0.5,
            )
            if kill == "worker":
                extra = await _start_extra_worker(run, workdir)
            leads_before = await sandbox_leads(session, sandbox.url)
            burst = Burst(
                run.api_url,
                api_token(run),
                [registration_change(prefix, n) for n in range(changes)],
            )
            posting = asyncio.create_task(burst.run())
            target = max(1, int(changes * moment.fraction))

            async def reached() -> bool:
                seen = await _progress(
                    moment.phase, burst, client, session, sandbox.url, prefix, leads_before
                )
                return seen >= target or (posting.done() and moment.phase == "ingest")

            await until(reached, f"{moment} reached", within=START_WITHIN_S, every=0.05)
            result.at_kill = {
                "accepted": len(burst.accepted),
                "upserted": await sandbox_leads(session, sandbox.url) - leads_before,
                "delivered": await delivered_count(client, prefix),
            }
            killed_at = time.monotonic()
            if kill == "all":
                kill_everything(run)
            elif kill == "broker":
                broker_pid = int(re.findall(r"broker pid (\d+)", run.output)[-1])
                os.kill(broker_pid, signal.SIGKILL)
            elif kill == "rollover":  # not a kill: the run rolls its broker over, cleanly
                os.kill(run.pid, signal.SIGUSR1)
            else:
                assert extra is not None
                result.victim = kill_delivering_worker(run, extra, sandbox.port)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(posting, 120)
            if not posting.done():
                posting.cancel()
        result.posted = burst.posted
        result.accepted = len(burst.accepted)

        if kill == "all":
            run = start_run_logged(
                data_dir, ["--headless", "--status-every", "5"], "run-2.log", env
            )
            runs.append(run)
            await _wait_started(run)
            recovering_from = time.monotonic()
        else:
            if kill == "broker":
                await run.wait_for(r"healed: new embedded broker", within=START_WITHIN_S)
            elif kill == "rollover":
                await run.wait_for(r"rolled over: new embedded broker", within=START_WITHIN_S)
            recovering_from = killed_at
            # Whatever the kill cut short is sent again, as a client that got no answer would.
            unsent = [c for c in burst.changes if c["changeId"] not in burst.accepted]
            if unsent:
                retry = Burst(run.api_url, api_token(run), unsent)
                await retry.run()
                burst.accepted |= retry.accepted
                result.accepted = len(burst.accepted)

        client = api_client(run)
        async with client, aiohttp.ClientSession() as session:
            complete: set[str] = set()

            async def recovered() -> bool:
                nonlocal complete
                with contextlib.suppress(ApiError):
                    complete = await complete_changes(client, prefix)
                return burst.accepted <= complete

            with contextlib.suppress(AssertionError):
                await until(recovered, "full recovery", within=recovery_within, every=1.0)
                result.recovery_s = time.monotonic() - recovering_from
            result.lost = len(burst.accepted - complete)
            result.statuses, result.ledger_repeats = await ledger_figures(client, prefix)
            result.verified, result.verify_calls = await verification_figures(
                client, session, sandbox.url, prefix
            )
            delivered = {
                str(r[0])
                for r in (
                    await client.sql(
                        "SELECT change_id FROM outcomes WHERE change_id LIKE "
                        f"'{prefix}-%' AND status = 'delivered' AND flow_id = '{FLOWS[0]}'",
                        max_rows=100_000,
                    )
                ).rows
            }
            (
                result.marketo_repeats,
                result.repeated_leads,
                requested,
            ) = await marketo_repeats(session, sandbox.url, prefix)
            emails = {
                f"{prefix}.{change_id.rsplit('-', 1)[1]}@example.com" for change_id in delivered
            }
            result.not_in_marketo = len(emails - requested)
    finally:
        if extra is not None:
            extra.kill()
        for each in runs:
            if each.alive():
                with contextlib.suppress(AssertionError):
                    await asyncio.to_thread(each.stop)
            each.kill()
        sandbox.stop()
    return result


def sockets_to(port: int) -> set[str]:
    """Inodes of established TCP connections to 127.0.0.1:`port` (IPv4 and IPv6 tables)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def connected_to(pid: int, inodes: set[str]) -> bool:
    """Whether process `pid` holds one of the sockets `inodes`."""
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link.startswith("socket:[") and link[8:-1] in inodes for link in links)


def kill_delivering_worker(run: RunProcess, extra: ServiceProcess, sandbox_port: int) -> str:
    """SIGKILL the pipeline worker that is talking to Marketo (the sandbox) now: the one that
    owns the connection's partition of `signal-deliveries`. Returns which one it was.

    Killing the other would measure nothing: it has no Marketo call in flight."""
    own = [int(m) for m in re.findall(r"pipeline (?:pid|restarted \(pid) (\d+)", run.output)]
    workers = {"run's": own[-1] if own else None, "second": extra.pid}
    inodes = sockets_to(sandbox_port)
    delivering = [
        name for name, pid in workers.items() if pid is not None and connected_to(pid, inodes)
    ]
    victim = delivering[0] if delivering else "second"
    pid = workers[victim]
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return f"{victim} worker{'' if delivering else ', none seen delivering'}"


async def _count(client: ApiClient, query: str, expected: int) -> bool:
    try:
        return int(await client.scalar(query) or 0) >= expected
    except ApiError:
        return False


async def _start_extra_worker(run: RunProcess, workdir: Path) -> ServiceProcess:
    """A second `csignal pipeline` on the run's broker, once it has joined the group."""
    broker = (await run.wait_for(r"broker: embedded at (\S+)")).group(1)
    worker = ServiceProcess(
        args=[
            "pipeline",
            "--broker",
            f"kafka://{broker}",
            "--data-dir",
            str(workdir / "worker-2-data"),
        ],
        log_path=workdir / "worker-2.log",
        # control's key, so the worker can verify the configuration snapshots (without it the
        # worker refuses them and never routes or delivers anything)
        env=clean_env(
            PYTHONUNBUFFERED="1", SIGNAL_CONFIG_KEY_FILE=str(run.data_dir / "config-key")
        ),
    )
    worker.start()
    worker.wait_for_log("Ready", within=START_WITHIN_S)

    async def configured() -> bool:
        return re.search(r"configuration snapshot \S+ applied", worker.log()) is not None

    def usable() -> str | None:
        if "refusing configuration snapshot" in worker.log():
            return f"the second worker refuses the configuration:\n{worker.tail()}"
        return worker.exited()

    try:
        await until(
            configured, "the second worker's configuration", within=START_WITHIN_S, alive=usable
        )
    except BaseException:
        worker.kill()
        raise
    return worker

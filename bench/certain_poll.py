"""The Certain source: what polling costs, and how long a change in Certain takes to reach Marketo.

    python -m bench.certain_poll [--registrations 10000] [--moves 120] [--move-rate 2]

`--moves 0` leaves the latency part out (it says so).

1. Poll cost. A `SourcePoller` in this process (real DuckDB ledger, real config service) polls a
   Certain sandbox running in a process of its own (`csignal certain-sandbox`), so this
   process's CPU time is the poller's alone: its HTTP client, record diffing and ledger writes.
   `--registrations` are created in one event, then all moved by one mass action, then left
   alone. For each step: requests to Certain and CPU, scaled per 10,000 changed registrations,
   and the CPU of a quiet poll (the overlap window re-reads every recent record and finds
   nothing new). Baseline, same run: the same pages read with the bare `CertainClient` (no
   diff, no ledger), so the ratio is the poller's own work over the reading it cannot avoid.
2. Latency. Real processes as installed: the embedded broker, `csignal control` polling the
   Certain sandbox every 2 s, one pipeline worker, the Marketo sandbox. Registrations created
   as Invited (no flow acts on them) are moved to New one by one at `--move-rate` per second;
   each move is a `registration.status_change` the demo's program-status flow delivers as a
   program member. Latency = from the move in Certain to the member's status in Marketo
   (watched in the sandbox's state every 20 ms). p50 / p95 / max, and p95 over the poll
   interval (a change waits half an interval for the next poll on average).

Smoke mode (`bench/__init__.py`): 300 registrations and 4 moves, the same processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import arguments, sized
from config.models import CertainSource
from simulators.certain.demo_account import PROGRAM_ID, SECRET_ENV, demo_account
from simulators.certain.sandbox import CertainSandbox
from simulators.certain.sandbox_seed import DEFAULT_ACCOUNT, DEFAULT_PASSWORD, DEFAULT_USER
from simulators.marketo.sandbox import Sandbox, SandboxConfig
from stream.broker import EmbeddedBroker, die_with_parent, free_port
from stream.certain.client import PAGE_SIZE, CertainClient, RequestBudget
from stream.control.certain_poller import OVERLAP, SourcePoller
from stream.control.config_service import ConfigService
from stream.control.secret_store import SecretStore
from stream.store import Store

REPO = Path(__file__).resolve().parents[1]
EVENT = "SUMMIT26"
POLL_INTERVAL_S = 2.0
PER = 10_000
ADMIN_BATCH = 2_000
"""Registrations created per admin call (one call per batch, like a bulk import)."""
START_WITHIN_S = 120.0


def source(url: str, events: list[str], **more: Any) -> dict[str, Any]:
    return {
        "id": "bench-certain",
        "name": "Certain sandbox (bench)",
        "host": url,
        "account_code": DEFAULT_ACCOUNT,
        "username": DEFAULT_USER,
        "password": DEFAULT_PASSWORD,
        "events": events,
        "poll_interval_s": POLL_INTERVAL_S,
        "request_budget_per_minute": 6000,
        **more,
    }


def env_without_signal(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_")}
    return env | extra | {"PYTHONUNBUFFERED": "1"}


@contextlib.contextmanager
def service(args: Sequence[str], log_path: Path, ready: str, env: dict[str, str]) -> Iterator[str]:
    """`python -m stream ARGS` until the block ends; yields its log once `ready` is in it."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stream", *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
    try:
        deadline = time.monotonic() + START_WITHIN_S
        while ready and ready not in (text := log_path.read_text("utf-8", "replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start:\n{text[-3000:]}")
            time.sleep(0.1)
        yield log_path.read_text("utf-8", "replace")
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def admin(http: aiohttp.ClientSession, url: str, path: str, body: Any) -> Any:
    async with http.post(f"{url}/_sandbox/{path}", json=body) as response:
        answer = await response.json()
        if response.status >= 300:
            raise RuntimeError(f"{path}: {response.status} {answer}")
        return answer


async def create(http: aiohttp.ClientSession, url: str, count: int, status: str) -> list[str]:
    codes: list[str] = []
    while len(codes) < count:
        n = min(ADMIN_BATCH, count - len(codes))
        body = {"eventCode": EVENT, "registrationStatusLabel": status, "count": n}
        answer = await admin(http, url, "registrations", body)
        codes += [r["registrationCode"] for r in answer["registrations"]]
    return codes


# --- 1. poll cost ------------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    changes: int
    requests: int
    cpu_s: float
    polls: int

    def line(self) -> str:
        text = (
            f"  {self.name:<30} {self.changes:>6,} changes, {self.polls} poll(s), "
            f"{self.requests:>3} requests, {self.cpu_s * 1000 / self.polls:>6,.0f} ms CPU per poll"
        )
        if self.changes >= 100:  # registrations: scaled to the unit
            text += (
                f"; per 10,000 changed: {self.requests * PER / self.changes:,.0f} requests, "
                f"{self.cpu_s * PER / self.changes:.2f} s CPU"
            )
        return text


@contextlib.asynccontextmanager
async def poller(url: str, root: Path) -> AsyncIterator[SourcePoller]:
    store = await Store.open(root / "signal.duckdb")
    config = ConfigService(store, SecretStore(root / "secrets.json"), debounce_s=0)
    account = {"account": DEFAULT_ACCOUNT, "certain_sources": [source(url, [EVENT])]}
    (root / "account.yaml").write_text(json.dumps(account), encoding="utf-8")
    http = aiohttp.ClientSession()
    try:
        await config.start(root / "account.yaml")

        async def publish(records: Any) -> None:
            del records  # nothing consumes them here: the ledger keeps them for recovery

        chosen = config.certain_source("bench-certain")
        yield SourcePoller(chosen, store=store, config=config, publish=publish, session=http)
    finally:
        await http.close()
        await config.stop()
        await store.close()


async def until_quiet(poll: SourcePoller, name: str, expected: int) -> Step:
    """Poll until `expected` changes were emitted (then one poll more finds nothing new)."""
    step = Step(name, 0, 0, 0.0, 0)
    for _ in range(50):
        cpu = time.process_time()
        result = await poll.poll_once()
        step.cpu_s += time.process_time() - cpu
        step.requests += result.requests
        step.changes += result.changes
        step.polls += 1
        if step.changes >= expected:
            return step
    raise RuntimeError(f"{name}: {step.changes} of {expected} changes after {step.polls} polls")


async def raw_read(url: str, after: datetime) -> tuple[int, int, float]:
    """The baseline: every page of the event's registrations read with the bare client."""
    entry = CertainSource.model_validate(source(url, [EVENT]))
    async with aiohttp.ClientSession() as http:
        client = CertainClient(http, entry, RequestBudget(6000))
        cpu = time.process_time()
        index = 0
        while True:
            page = await client.registrations(EVENT, after, index)
            index += len(page.records)
            if len(page.records) < PAGE_SIZE:
                break
        return index, client.requests, time.process_time() - cpu


async def poll_cost(registrations: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        root = Path(tmp)
        port = free_port()
        args = ["certain-sandbox", "--port", str(port), "--registrations", "0"]
        ready = "Certain sandbox listening on"
        with service(args, root / "certain.log", ready, env_without_signal()):
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http, poller(url, root) as poll:
                steps = [await until_quiet(poll, "first poll (nothing yet)", 0)]
                codes = await create(http, url, registrations, "Invited")
                steps.append(await until_quiet(poll, "created (first sightings)", registrations))
                body = {
                    "eventCode": EVENT,
                    "codes": codes,
                    "set": {"registrationStatusLabel": "New"},
                }
                await admin(http, url, "registrations/mass", body)
                steps.append(await until_quiet(poll, "moved by one mass action", registrations))
                quiet = await until_quiet(poll, "quiet poll (overlap re-read)", 0)
                steps.append(quiet)
                after = datetime.now(UTC) - OVERLAP
                records, raw_requests, raw_cpu = await raw_read(url, after)
    lines = [
        f"poll cost: one event, {registrations:,} registrations, pages of {PAGE_SIZE}, "
        f"overlap {OVERLAP.total_seconds() / 60:g} min; Certain sandbox in its own process",
        *(step.line() for step in steps),
        f"  baseline: the same {records:,} records read bare (no diff, no ledger): "
        f"{raw_requests} requests, {raw_cpu * 1000:,.0f} ms CPU; the quiet poll costs "
        f"{quiet.cpu_s / quiet.polls / max(raw_cpu, 1e-6):.1f}x that",
    ]
    return lines


# --- 2. latency --------------------------------------------------------------------------------


def latency_account(marketo: Sandbox, certain: CertainSandbox) -> dict[str, Any]:
    """The demo account with its program-status flow only, the source watching one event."""
    raw = demo_account(marketo.url, marketo.config.client_id)
    raw["flows"] = [f for f in raw["flows"] if f["id"] == "program-status"]
    raw["certain_sources"] = [source(certain.url, [EVENT], request_budget_per_minute=1200)]
    return raw


async def control_sql(http: aiohttp.ClientSession, api: str, token: str, sql: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(f"http://{api}/api/v1/sql", json={"sql": sql}, headers=headers) as rsp:
        body = await rsp.json()
        if rsp.status != 200:
            raise RuntimeError(f"sql: {rsp.status} {body}")
        return body["rows"]


async def wait(check: Any, what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {within:g} s")
        await asyncio.sleep(0.2)


async def latency(moves: int, rate: float) -> list[str]:
    secret = "bench-marketo-secret"
    marketo = Sandbox(SandboxConfig(client_id="signal-bench", client_secret=secret))
    await marketo.start("127.0.0.1", 0)
    certain = CertainSandbox(per_event=0)
    await certain.start()
    try:
        async with EmbeddedBroker() as broker:
            return await _latency(broker, marketo, certain, secret, moves, rate)
    finally:
        await certain.stop()
        await marketo.stop()


async def _latency(
    broker: EmbeddedBroker,
    marketo: Sandbox,
    certain: CertainSandbox,
    secret: str,
    moves: int,
    rate: float,
) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        root = Path(tmp)
        data = root / "var"
        data.mkdir()
        account = latency_account(marketo, certain)
        (data / "account.yaml").write_text(yaml.safe_dump(account), encoding="utf-8")
        api = f"127.0.0.1:{free_port()}"
        control_env = env_without_signal(
            SIGNAL_BROKER=broker.url,
            SIGNAL_DATA_DIR=str(data),
            SIGNAL_API=api,
            **{SECRET_ENV: secret},
        )
        worker_env = env_without_signal(
            SIGNAL_CONFIG_KEY_FILE=str(data / "config-key"), **{SECRET_ENV: secret}
        )
        worker_args = ["pipeline", "--broker", broker.url, "--data-dir", str(root / "worker")]
        with (
            service(["control"], root / "control.log", "operator API listening on", control_env),
            service(worker_args, root / "pipeline.log", "", worker_env),
        ):
            token = (data / "api-token").read_text(encoding="utf-8").strip()
            async with aiohttp.ClientSession() as http:
                return await _moves(http, api, token, marketo, certain, moves, rate)


async def _moves(
    http: aiohttp.ClientSession,
    api: str,
    token: str,
    marketo: Sandbox,
    certain: CertainSandbox,
    moves: int,
    rate: float,
) -> list[str]:
    warm, *codes = await create(http, certain.url, moves + 1, "Invited")
    event = certain.state.accounts[DEFAULT_ACCOUNT].events[EVENT]
    email_of = {code: str(event.registrations[code].profile["email"]).lower() for code in codes}

    async def archived() -> bool:
        rows = await control_sql(
            http,
            api,
            token,
            "SELECT count(*) FROM changes WHERE type = 'registration.create_update'",
        )
        return bool(rows[0][0] >= moves + 1)

    def members() -> set[str]:
        found = marketo.state.members.get(PROGRAM_ID, {})
        return {str(marketo.state.leads[lead]["email"]).lower() for lead in found}

    async def move(code: str) -> None:
        path = f"registrations/{DEFAULT_ACCOUNT}/{EVENT}/{code}"
        async with http.patch(
            f"{certain.url}/_sandbox/{path}", json={"registrationStatusLabel": "New"}
        ) as response:
            if response.status >= 300:
                raise RuntimeError(f"move {code}: {response.status} {await response.text()}")

    await wait(archived, "the creates archived", START_WITHIN_S)
    # Not measured: a first member proves the worker is up with the event in its catalog.
    await move(warm)
    warm_email = str(event.registrations[warm].profile["email"]).lower()

    async def warmed() -> bool:
        return warm_email in members()

    await wait(warmed, "the first program member", START_WITHIN_S)
    acked: dict[str, float] = {}
    moved_at: dict[str, float] = {}

    async def watch() -> None:
        """Every 20 ms: the moved registrants that became program members since."""
        while True:
            for email in members() & (moved_at.keys() - acked.keys()):
                acked[email] = time.monotonic()
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        started = time.monotonic()
        for n, code in enumerate(codes):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            moved_at[email_of[code]] = time.monotonic()
            await move(code)

        async def all_acked() -> bool:
            return len(acked) == len(moved_at)

        await wait(all_acked, "every move acknowledged by Marketo", 180)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    seconds = sorted(acked[e] - moved_at[e] for e in moved_at)
    p95 = seconds[max(0, round(0.95 * len(seconds)) - 1)]
    return [
        f"latency: {moves} status moves at {rate:g}/s in Certain (sandbox) -> control polling "
        f"every {POLL_INTERVAL_S:g} s -> one pipeline worker -> Marketo (sandbox) program member",
        f"  p50 {statistics.median(seconds):.2f} s, p95 {p95:.2f} s, max {seconds[-1]:.2f} s; "
        f"p95 is {p95 / POLL_INTERVAL_S:.1f}x the poll interval",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument(
        "--registrations", type=int, default=sized(10_000, 300), help="registrations polled"
    )
    parser.add_argument(
        "--moves", type=int, default=sized(120, 4), help="status moves timed (0: no latency part)"
    )
    parser.add_argument("--move-rate", type=float, default=2.0, help="moves a second")
    args = parser.parse_args(argv)
    for line in asyncio.run(poll_cost(args.registrations)):
        print(line)
    if args.moves < 1:
        # No moves, no latencies to rank: say so rather than start the processes for nothing.
        print(f"latency: skipped (--moves {args.moves})")
        return
    for line in asyncio.run(latency(args.moves, args.move_rate)):
        print(line)


if __name__ == "__main__":
    main()

"""A soak of the whole installation: memory and latency over a long run at a steady rate.

    python -m bench.soak [--minutes 3] [--rate 50] [--every 60] [--demo-account batching|full]
                         [--broker-max-mb 512]
    python -m bench.soak --minutes 30          # issue 13 item 8's soak (CI does not run it)

`csignal run --demo --headless --demo-feed push` pushes simulated registrations to the ingest
API at `--rate` changes/s into the real broker, control (DuckDB) and one pipeline worker
delivering to the Marketo sandbox. Every `--every` seconds it prints the resident memory of
control, the pipeline worker and the broker, the changes and deliveries the ledger holds, the
p50/p95 of the delivered outcomes' latency (Signal's receipt of the change → Marketo's answer,
`outcomes.latency_ms`), the p95 of each stage of it (route, deliver, record: `STAGES_P95`) and
the Marketo calls per second made over that interval. At the end: each
process's first, last and peak RSS, the growth from the first sample after warm-up to the last,
the p95 of the first and the last intervals, and the calls per second against the 5 Marketo
allows (100 per 20 s per connection, which both the sandbox and Signal's client enforce) — flat
memory and a steady p95 are the goal. A pipeline worker that restarted is named; its figures
start again. The embedded broker keeps every message, so the run rolls it over past
`--broker-max-mb` (`SIGNAL_EMBEDDED_BROKER_MAX_MB`, 512; 0 never): the three new processes are
followed, CPU figures go on across them, and the rollovers are counted at the end. Smoke mode:
20 s at 5/s, a sample every 5 s.

The account is the demo account's `batching` variant by default (`csignal run --demo-account`):
its two form-post flows are inactive, since `submitForm` takes one lead per call and at 40-50
changes/s they alone ask Marketo for about 9 calls/s, so their queue would grow without end and
the soak would measure Marketo's budget rather than Signal. `--demo-account full` runs every flow.

Ctrl-C (or SIGTERM) stops the run as `csignal run` stops on Ctrl-C, prints the figures so far
and exits 130; a run still going `STOP_S` later, or at a second Ctrl-C, is killed. The run is in
a session of its own (a terminal's Ctrl-C reaches the bench only, which stops it once) and is sent
SIGTERM by the kernel should the bench die without stopping it; its own children die with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apiclient.client import ApiClient
from apiclient.errors import ApiError
from bench import arguments, sized
from bench.pipeline_throughput import memory_mb
from stream.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
START_S = 180.0
RSS_EVERY_S = 2.0
"""How often the processes' RSS is read between samples: control's swings by tens of MiB within
seconds (a batch's Arrow tables, a checkpoint), so one reading per sample says little of its
trend; the interval's median does."""
STOP_S = 60.0
"""How long `csignal run` may take to stop (each service has 10 s, then is killed) before the
bench kills it."""
CALLS_ALLOWED_PER_S = 100 / 20
"""Marketo's rolling window per connection: 100 calls in 20 s."""
INTERRUPTED = 130
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PIDS = re.compile(r"control pid (\d+), pipeline pid (\d+), broker pid (\d+)")
RESTARTED = re.compile(r"pipeline restarted \(pid (\d+)\)")
REPLACED = re.compile(
    r"(?:rolled over|healed): .*broker pid (\d+), control pid (\d+), pipeline pid (\d+)"
)
"""The run's line after its embedded broker was rolled over (or healed): three new processes."""
PROCESSES = ("control", "pipeline", "broker")


@dataclass
class Sample:
    at_s: float
    rss: dict[str, float]
    changes: int
    delivered: int
    p50_ms: float | None
    p95_ms: float | None
    calls: int = 0
    """Marketo calls made since the previous sample."""
    interval_s: float = 0.0
    refused: int = 0
    """Calls Marketo refused for its rate (606) or concurrency (615) since the previous sample."""
    cpu_s: dict[str, float] = field(default_factory=dict)
    """Each process's CPU time (user + system) since it started."""
    load: float = 0.0
    """The machine's 1-minute load average: on a shared machine, what the latency was up against."""
    stages: dict[str, float] = field(default_factory=dict)
    """p95 of each stage (`STAGES`) over the interval's deliveries, in ms."""
    duckdb_tags: dict[str, float] = field(default_factory=dict)
    """What control's DuckDB holds in memory by `duckdb_memory()`'s tag (base tables, indexes,
    in-memory tables...), in MiB."""
    rss_median: dict[str, float] = field(default_factory=dict)
    """Each process's median RSS over the interval's readings (`RSS_EVERY_S`), in MiB."""

    @property
    def duckdb_mb(self) -> float | None:
        """What control's DuckDB holds in memory (its buffer pool, bounded by
        SIGNAL_DB_MEMORY_LIMIT): the part of control's RSS that is a cache filling up, not a
        leak; None when it held nothing or was not read."""
        return sum(self.duckdb_tags.values()) if self.duckdb_tags else None

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.interval_s if self.interval_s > 0 else 0.0


@dataclass
class Soak:
    lines: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    cpu_gone: dict[str, float] = field(default_factory=dict)
    """CPU seconds of processes a rollover replaced, by role: the run's figures go on."""
    last_cpu: dict[str, float] = field(default_factory=dict)
    replacements: int = 0

    def text(self) -> str:
        return "".join(self.lines)

    def follow_restarts(self) -> None:
        text = self.text()
        replaced = REPLACED.findall(text)
        if len(replaced) > self.replacements:
            self.replacements = len(replaced)
            pids = dict(zip(("broker", "control", "pipeline"), map(int, replaced[-1]), strict=True))
            for name in pids:
                self.cpu_gone[name] = self.cpu_gone.get(name, 0.0) + self.last_cpu.get(name, 0.0)
            self.last_cpu = {}
            self.pids.update(pids)
            print(
                f"  the embedded broker was replaced ({self.replacements}: "
                f"{'rolled over' if 'rolled over' in text else 'healed'}); the figures go on "
                "with the new processes"
            )
        restarts = RESTARTED.findall(text)
        if restarts and int(restarts[-1]) != self.pids.get("pipeline"):
            self.pids["pipeline"] = int(restarts[-1])
            print(f"  the pipeline worker restarted (pid {restarts[-1]}); its figures start again")

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds by role since the run started, processes a rollover replaced included
        (up to their last sample)."""
        now: dict[str, float] = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                self.last_cpu[name] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            if name in self.last_cpu:
                now[name] = self.last_cpu[name] + self.cpu_gone.get(name, 0.0)
        return now

    def rss(self) -> dict[str, float]:
        now: dict[str, float] = {}
        for name, pid in self.pids.items():
            try:
                rss, peak = memory_mb(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue
            now[name] = rss
            self.peaks[name] = max(self.peaks.get(name, 0.0), peak)
        return now


LATENCY = """
SELECT count(*) FILTER (WHERE status = 'delivered'),
       quantile_cont(latency_ms, 0.5) FILTER (WHERE recent),
       quantile_cont(latency_ms, 0.95) FILTER (WHERE recent)
FROM (SELECT *, status = 'delivered' AND processed_at >= $since AS recent FROM outcomes)
"""
STAGES = ("route", "deliver", "record")
STAGES_P95 = """
WITH d AS (
    SELECT change_id, flow_id, processed_at, recorded_at FROM outcome_attempts
    WHERE status = 'delivered' AND processed_at >= $since
), q AS (
    SELECT a.change_id, a.flow_id, min(a.processed_at) AS routed_at
    FROM outcome_attempts a SEMI JOIN d USING (change_id, flow_id)
    WHERE a.status = 'queued' GROUP BY ALL
)
SELECT quantile_cont(date_diff('millisecond', c.received_at, q.routed_at), 0.95),
       quantile_cont(date_diff('millisecond', q.routed_at, d.processed_at), 0.95),
       quantile_cont(date_diff('millisecond', d.processed_at, d.recorded_at), 0.95)
FROM d JOIN q USING (change_id, flow_id) JOIN changes c USING (change_id)
"""
"""Where a delivery's time goes, from the ledger's own timestamps: route (control received the
change → the pipeline routed it, its `queued` outcome), deliver (routed → Marketo's answer, the
delivered outcome's `processed_at`) and record (that answer → control recorded it): a p95 that
creeps shows in the stage that grows."""
DUCKDB_MEMORY = "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0"
MIB = 1024 * 1024
CALLS = """
SELECT count(*), count(*) FILTER (WHERE marketo_error IN ('606', '615'))
FROM api_calls WHERE started_at >= $since AND started_at < $until
"""


async def watch_rss(soak: Soak, seconds: float, interrupted: asyncio.Event) -> dict[str, float]:
    """Read every process's RSS each `RSS_EVERY_S` for `seconds`; their medians."""
    readings: dict[str, list[float]] = {}
    end = time.monotonic() + seconds
    while not interrupted.is_set():
        for name, mb in soak.rss().items():
            readings.setdefault(name, []).append(mb)
        left = end - time.monotonic()
        if left <= 0:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupted.wait(), min(RSS_EVERY_S, left))
    return {name: statistics.median(values) for name, values in readings.items()}


async def sample(
    client: ApiClient,
    soak: Soak,
    started: float,
    since: str,
    until: str,
    interval_s: float,
    rss_median: dict[str, float] | None = None,
) -> Sample | None:
    try:
        changes = int(await client.scalar("SELECT count(*) FROM changes") or 0)
        query = LATENCY.replace("$since", f"TIMESTAMPTZ '{since}'")
        row = (await client.sql(query, max_rows=1)).rows[0]
        calls_query = CALLS.replace("$since", f"TIMESTAMPTZ '{since}'")
        calls_query = calls_query.replace("$until", f"TIMESTAMPTZ '{until}'")
        calls = (await client.sql(calls_query, max_rows=1)).rows[0]
        stages_query = STAGES_P95.replace("$since", f"TIMESTAMPTZ '{since}'")
        stage_row = (await client.sql(stages_query, max_rows=1)).rows[0]
        held = {str(tag): float(n) / MIB for tag, n in (await client.sql(DUCKDB_MEMORY)).rows}
    except ApiError as error:
        print(f"  (sample skipped: {error})")
        return None
    p50 = float(row[1]) if row[1] is not None else None
    p95 = float(row[2]) if row[2] is not None else None
    return Sample(
        time.monotonic() - started,
        soak.rss(),
        changes,
        int(row[0] or 0),
        p50,
        p95,
        calls=int(calls[0] or 0),
        interval_s=interval_s,
        refused=int(calls[1] or 0),
        cpu_s=soak.cpu_s(),
        load=os.getloadavg()[0],
        stages={
            name: float(value)
            for name, value in zip(STAGES, stage_row, strict=True)
            if value is not None
        },
        duckdb_tags=held,
        rss_median=rss_median or {},
    )


BY_ENDPOINT = """
SELECT endpoint, count(*) AS calls, round(avg(batch_size), 1) AS leads_per_call
FROM api_calls GROUP BY endpoint ORDER BY calls DESC
"""


async def calls_by_endpoint(client: ApiClient, soak: Soak) -> None:
    """The run's Marketo calls by endpoint, with the leads each carried on average: which flows
    spend the budget. Kept for the summary (the API is gone by then)."""
    try:
        rows = (await client.sql(BY_ENDPOINT, max_rows=50)).rows
    except ApiError as error:
        soak.endpoints = [f"calls by endpoint unreadable: {error}"]
        return
    soak.endpoints = [
        f"  {row[0]}: {row[1]} call{'s' * (row[1] != 1)}"
        + (f", {float(row[2]):.1f} leads a call" if row[2] else "")
        for row in rows
    ]


async def describe_account(client: ApiClient, variant: str) -> None:
    """Which flows the soak runs (from control's export, so what was imported, not what was
    asked): the figures mean little without it."""
    try:
        account = json.loads(await client.get_config("json"))
    except (ApiError, ValueError) as error:
        print(f"account: the demo account, {variant} variant (its flows unreadable: {error})")
        return
    flows = account.get("flows") or []

    def named(flow: dict[str, object]) -> str:
        destination = flow.get("destination")
        action = destination.get("action") if isinstance(destination, dict) else None
        return f"{flow.get('id')} ({action}, {flow.get('mode')})"

    active = [named(f) for f in flows if f.get("active")]
    inactive = [named(f) for f in flows if not f.get("active")]
    print(f"account: the demo account, {variant} variant; {len(active)} active flows:")
    print("  " + ", ".join(active))
    if inactive:
        print(f"  inactive: {', '.join(inactive)}")


def show(s: Sample) -> None:
    memory = "  ".join(f"{name} {s.rss.get(name, float('nan')):5.0f}" for name in PROCESSES)
    latency = (
        f"p50 {s.p50_ms:5.0f} ms  p95 {s.p95_ms:5.0f} ms"
        if s.p50_ms is not None and s.p95_ms is not None
        else "no delivery in the interval"
    )
    if s.duckdb_mb is not None:
        memory += f"  (DuckDB {s.duckdb_mb:.0f})"
    refused = f" ({s.refused} refused 606/615)" if s.refused else ""
    print(
        f"  {s.at_s:6.0f} s  RSS MiB {memory}  changes {s.changes:7d}  "
        f"delivered {s.delivered:6d}  {latency}  Marketo {s.calls_per_s:4.2f} calls/s{refused}  "
        f"load {s.load:4.1f}"
    )
    if s.stages:
        print("           p95 by stage: " + stages_text(s.stages))
    if s.rss_median:
        medians = "  ".join(f"{n} {s.rss_median[n]:.0f}" for n in PROCESSES if n in s.rss_median)
        print(f"           RSS median over the interval, MiB: {medians}")


def stages_text(stages: dict[str, float]) -> str:
    return " · ".join(f"{name} {stages[name]:.0f} ms" for name in STAGES if name in stages)


def summary(soak: Soak) -> None:
    if len(soak.samples) < 2:
        print("too few samples for a summary")
        return
    first = soak.samples[1] if len(soak.samples) > 2 else soak.samples[0]  # after warm-up
    last = soak.samples[-1]
    for name in PROCESSES:
        values = [s.rss[name] for s in soak.samples if name in s.rss]
        if not values or name not in first.rss or name not in last.rss:
            continue
        growth = last.rss[name] - first.rss[name]
        line = (
            f"{name:<9} RSS {values[0]:.0f} → {values[-1]:.0f} MiB (peak {soak.peaks[name]:.0f}); "
            f"after warm-up {first.rss[name]:.0f} → {last.rss[name]:.0f} MiB ({growth:+.0f})"
        )
        if name in first.rss_median and name in last.rss_median:
            was, now = first.rss_median[name], last.rss_median[name]
            line += f"; interval medians {was:.0f} → {now:.0f} MiB ({now - was:+.0f})"
        print(line)
    if first.duckdb_mb is not None and last.duckdb_mb is not None:
        held = last.duckdb_mb - first.duckdb_mb
        line = (
            f"control's DuckDB in memory after warm-up {first.duckdb_mb:.0f} → "
            f"{last.duckdb_mb:.0f} MiB ({held:+.0f}; its buffer pool, bounded by "
            "SIGNAL_DB_MEMORY_LIMIT)"
        )
        if "control" in first.rss and "control" in last.rss:
            rest = last.rss["control"] - first.rss["control"] - held
            line += f"; control's growth beside it {rest:+.0f} MiB"
        print(line)
        grown = tag_growth(first.duckdb_tags, last.duckdb_tags)
        if grown:
            print("  by tag: " + ", ".join(grown))
    timed = [s for s in soak.samples if s.p95_ms is not None]
    if timed:
        print(
            f"latency p95: first interval {timed[0].p95_ms:.0f} ms, "
            f"last {timed[-1].p95_ms:.0f} ms, highest {max(s.p95_ms or 0.0 for s in timed):.0f} ms"
        )
    staged = [s for s in soak.samples if s.stages]
    if staged:
        print(f"p95 by stage: first interval {stages_text(staged[0].stages)}")
        print(f"              last interval  {stages_text(staged[-1].stages)}")
    minutes = (last.at_s - soak.samples[0].at_s) / 60
    print(f"{last.changes} changes, {last.delivered} delivered over {minutes:.1f} min sampled")
    rolled = soak.text().count("rolled over: new embedded broker")
    healed = soak.text().count("healed: new embedded broker")
    print(f"embedded broker rolled over {rolled} times, healed {healed} times")
    calls = sum(s.calls for s in soak.samples)
    seconds = sum(s.interval_s for s in soak.samples)
    if seconds > 0:
        busiest = max(s.calls_per_s for s in soak.samples)
        refused = sum(s.refused for s in soak.samples)
        print(
            f"Marketo calls: {calls} in {seconds / 60:.1f} min, {calls / seconds:.2f}/s "
            f"(busiest interval {busiest:.2f}/s) against {CALLS_ALLOWED_PER_S:g}/s allowed "
            f"(100 per 20 s per connection); refused for rate or concurrency (606/615): {refused}"
        )
    for line in soak.endpoints:
        print(line)
    cpu(soak.samples[0], last)
    loads = [s.load for s in soak.samples]
    print(
        f"machine load (1-min average) at the samples: first {loads[0]:.1f}, "
        f"last {loads[-1]:.1f}, highest {max(loads):.1f} ({os.cpu_count()} cores)"
    )


def tag_growth(first: dict[str, float], last: dict[str, float]) -> list[str]:
    """`TAG a → b MiB` for the tags that moved by a MiB or more, the largest move first."""
    moves = {tag: last.get(tag, 0.0) - first.get(tag, 0.0) for tag in {*first, *last}}
    return [
        f"{tag} {first.get(tag, 0.0):.0f} → {last.get(tag, 0.0):.0f} MiB ({move:+.0f})"
        for tag, move in sorted(moves.items(), key=lambda item: -abs(item[1]))
        if abs(move) >= 1.0
    ]


def cpu(first: Sample, last: Sample) -> None:
    """CPU time per process between the first and the last sample: the share of a core each
    needs at this rate, and per change, which a busy machine stretches far less than latency."""
    seconds = last.at_s - first.at_s
    changes = last.changes - first.changes
    if seconds <= 0 or changes <= 0:
        return
    parts = []
    for name in PROCESSES:
        if name in first.cpu_s and name in last.cpu_s:
            used = last.cpu_s[name] - first.cpu_s[name]
            if used < 0:  # a restarted process counts from zero again
                continue
            parts.append(
                f"{name} {used:.0f} s ({used / seconds:.0%} of a core, "
                f"{used / changes * 1000:.1f} ms a change)"
            )
    if parts:
        print(f"CPU over {seconds / 60:.1f} min and {changes} changes: " + ", ".join(parts))


async def soak_run(
    minutes: float, rate: float, every: float, variant: str, broker_max_mb: int = 512
) -> int:
    """The soak; its exit status: 0, or `INTERRUPTED` when a signal cut it short."""
    print(
        f"csignal run --demo --headless --demo-feed push --demo-account {variant}, "
        f"{rate:g} changes/s for {minutes:g} min, "
        f"SIGNAL_EMBEDDED_BROKER_MAX_MB={broker_max_mb}"
    )
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        interrupted.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    soak = Soak()
    try:
        with tempfile.TemporaryDirectory(prefix="signal-soak-") as tmp:
            data_dir = Path(tmp) / "data"
            api = f"127.0.0.1:{free_port()}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_")}
            env.update(SIGNAL_API=api, SIGNAL_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
            env["SIGNAL_EMBEDDED_BROKER_MAX_MB"] = str(broker_max_mb)
            argv = [sys.executable, "-m", "stream", "run", "--demo", "--headless"]
            argv += ["--demo-feed", "push", "--demo-account", variant]
            argv += ["--rate", f"{rate:g}", "--status-every", "3600"]
            process = subprocess.Popen(  # noqa: ASYNC220 - started once, read by a thread
                argv,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                preexec_fn=_stop_with_parent(),
            )

            def read() -> None:
                assert process.stdout is not None
                for line in process.stdout:
                    soak.lines.append(line)

            threading.Thread(target=read, daemon=True).start()
            try:
                if await _until_running(process, soak, interrupted):
                    print(
                        f"csignal run is up (pid {process.pid}): "
                        + ", ".join(f"{name} pid {pid}" for name, pid in soak.pids.items())
                    )
                    await _sample_until(process, soak, data_dir, api, minutes, every, interrupted)
                    if interrupted.is_set():
                        print("interrupted: stopping csignal run; the figures so far follow")
            finally:
                await _stop(process, soak, signals)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    summary(soak)
    return INTERRUPTED if interrupted.is_set() else 0


async def _sample_until(
    process: subprocess.Popen[str],
    soak: Soak,
    data_dir: Path,
    api: str,
    minutes: float,
    every: float,
    interrupted: asyncio.Event,
) -> None:
    token = (data_dir / "api-token").read_text(encoding="utf-8").strip()
    async with ApiClient(f"http://{api}", token) as client:
        await describe_account(client, _variant_of(soak))
        started = time.monotonic()
        end = started + minutes * 60
        since, since_at = _utc_now(), time.monotonic()
        while not interrupted.is_set():
            wait = max(0.0, min(every, end - time.monotonic()))
            medians = await watch_rss(soak, wait, interrupted)
            if interrupted.is_set():
                return
            if process.poll() is not None:
                raise RuntimeError("csignal run exited:\n" + soak.text()[-4000:])
            soak.follow_restarts()
            now, now_at = _utc_now(), time.monotonic()
            taken = await sample(client, soak, started, since, now, now_at - since_at, medians)
            if taken is not None:
                soak.samples.append(taken)
                show(taken)
            since, since_at = now, now_at
            if time.monotonic() >= end:
                break
        await calls_by_endpoint(client, soak)


def _variant_of(soak: Soak) -> str:
    found = re.search(r"imported the demo account \((\w+):", soak.text())
    return found.group(1) if found else "full"


async def _stop(process: subprocess.Popen[str], soak: Soak, signals: list[int]) -> None:
    """`csignal run` stopped as Ctrl-C stops it (SIGINT: simulator, pipeline, control, broker);
    killed, its services with it, if it is still going after `STOP_S` or at a further signal."""
    seen = len(signals)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_S
        for _ in iter(lambda: process.poll() is None and time.monotonic() < deadline, False):
            if len(signals) > seen:
                break
            await asyncio.sleep(0.1)
    if process.poll() is None:
        why = "at a second signal" if len(signals) > seen else f"after {STOP_S:g} s"
        print(f"csignal run still going {why}: killed")
        _kill(process.pid)
        # Its services die with it (their parent-death signal); those that have not by now
        # are killed by their recorded pids.
        await asyncio.sleep(0.5)
        for pid in soak.pids.values():
            _kill(pid)
        process.wait()
    else:
        stopped = "Signal stopped." in soak.text()
        print(f"csignal run ended (exit {process.returncode}{', stopped cleanly' * stopped})")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _stop_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to send `csignal run` SIGTERM (its clean stop) when the
    bench dies, however it dies: a bench killed outright must not leave the run going."""
    if not sys.platform.startswith("linux") or (name := ctypes.util.find_library("c")) is None:
        return None
    prctl = ctypes.CDLL(name, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the bench died before the line above: nothing started yet
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


async def _until_running(
    process: subprocess.Popen[str], soak: Soak, interrupted: asyncio.Event
) -> bool:
    """True once the run says it is running (its services' pids read); False if interrupted."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("csignal run exited:\n" + soak.text()[-4000:])
        if found := PIDS.search(soak.text()):
            soak.pids = dict(zip(PROCESSES, (int(p) for p in found.groups()), strict=True))
        if "Signal is running" in soak.text() and soak.pids:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupted.wait(), 0.2)
        if interrupted.is_set():
            return False
    raise TimeoutError(f"csignal run not running after {START_S:g} s:\n{soak.text()[-4000:]}")


def _utc_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--minutes", type=float, default=sized(3.0, 20 / 60))
    parser.add_argument("--rate", type=float, default=sized(50.0, 5.0))
    parser.add_argument("--every", type=float, default=sized(60.0, 5.0))
    parser.add_argument(
        "--demo-account",
        choices=("batching", "full"),
        default="batching",
        help="the demo account's variant: batching (form-post flows inactive, the default) or "
        "full (every flow; at tens of changes/s its form posts outrun Marketo's 5 calls/s)",
    )
    parser.add_argument(
        "--broker-max-mb",
        type=int,
        default=512,
        help="SIGNAL_EMBEDDED_BROKER_MAX_MB for the run (0: never roll the broker over)",
    )
    args = parser.parse_args(argv)
    code = asyncio.run(
        soak_run(args.minutes, args.rate, args.every, args.demo_account, args.broker_max_mb)
    )
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()

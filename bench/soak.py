"""A soak of the whole installation: memory and latency over a long run at a steady rate.

    python -m bench.soak [--minutes 3] [--rate 50] [--every 60]
    python -m bench.soak --minutes 30          # issue 13 item 8's soak (CI does not run it)

`csignal run --demo --headless --demo-feed push` pushes simulated registrations to the ingest
API at `--rate` changes/s into the real broker, control (DuckDB) and one pipeline worker
delivering to the Marketo sandbox. Every `--every` seconds it prints the resident memory of
control, the pipeline worker and the broker, the changes and deliveries the ledger holds, and
the p50/p95 of the delivered outcomes' latency (Signal's receipt of the change → Marketo's
answer, `outcomes.latency_ms`) over that interval. At the end: each process's first, last and
peak RSS, the growth from the first sample after warm-up to the last, and the p95 of the first
and the last intervals — flat memory and a steady p95 are the goal. A pipeline worker that
restarted is named; its figures start again. Smoke mode: 20 s at 5/s, a sample every 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apiclient.client import ApiClient
from apiclient.errors import ApiError
from bench import sized
from bench.pipeline_throughput import memory_mb
from stream.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
START_S = 180.0
PIDS = re.compile(r"control pid (\d+), pipeline pid (\d+), broker pid (\d+)")
RESTARTED = re.compile(r"pipeline restarted \(pid (\d+)\)")
PROCESSES = ("control", "pipeline", "broker")


@dataclass
class Sample:
    at_s: float
    rss: dict[str, float]
    changes: int
    delivered: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass
class Soak:
    lines: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.lines)

    def follow_restarts(self) -> None:
        restarts = RESTARTED.findall(self.text())
        if restarts and int(restarts[-1]) != self.pids.get("pipeline"):
            self.pids["pipeline"] = int(restarts[-1])
            print(f"  the pipeline worker restarted (pid {restarts[-1]}); its figures start again")

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


async def sample(client: ApiClient, soak: Soak, started: float, since: str) -> Sample | None:
    try:
        changes = int(await client.scalar("SELECT count(*) FROM changes") or 0)
        query = LATENCY.replace("$since", f"TIMESTAMPTZ '{since}'")
        row = (await client.sql(query, max_rows=1)).rows[0]
    except ApiError as error:
        print(f"  (sample skipped: {error})")
        return None
    p50 = float(row[1]) if row[1] is not None else None
    p95 = float(row[2]) if row[2] is not None else None
    return Sample(time.monotonic() - started, soak.rss(), changes, int(row[0] or 0), p50, p95)


def show(s: Sample) -> None:
    memory = "  ".join(f"{name} {s.rss.get(name, float('nan')):5.0f}" for name in PROCESSES)
    latency = (
        f"p50 {s.p50_ms:5.0f} ms  p95 {s.p95_ms:5.0f} ms"
        if s.p50_ms is not None and s.p95_ms is not None
        else "no delivery in the interval"
    )
    print(
        f"  {s.at_s:6.0f} s  RSS MiB {memory}  changes {s.changes:7d}  "
        f"delivered {s.delivered:6d}  {latency}"
    )


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
        print(
            f"{name:<9} RSS {values[0]:.0f} → {values[-1]:.0f} MiB (peak {soak.peaks[name]:.0f}); "
            f"after warm-up {first.rss[name]:.0f} → {last.rss[name]:.0f} MiB ({growth:+.0f})"
        )
    timed = [s for s in soak.samples if s.p95_ms is not None]
    if timed:
        print(
            f"latency p95: first interval {timed[0].p95_ms:.0f} ms, "
            f"last {timed[-1].p95_ms:.0f} ms, highest {max(s.p95_ms or 0.0 for s in timed):.0f} ms"
        )
    minutes = (last.at_s - soak.samples[0].at_s) / 60
    print(f"{last.changes} changes, {last.delivered} delivered over {minutes:.1f} min sampled")


async def soak_run(minutes: float, rate: float, every: float) -> None:
    print(f"csignal run --demo --headless --demo-feed push, {rate:g} changes/s for {minutes:g} min")
    with tempfile.TemporaryDirectory(prefix="signal-soak-") as tmp:
        data_dir = Path(tmp) / "data"
        api = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_")}
        env.update(SIGNAL_API=api, SIGNAL_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        argv = [sys.executable, "-m", "stream", "run", "--demo", "--headless"]
        argv += ["--demo-feed", "push", "--rate", f"{rate:g}", "--status-every", "3600"]
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, read by a thread
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        soak = Soak()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                soak.lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        try:
            await _until_running(process, soak)
            token = (data_dir / "api-token").read_text(encoding="utf-8").strip()
            async with ApiClient(f"http://{api}", token) as client:
                started = time.monotonic()
                end = started + minutes * 60
                since = _utc_now()
                while True:
                    await asyncio.sleep(max(0.0, min(every, end - time.monotonic())))
                    if process.poll() is not None:
                        raise RuntimeError("csignal run exited:\n" + soak.text()[-4000:])
                    soak.follow_restarts()
                    now = _utc_now()
                    if (taken := await sample(client, soak, started, since)) is not None:
                        soak.samples.append(taken)
                        show(taken)
                    since = now
                    if time.monotonic() >= end:
                        break
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
    summary(soak)


async def _until_running(process: subprocess.Popen[str], soak: Soak) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("csignal run exited:\n" + soak.text()[-4000:])
        if "Signal is running" in soak.text() and (found := PIDS.search(soak.text())):
            soak.pids = dict(zip(PROCESSES, (int(p) for p in found.groups()), strict=True))
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"csignal run not running after {START_S:g} s:\n{soak.text()[-4000:]}")


def _utc_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=sized(3.0, 20 / 60))
    parser.add_argument("--rate", type=float, default=sized(50.0, 5.0))
    parser.add_argument("--every", type=float, default=sized(60.0, 5.0))
    args = parser.parse_args(argv)
    asyncio.run(soak_run(args.minutes, args.rate, args.every))


if __name__ == "__main__":
    main()

"""A flood of hostile requests against a real `csignal run`: does `/healthz` stay quick and do
deliveries keep flowing? (Issue 11: every request's work is bounded and off the event loop.)

    python -m bench.hostile_flood [--seconds 30] [--flood 6] [--rate 40]

Everything is real (`tests/e2e/chaos_support.py`): `csignal sandbox`, `csignal run --headless
--config …` (embedded broker, control with its DuckDB file, a pipeline worker) and an account
whose flow upserts a lead per registration. Two phases of `--seconds` each, with the same steady
traffic (`--rate` registration changes per second through `POST /api/v1/changes`) and a probe of
`GET /healthz` every 50 ms:

1. quiet: the traffic alone;
2. flood: besides, `--flood` clients in a loop send hostile requests, each waiting for its
   answer: a YAML alias bomb to `PUT /api/v1/config`, a statement that runs until its time
   limit, a statement whose answer would be 400 MB, a 2.7 MB statement, a JSON body nested
   100,000 deep, and an `Authorization` header of non-UTF-8 bytes.

Printed: `/healthz` latency p50/p99/max and failures per phase with the flood/quiet ratios, the
most `/healthz` took during the flood against the 1 s contract, leads upserted in the sandbox
per second per phase (counted by the sandbox, not through the flooded API) and their ratio, and
the hostile requests by kind and answer. Smoke mode (`bench/__init__.py`): 3 s phases, 2 clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench import arguments, sized
from tests.e2e.chaos_support import (
    SANDBOX_SECRET,
    SECRET_ENV,
    account_yaml,
    api_client,
    api_token,
    event_change,
    registration_change,
    sandbox_leads,
    start_run_logged,
    start_sandbox,
)
from tests.e2e.e2e_support import RunProcess
from tests.support.hostile import HUGE_ANSWER_SQL, SLOW_SQL, alias_bomb

PROBE_EVERY_S = 0.05
HEALTH_TIMEOUT_S = 10.0
CONTRACT_S = 1.0


class Phase:
    """What one phase saw: `/healthz` latencies and failures, leads upserted, hostile answers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.health_s: list[float] = []
        self.health_failed = 0
        self.leads = 0
        self.seconds = 0.0
        self.accepted = 0
        self.hostile: Counter[str] = Counter()

    def quantile(self, q: float) -> float:
        ordered = sorted(self.health_s)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def worst(self) -> float:
        return max(self.health_s, default=float("nan"))

    @property
    def leads_per_s(self) -> float:
        return self.leads / self.seconds if self.seconds else 0.0


async def probe_health(session: aiohttp.ClientSession, url: str, phase: Phase) -> None:
    while True:
        started = time.perf_counter()
        try:
            async with session.get(
                f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
            ) as response:
                await response.read()
                if response.status != 200:
                    phase.health_failed += 1
        except (aiohttp.ClientError, TimeoutError):
            phase.health_failed += 1
        phase.health_s.append(time.perf_counter() - started)
        await asyncio.sleep(PROBE_EVERY_S)


async def traffic(
    session: aiohttp.ClientSession, url: str, token: str, prefix: str, rate: int, phase: Phase
) -> None:
    """`rate` registration changes a second, in batches of a tenth of it, each awaited."""
    batch = max(1, rate // 10)
    n = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    while True:
        started = time.perf_counter()
        items = [registration_change(prefix, n + i) for i in range(batch)]
        n += batch
        body = "\n".join(json.dumps(item) for item in items).encode()
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.post(
                f"{url}/api/v1/changes", data=body, headers=headers
            ) as response:
                await response.read()
                if response.status in (202, 207):
                    phase.accepted += batch
        await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))


def hostile_requests() -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    """(kind, method, path, body, extra headers) of each hostile request."""
    long_statement = "SELECT 1 WHERE 1 IN (" + ",".join(str(i) for i in range(400_000)) + ")"
    return [
        (
            "alias bomb",
            "PUT",
            "/api/v1/config",
            alias_bomb().encode(),
            {"Content-Type": "text/yaml"},
        ),
        ("slow sql", "POST", "/api/v1/sql", json.dumps({"sql": SLOW_SQL}).encode(), {}),
        (
            "huge answer",
            "POST",
            "/api/v1/sql",
            json.dumps({"sql": HUGE_ANSWER_SQL, "max_rows": 100_000}).encode(),
            {},
        ),
        ("long statement", "POST", "/api/v1/sql", json.dumps({"sql": long_statement}).encode(), {}),
        (
            "deep json",
            "POST",
            "/api/v1/sql",
            b'{"sql": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            {},
        ),
    ]


async def bad_header(host: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"GET /api/v1/flows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\x80\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 60.0)
    finally:
        writer.close()
    return answer.split(b" ", 2)[1].decode("ascii", "replace") if answer else "closed"


async def flood_client(
    session: aiohttp.ClientSession, url: str, token: str, offset: int, phase: Phase
) -> None:
    requests = hostile_requests()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    n = offset
    while True:
        slot = n % (len(requests) + 1)
        n += 1
        if slot == len(requests):
            try:
                status = await bad_header(host, int(port))
            except (OSError, TimeoutError) as error:
                status = type(error).__name__
            phase.hostile[f"bad header -> {status}"] += 1
            continue
        kind, method, path, body, extra = requests[slot]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **extra}
        try:
            async with session.request(method, f"{url}{path}", data=body, headers=headers) as resp:
                await resp.read()
                phase.hostile[f"{kind} -> {resp.status}"] += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            phase.hostile[f"{kind} -> {type(error).__name__}"] += 1
        await asyncio.sleep(0)


async def run_phase(
    phase: Phase,
    run: RunProcess,
    sandbox_url: str,
    seconds: float,
    rate: int,
    flood: int,
) -> None:
    url, token = run.api_url, api_token(run)
    prefix = f"h{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        before = await sandbox_leads(session, sandbox_url)
        tasks = [
            asyncio.create_task(probe_health(session, url, phase)),
            asyncio.create_task(traffic(session, url, token, prefix, rate, phase)),
            *(
                asyncio.create_task(flood_client(session, url, token, i, phase))
                for i in range(flood)
            ),
        ]
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        phase.seconds = time.perf_counter() - started
        phase.leads = await sandbox_leads(session, sandbox_url) - before
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run(seconds: float, flood: int, rate: int) -> None:
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        workdir = Path(tmp)
        sandbox = await asyncio.to_thread(start_sandbox, workdir, 20.0)
        config = workdir / "account.yaml"
        config.write_text(account_yaml(sandbox.url), encoding="utf-8")
        run_process = start_run_logged(
            workdir / "data",
            ["--headless", "--config", str(config)],
            "run.log",
            {SECRET_ENV: SANDBOX_SECRET},
        )
        try:
            await run_process.wait_for(r"Signal is running", within=180.0)
            async with api_client(run_process) as client:
                await client.post_changes([event_change(f"e{uuid.uuid4().hex[:6]}")])
            quiet, flooded = Phase("quiet"), Phase("flood")
            await run_phase(quiet, run_process, sandbox.url, seconds, rate, 0)
            await run_phase(flooded, run_process, sandbox.url, seconds, rate, flood)
        finally:
            await asyncio.to_thread(run_process.stop)
            await asyncio.to_thread(sandbox.stop)
    report(quiet, flooded, seconds, flood, rate)


def report(quiet: Phase, flooded: Phase, seconds: float, flood: int, rate: int) -> None:
    print(
        f"{seconds:g} s per phase, {rate} changes/s of traffic, {flood} hostile clients "
        f"in the flood phase; /healthz probed every {PROBE_EVERY_S * 1000:g} ms"
    )
    for phase in (quiet, flooded):
        print(
            f"  {phase.name:<6} /healthz p50 {phase.quantile(0.5) * 1000:7.1f} ms  "
            f"p99 {phase.quantile(0.99) * 1000:7.1f} ms  max {phase.worst * 1000:7.1f} ms  "
            f"({len(phase.health_s)} probes, {phase.health_failed} not 200); "
            f"accepted {phase.accepted}, leads upserted {phase.leads} "
            f"({phase.leads_per_s:.1f}/s)"
        )

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0 else "n/a"

    print(
        f"  ratio flood/quiet: /healthz p50 {ratio(flooded.quantile(0.5), quiet.quantile(0.5))}, "
        f"p99 {ratio(flooded.quantile(0.99), quiet.quantile(0.99))}, "
        f"max {ratio(flooded.worst, quiet.worst)}; "
        f"deliveries {ratio(flooded.leads_per_s, quiet.leads_per_s)}"
    )
    within = flooded.worst < CONTRACT_S and flooded.health_failed == 0
    print(
        f"  /healthz within {CONTRACT_S:g} s throughout the flood: {'yes' if within else 'NO'} "
        f"(max {flooded.worst * 1000:.1f} ms)"
    )
    answers = ", ".join(f"{k} x{v}" for k, v in sorted(flooded.hostile.items()))
    print(f"  hostile requests answered: {sum(flooded.hostile.values())} ({answers})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--seconds", type=float, default=sized(30.0, 3.0))
    parser.add_argument("--flood", type=int, default=sized(6, 2))
    parser.add_argument("--rate", type=int, default=sized(40, 20))
    args = parser.parse_args(argv)
    asyncio.run(run(args.seconds, args.flood, args.rate))


if __name__ == "__main__":
    main()

"""Time from `csignal run --demo --headless` to its milestones: API ready, first change recorded,
first delivered outcome, first lead in the sandbox; then the time Ctrl-C takes to stop it all.

    python -m bench.run_demo_first_delivery [--runs N] [--rate R]

A run that misses a milestone within the deadline (180 s) fails rather than printing fewer marks.
Smoke mode (`bench/__init__.py`) is the same single run with a 90 s deadline: start-up is the
figure, so there is nothing smaller to run.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from apiclient.client import ApiClient
from apiclient.errors import ApiError
from bench import arguments, sized
from stream.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
MILESTONES = {"first lead", "first delivery"}


async def one_run(rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="signal-bench-") as tmp:
        data_dir = Path(tmp)
        api = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_")}
        env.update(SIGNAL_API=api, SIGNAL_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, read by a thread
            [sys.executable, "-m", "stream", "run", "--demo", "--headless", "--rate", str(rate)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        marks: dict[str, float] = {}
        sandbox = ""
        client: ApiClient | None = None
        try:
            deadline = started + sized(180, 90)
            while time.monotonic() < deadline and not set(marks) >= MILESTONES:
                if process.poll() is not None:
                    raise RuntimeError("csignal run exited:\n" + "".join(lines))
                text = "".join(lines)
                if not sandbox and (found := re.search(r"Marketo sandbox: (http://\S+)", text)):
                    sandbox = found.group(1)
                if "ready" not in marks and "Signal is running" in text:
                    marks["ready"] = time.monotonic() - started
                    token = (data_dir / "api-token").read_text().strip()
                    client = ApiClient(f"http://{api}", token)
                if client is not None:
                    await _probe(client, sandbox, marks, started)
                await asyncio.sleep(0.2)
            if missing := MILESTONES - set(marks):
                raise TimeoutError(
                    f"no {', '.join(sorted(missing))} by {deadline - started:g} s "
                    f"(reached: {marks or 'nothing'}); output:\n" + "".join(lines)
                )
        finally:
            if client is not None:
                await client.close()
            stop_started = time.monotonic()
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
            marks["stop"] = time.monotonic() - stop_started
        return marks


async def _probe(client: ApiClient, sandbox: str, marks: dict[str, float], started: float) -> None:
    now = time.monotonic() - started
    try:
        if "first change" not in marks and (await client.scalar("SELECT count(*) FROM changes")):
            marks["first change"] = now
        if "first delivery" not in marks and await client.scalar(
            "SELECT count(*) FROM outcomes WHERE status = 'delivered'"
        ):
            marks["first delivery"] = now
    except ApiError:
        return
    if sandbox and "first lead" not in marks:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{sandbox}/_sandbox/leads") as response,
        ):
            body: Any = await response.json()
        if body.get("leads"):
            marks["first lead"] = now


async def main_async(runs: int, rate: float) -> None:
    print(f"csignal run --demo --headless (simulator {rate:g}/s), {runs} run(s)")
    for number in range(1, runs + 1):
        marks = await one_run(rate)
        shown = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in marks.items())
        print(f"run {number}: {shown}")


def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.runs, args.rate))


if __name__ == "__main__":
    main()

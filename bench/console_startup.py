"""Console responsiveness over a large store: start-up to the painted flow list, and retry-queue
page fetches while keys keep arriving.

    python -m bench.console_startup [--outcomes 1000000] [--retry-items 50000] [--runs 5]

The operator API (store, configuration, retry operations, metrics routes) serves from a child
process, as control does; the console runs headless (`run_test`, 80×24) in this process, through
`make_app` as `csignal console` builds it. The store is built once per size and reused from the
temp directory on later runs (`--fresh` rebuilds). Smoke mode (`bench/__init__.py`): 1,000
outcomes and 300 retry items in a temp directory of its own, one start-up, two page fetches.

Figures:
- start → flow list painted: app start until the flow table holds every flow and has rendered;
- start → today's counts: until the per-flow delivered/failed counts (SQL over all outcomes) show;
- retry page fetch: next page asked (`]`) → page of 100 rendered, while `j`/`k` keep being
  pressed;
- key handling during fetches: key event posted → cursor moved (no Pilot idle waits), and the
  event loop's timer delay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from bench import arguments, sized, smoke
from console.app import make_app
from console.messages import QueuePageLoaded
from simulators.certain.demo_account import demo_account
from stream.api.app import create_app
from stream.api.deps import ApiDeps
from stream.control.config_service import ConfigService
from stream.control.operations import Operations
from stream.control.secret_store import SecretStore
from stream.store import OutcomeRow, RetryItem, Store

T = TypeVar("T")
TOKEN = "bench-token"
FLOWS = (
    "registered-to-nurture",
    "attended-follow-up",
    "vip-session-attended",
    "complete-form",
    "event-live-owner",
    "test-registered",
    "test-form",
)
STATUSES = ("delivered", "delivered", "delivered", "not_activated", "filtered_out", "failed")
MARKER = "seeded.txt"
NO_KEYMAP = Path("/nonexistent/console-keys.yaml")


class Service:
    """The operator API over a real store, in a thread of its own."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self._parts: dict[str, Any] = {}

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 3600) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result(timeout)

    def start(self, outcomes: int, retry_items: int, fresh: bool) -> float:
        self.thread.start()
        return self.call(self._start(outcomes, retry_items, fresh))

    async def _start(self, outcomes: int, retry_items: int, fresh: bool) -> float:
        marker = self.data_dir / MARKER
        wanted = f"{outcomes} {retry_items}"
        if fresh or not marker.exists() or marker.read_text() != wanted:
            for stale in self.data_dir.glob("*"):
                stale.unlink()
        store = await Store.open(self.data_dir / "signal.duckdb")
        config = ConfigService(store, SecretStore(self.data_dir / "secrets.json"), env={})
        await config.start()
        seeded = 0.0
        if not marker.exists():
            began = time.perf_counter()
            account = demo_account("https://123-ABC-456.mktorest.com")
            await config.import_text(yaml.safe_dump(account), "bench")
            await seed(store, outcomes, retry_items)
            marker.write_text(wanted)
            seeded = time.perf_counter() - began

        async def produce(records: Any) -> None:
            return None

        async def redrive(records: Sequence[tuple[bytes, bytes]]) -> None:
            return None

        ops = Operations.build(store, config, redrive)
        app = create_app(ApiDeps(store, config, produce, TOKEN), ops)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._parts = {"store": store, "config": config, "ops": ops, "runner": runner}
        return seeded

    def stop(self) -> None:
        async def stop() -> None:
            await self._parts["runner"].cleanup()
            await self._parts["ops"].close()
            await self._parts["config"].stop()
            await self._parts["store"].close()

        try:
            self.call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


async def seed(store: Store, outcomes: int, retry_items: int) -> None:
    """`outcomes` attempt rows over the last 7 days, a sixth of them today (between midnight UTC
    and now, whatever the hour: at 00:05 an even spread would leave today empty and the counts
    the figure waits for would never show), and a retry queue."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    batch = 20_000
    span = timedelta(days=7)
    today_from = outcomes - max(1, outcomes // 6)
    for start in range(0, outcomes, batch):
        rows = []
        for i in range(start, min(outcomes, start + batch)):
            status = STATUSES[i % len(STATUSES)]
            if i >= today_from:
                processed = midnight + (now - midnight) * (
                    (i - today_from + 1) / (outcomes - today_from)
                )
            else:
                processed = midnight - span * ((today_from - i) / today_from)
            flow = FLOWS[i % len(FLOWS)]
            rows.append(
                OutcomeRow(
                    change_id=f"chg-{i:09d}",
                    flow_id=flow,
                    flow_name=flow,
                    mode="test" if flow.startswith("test") else "live",
                    status=status,  # type: ignore[arg-type]
                    category="technical" if status == "failed" else None,
                    reason="HTTP 503" if status == "failed" else None,
                    occurred_at=processed - timedelta(seconds=2),
                    processed_at=processed,
                    registration_code=f"R{i % 50_000:06d}",
                    event_code=f"EV{i % 40}",
                    action="create_update_lead",
                    lead_result="created" if status == "delivered" else None,
                    latency_ms=150.0,
                )
            )
        await store.record_outcomes(rows)
    items = [
        RetryItem(
            change_id=f"rq-{i:07d}",
            flow_id=FLOWS[i % len(FLOWS)],
            flow_name=FLOWS[i % len(FLOWS)],
            integration="demo-marketo",
            status=("pending", "abandoned", "retrying")[i % 3],
            category="data" if i % 2 else "technical",
            reason="status 'Waitlisted' has no tag" if i % 2 else "HTTP 503",
            attempts=i % 4,
            updated_at=now - timedelta(seconds=i),
        )
        for i in range(retry_items)
    ]
    for start in range(0, len(items), batch):
        await store.upsert_retry_items(items[start : start + batch])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def startup_once(url: str) -> tuple[float, float]:
    from textual.widgets import DataTable

    began = time.perf_counter()
    app = make_app(url, TOKEN, refresh_s=0, watch_tty=False, keymap_file=NO_KEYMAP)
    painted = counted = 0.0
    seen_errors = 0
    async with app.run_test(size=(80, 24)) as pilot:
        while not painted or not counted:
            await pilot.pause(0.005)
            if len(app.errors) > seen_errors:
                # A call that failed (on a loaded machine a first answer can exceed the
                # client's timeout) is not retried with refresh off: ask again, as an operator
                # would with ctrl+r, and say so, since the figure then includes the retry.
                seen_errors = len(app.errors)
                print(f"   (a call failed, refreshed: {app.errors[-1][1]}: {app.errors[-1][2]})")
                await pilot.press("ctrl+r")
            screen = app.screen
            tables = list(screen.query(DataTable)) if screen.is_current else []
            if not tables:
                continue
            table = tables[0]
            if not painted and table.row_count >= len(FLOWS):
                await pilot.pause()
                painted = time.perf_counter() - began
            if not counted and getattr(screen, "stats", None):
                await pilot.pause()
                counted = time.perf_counter() - began
            if time.perf_counter() - began > 120:
                raise TimeoutError(
                    "the flow list did not paint within 120 s"
                    f" (painted {painted:.1f} s, counted {counted:.1f} s,"
                    f" errors: {[e[1:] for e in app.errors]})"
                )
        await app.workers.wait_for_complete()
    return painted, counted


async def retry_paging(url: str, pages: int) -> dict[str, list[float]]:
    from textual import events
    from textual.widgets import DataTable

    loaded: list[float] = []
    app = make_app(url, TOKEN, refresh_s=0, watch_tty=False, keymap_file=NO_KEYMAP)
    fetch_ms: list[float] = []
    key_ms: list[float] = []
    lag_ms: list[float] = []

    def hook(message: object) -> None:
        if isinstance(message, QueuePageLoaded):
            loaded.append(time.perf_counter())

    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        await pilot.press("4")
        while not loaded:
            await pilot.pause(0.01)
        await pilot.pause(0.2)
        table = app.screen.query_one(DataTable)
        expected = time.perf_counter()

        def tick() -> None:
            nonlocal expected
            now = time.perf_counter()
            lag_ms.append(max(0.0, (now - expected) * 1000))
            expected = now + 0.01

        timer = app.set_interval(0.01, tick)
        for _ in range(pages):
            before = len(loaded)
            started = time.perf_counter()
            screen = app.screen
            if screen.page_offset + 100 >= screen.page.total:  # type: ignore[attr-defined]
                screen.page_offset = -100  # type: ignore[attr-defined]
            screen.action_next_page()  # type: ignore[attr-defined]
            while len(loaded) == before:
                row = table.cursor_row
                key = "j" if row < 50 else "k"
                pressed = time.perf_counter()
                app.post_message(events.Key(key, key))
                while table.cursor_row == row and time.perf_counter() - pressed < 5:  # noqa: ASYNC110
                    await asyncio.sleep(0.0005)
                key_ms.append((time.perf_counter() - pressed) * 1000)
            await pilot.pause()
            fetch_ms.append((time.perf_counter() - started) * 1000)
        timer.stop()
    return {"fetch": fetch_ms, "key": key_ms, "lag": lag_ms}


def serve(data_dir: Path, outcomes: int, retry_items: int, fresh: bool) -> None:
    """Child process: start the service, say where it listens, stop when stdin closes."""
    service = Service(data_dir)
    seeded = service.start(outcomes, retry_items, fresh)
    print(f"{service.url} {seeded:.1f}", flush=True)
    try:
        sys.stdin.read()
    finally:
        service.stop()


async def start_child(
    data_dir: Path, outcomes: int, retry_items: int, fresh: bool
) -> tuple[asyncio.subprocess.Process, str, float]:
    command = [
        sys.executable,
        "-m",
        "bench.console_startup",
        "--serve",
        str(data_dir),
        "--outcomes",
        str(outcomes),
        "--retry-items",
        str(retry_items),
    ]
    if fresh:
        command.append("--fresh")
    child = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    line = (await child.stdout.readline()).decode().split()
    if len(line) != 2:
        child.kill()
        await child.wait()
        raise RuntimeError("the service did not start")
    return child, line[0], float(line[1])


async def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--outcomes", type=int, default=sized(1_000_000, 1_000))
    parser.add_argument("--retry-items", type=int, default=sized(50_000, 300))
    parser.add_argument("--runs", type=int, default=sized(5, 1))
    parser.add_argument("--pages", type=int, default=sized(30, 2))
    parser.add_argument("--fresh", action="store_true")
    args, _ = parser.parse_known_args()
    if args.serve is not None:
        serve(args.serve, args.outcomes, args.retry_items, args.fresh)
        return
    with contextlib.ExitStack() as stack:
        if smoke():
            # Never shared with another run (a full one, or a test running at the same time).
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="signal-")))
        else:
            data_dir = Path(tempfile.gettempdir()) / f"signal-console-bench-{args.outcomes}"
            data_dir.mkdir(parents=True, exist_ok=True)
        await measure(args, data_dir)


async def measure(args: argparse.Namespace, data_dir: Path) -> None:
    child, url, seeded = await start_child(data_dir, args.outcomes, args.retry_items, args.fresh)
    try:
        if seeded:
            print(
                f"seeded {args.outcomes:,} outcomes and {args.retry_items:,} retry items "
                f"in {seeded:.1f} s"
            )
        painted: list[float] = []
        counted: list[float] = []
        for _ in range(args.runs):
            p, c = await startup_once(url)
            painted.append(p * 1000)
            counted.append(c * 1000)
        print(
            f"start → flow list painted ({args.outcomes:,} outcomes, 80x24, {args.runs} runs): "
            f"median {statistics.median(painted):7.1f} ms, max {max(painted):7.1f} ms"
        )
        print(
            "start → today's per-flow counts shown:                    "
            f"median {statistics.median(counted):7.1f} ms, max {max(counted):7.1f} ms"
        )
        figures = await retry_paging(url, args.pages)
        fetch, key, lag = figures["fetch"], figures["key"], figures["lag"]
        print(
            f"retry page fetch ({args.retry_items:,} items, 100/page, {len(fetch)} pages): "
            f"p50 {pct(fetch, 0.5):6.1f} ms, p95 {pct(fetch, 0.95):6.1f} ms, "
            f"max {max(fetch):6.1f} ms"
        )
        print(
            f"key press → handled during fetches ({len(key)} presses): "
            f"p50 {pct(key, 0.5):6.1f} ms, p95 {pct(key, 0.95):6.1f} ms, max {max(key):6.1f} ms"
        )
        print(
            f"event-loop timer delay during fetches ({len(lag)} ticks): "
            f"p50 {pct(lag, 0.5):6.1f} ms, p99 {pct(lag, 0.99):6.1f} ms, max {max(lag):6.1f} ms"
        )
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 60)
        except TimeoutError:
            child.kill()
            await child.wait()


if __name__ == "__main__":
    asyncio.run(main())

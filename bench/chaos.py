"""Chaos: bursts of registration changes into a real `csignal run`, killed at chosen moments;
lost changes, repeats to Marketo and time to full recovery per run.

    python -m bench.chaos [RUNS] [--changes 3000] [--broker-runs 1] [--worker-runs 1]
                          [--recovery-within 300]

Each run (`tests/e2e/chaos_support.py`) has its own `csignal sandbox --latency-ms 100`, data dir
and `csignal run --headless --config …` (Create/Update Lead flow with its campaign); a burst of
`--changes` changes is posted to `POST /api/v1/changes` and the run is killed once the burst has
reached a moment (ingest: accepted; delivery: leads upserted in the sandbox; recording: delivered
outcomes in the ledger):

- RUNS (default 10) kills of every process of the run at once (SIGKILL to the runner, broker,
  control and pipeline), then `csignal run --headless` again on the same data dir; the moments
  go round ingest, delivery and recording at different fractions;
- `--broker-runs` kills of the embedded broker alone (the run heals by itself; default 1, 0
  when RUNS is 0), and as many rollovers of it (SIGUSR1 to the run: control and the pipeline
  stopped cleanly, then the broker, all started again on a new one);
- `--worker-runs` (default 1) runs with two pipeline workers, the run's and a second one, where
  the one delivering to Marketo is SIGKILLed mid-burst (at 30 % to 70 % of the leads upserted).
  Item 5's measurement: `python -m bench.chaos 0 --worker-runs 20 --changes 6000`.

Per run: accepted, lost (accepted changes without a final outcome for every flow after
`--recovery-within` seconds), repeats to Marketo (campaign requests beyond the first for a lead,
from the sandbox's record), repeats the ledger counted (n/a when `outcomes` has no such column),
deliveries verified in Marketo's activity log instead of sent again and the activity calls that
cost, time to full recovery. Smoke mode (`bench/__init__.py`): one kill of everything after 30
changes were delivered, so nothing is left to recover but the run must come back.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import arguments, sized
from tests.e2e.chaos_support import (
    IN_FLIGHT_BOUND,
    SANDBOX_LATENCY_MS,
    ChaosResult,
    Kill,
    Moment,
    chaos_run,
)

MOMENTS = [
    Moment("ingest", 0.2),
    Moment("delivery", 0.1),
    Moment("recording", 0.2),
    Moment("ingest", 0.6),
    Moment("delivery", 0.4),
    Moment("recording", 0.5),
    Moment("ingest", 0.9),
    Moment("delivery", 0.7),
    Moment("recording", 0.8),
    Moment("delivery", 0.95),
]
"""Different moments for the kills of everything, taken in turn (shifted a little each round)."""


def schedule(runs: int, worker_runs: int, broker_runs: int = 1) -> list[tuple[Kill, Moment]]:
    if sized(False, True):
        return [("all", Moment("recording", 1.0))]
    plan: list[tuple[Kill, Moment]] = []
    for number in range(runs):
        moment = MOMENTS[number % len(MOMENTS)]
        shift = 0.05 * (number // len(MOMENTS))
        fraction = min(0.98, moment.fraction + shift)
        plan.append(("all", Moment(moment.phase, fraction)))
    plan.extend(("broker", Moment("delivery", 0.4)) for _ in range(broker_runs))
    plan.extend(("rollover", Moment("delivery", 0.4)) for _ in range(broker_runs))
    plan.extend(("worker", Moment("delivery", 0.3 + 0.1 * (n % 5))) for n in range(worker_runs))
    return plan


def summary(results: list[ChaosResult]) -> list[str]:
    lines = []
    for kill in ("all", "broker", "rollover", "worker"):
        mine = [r for r in results if r.kill == kill]
        if not mine:
            continue
        recovered = [r.recovery_s for r in mine if r.recovery_s is not None]
        repeats = [r.marketo_repeats for r in mine]
        median = f"{statistics.median(recovered):.1f}s" if recovered else "n/a"
        slowest = f"{max(recovered):.1f}s" if recovered else "n/a"
        lines.append(
            f"  kill {kill}: {len(mine)} runs, {sum(r.accepted for r in mine)} accepted, "
            f"lost {sum(r.lost for r in mine)} (in {sum(1 for r in mine if r.lost)} runs), "
            f"repeats to Marketo {sum(repeats)} (max {max(repeats)} in a run; bound "
            f"{IN_FLIGHT_BOUND}; 0 in {sum(1 for n in repeats if n == 0)} runs), "
            f"verified instead of sent again {sum(r.verified for r in mine)} "
            f"({sum(r.verify_calls for r in mine)} activity calls), "
            f"recovered in {len(recovered)}/{len(mine)} runs (median {median}, slowest {slowest})"
        )
    return lines


async def run(
    runs: int, changes: int, worker_runs: int, recovery_within: float, broker_runs: int = 1
) -> None:
    plan = schedule(runs, worker_runs, broker_runs)
    print(
        f"{len(plan)} chaos runs, {changes} changes each, sandbox latency "
        f"{SANDBOX_LATENCY_MS:g} ms, recovery deadline {recovery_within:g} s"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="signal-chaos-") as tmp:
        for number, (kill, moment) in enumerate(plan, 1):
            result = await chaos_run(
                Path(tmp) / f"run-{number}",
                label=f"run {number}",
                kill=kill,
                moment=moment,
                changes=changes,
                recovery_within=recovery_within,
            )
            print(result.line(), flush=True)
            results.append(result)
    print("\n".join(summary(results)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("runs", nargs="?", type=int, default=10, help="kills of everything")
    parser.add_argument("--changes", type=int, default=sized(3000, 30))
    parser.add_argument(
        "--broker-runs", type=int, default=None, help="default: 1, or 0 when RUNS is 0"
    )
    parser.add_argument("--worker-runs", type=int, default=1)
    parser.add_argument("--recovery-within", type=float, default=sized(300.0, 90.0))
    args = parser.parse_args(argv)
    if min(args.runs, args.worker_runs, args.broker_runs or 0) < 0:
        parser.error("run counts cannot be negative")
    broker_runs = args.broker_runs if args.broker_runs is not None else min(1, args.runs)
    asyncio.run(run(args.runs, args.changes, args.worker_runs, args.recovery_within, broker_runs))


if __name__ == "__main__":
    main()

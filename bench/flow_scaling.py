"""Routing and recording cost as flows that cannot match grow: 3 active flows against 100 of
which the same 3 at most can match a change (issue 13, item 7), in the same run.

    python -m bench.flow_scaling [--changes 4000] [--flows 100]

- route: the route stage's own steps in process, as `bench.pipeline_throughput` times them (read
  the record, `route_change`, `route_records`, serialise), per change of this process's CPU;
- record: the records that routing published for those changes (`signal-outcomes` only) through
  the real `Recorder` into a DuckDB file of its own per account (outcome recording reads no
  configuration; control holds `bench.control_ledger`'s account), in batches of the record
  agent's maximum, per change of wall and CPU time, with the ledger rows they made.

The changes are `bench.core_flows`' mix (registration status changes, tagged and untagged,
create/updates, session status changes), each with an id of its own. The 97 other flows copy the
first three and select a tag no change carries. The goal is the 100-flow rate at least 80 % of
the 3-flow rate, for both; the ratio is printed beside it. Smoke mode: a few changes.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from bench import arguments, sized
from bench.control_ledger import ACCOUNT as LEDGER_ACCOUNT
from bench.core_flows import ACTIVATE_FOR_LISTS, changes
from config.models import Account, Flow
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Rejection
from stream.control.config_service import ConfigService
from stream.control.recorder import Recorder
from stream.control.runtime import ControlSettings
from stream.control.secret_store import SecretStore
from stream.core.catalog import EventCatalog
from stream.messages import ConfigSnapshot, Message
from stream.pipeline.records import parse_record, route_records
from stream.pipeline.route import Routed, route_change
from stream.store import Store
from stream.topics import OUTCOMES
from tests.support.accounts import example_account
from tests.support.changes import catalog, event_change

BASE_FLOWS = 3
GOAL_RATIO = 0.8
ROUTE_BATCH = 50
RECORD_BATCH = ControlSettings.record_batch_max


def account_with(flows: int) -> Account:
    """The example account's first three flows, active, then copies of them selecting a tag no
    change carries up to `flows` flows: a change can match the first three at most."""
    account = example_account()
    for connection in account.connections:
        connection.client_secret = SecretStr("secret")
    base = account.flows[:BASE_FLOWS]
    made: list[Flow] = []
    for i in range(flows):
        model = base[i % len(base)]
        flow = model.model_copy(deep=True, update={"id": f"{model.id}-{i}", "active": True})
        if i >= len(base):
            wanted = flow.activate_for
            for name in ACTIVATE_FOR_LISTS:
                if getattr(wanted, name):
                    setattr(wanted, name, [f"other-{i}"])
            if wanted.standard_properties:  # a property every registration may have
                wanted.standard_properties = []
                wanted.registration_statuses = [f"other-{i}"]
        made.append(flow)
    account.flows = made
    return account


def raw_changes(count: int, run: str) -> list[bytes]:
    """`count` changes of the mix, each with an id of its own, as records on the topic. The
    mix's untagged status ("Badge Collected", no tag assigned) is left out: there every flow of
    the source reads its own filters and fails on its own (a data failure per flow, which an
    operator fixes by assigning the status a tag), so no flow of its source "cannot match"."""
    mix = [
        change
        for change in changes()
        if change.registration is None
        or change.registration.registration_status_label != "Badge Collected"
    ]
    made: list[bytes] = []
    for n in range(count):
        change: ChangeEvent = mix[n % len(mix)].model_copy(update={"change_id": f"{run}-{n}"})
        made.append(change.model_dump_json(by_alias=True).encode())
    return made


def route_all(raws: Sequence[bytes], account: Account, cat: EventCatalog) -> list[bytes]:
    """The route stage's steps over `raws` in batches as the worker takes them: the
    `signal-outcomes` records it would publish, serialised."""
    published: list[bytes] = []
    for start in range(0, len(raws), ROUTE_BATCH):
        routed = Routed()
        now = datetime.now(UTC)
        for raw in raws[start : start + ROUTE_BATCH]:
            parsed = parse_record(raw, False)
            assert not isinstance(parsed, Rejection), parsed
            change, why = parsed
            routed.extend(route_change(change, account, cat, now=now, received_at=now, redrive=why))
        for topic, _, value in route_records(routed):
            data = value.dumps() if isinstance(value, Message) else value
            if topic == OUTCOMES.name and data is not None:
                published.append(data)
    return published


def route_us(raws: Sequence[bytes], account: Account, cat: EventCatalog) -> float:
    """µs of CPU a change costs in the route steps (best of three, after a warm-up)."""
    route_all(raws, account, cat)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        route_all(raws, account, cat)
        best = min(best, time.process_time() - started)
    return best / len(raws) * 1e6


async def record(records: Sequence[bytes], data: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, ledger rows) for the real `Recorder` to take `records` into a new file."""
    _prepare(data, LEDGER_ACCOUNT)

    async def publish(snapshot: ConfigSnapshot) -> None:
        return None

    store = await Store.open(data / "signal.duckdb")
    config = ConfigService(store, SecretStore(data / "secrets.json"), publish=publish)
    await config.start(data / "account.yaml")
    try:
        recorder = Recorder(store, config)
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(records), RECORD_BATCH):
            await recorder.record_outcomes(records[start : start + RECORD_BATCH])
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        rows = await store.read(lambda con: con.execute("SELECT count(*) FROM outcomes").fetchall())
        return wall, cpu, int(rows[0][0])
    finally:
        await config.stop()
        await store.close()


def _prepare(data: Path, account_yaml: str) -> None:
    data.mkdir()
    (data / "account.yaml").write_text(account_yaml, encoding="utf-8")


def _verdict(ratio: float) -> str:
    met = "met" if ratio >= GOAL_RATIO else "not met"
    return f"goal ≥ {GOAL_RATIO:.0%} of {BASE_FLOWS} flows: {met}"


async def run(count: int, flows: int) -> None:
    cat = catalog(event_change())
    print(
        f"== flow_scaling: {count:,} changes, {BASE_FLOWS} active flows against {flows} (same run)"
    )
    figures: dict[int, tuple[float, float, float, int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (BASE_FLOWS, flows):
            account = account_with(n)
            raws = raw_changes(count, f"f{n}")
            us = route_us(raws, account, cat)
            records = route_all(raws, account, cat)
            wall, cpu, rows = await record(records, Path(tmp) / f"flows-{n}")
            figures[n] = (us, count / wall, count / cpu, len(records), rows)
    print(
        f"{'flows':>6} {'route µs/change':>16} {'record changes/s':>17} {'per CPU-s':>10} "
        f"{'records':>9} {'rows':>9}"
    )
    for n, (us, per_s, per_cpu, records_n, rows) in figures.items():
        print(f"{n:>6} {us:>16,.1f} {per_s:>17,.0f} {per_cpu:>10,.0f} {records_n:>9,} {rows:>9,}")
    base, many = figures[BASE_FLOWS], figures[flows]
    route_ratio = base[0] / many[0]
    record_ratio = many[1] / base[1]
    record_cpu_ratio = many[2] / base[2]
    print(
        f"  route, {flows} flows / {BASE_FLOWS} (changes per CPU-second): {route_ratio:.0%}; "
        f"{_verdict(route_ratio)}"
    )
    print(
        f"  record, {flows} flows / {BASE_FLOWS}: {record_ratio:.0%} wall, "
        f"{record_cpu_ratio:.0%} CPU; {_verdict(min(record_ratio, record_cpu_ratio))}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--changes", type=int, default=sized(4_000, 60))
    parser.add_argument("--flows", type=int, default=sized(100, 10))
    args = parser.parse_args(argv)
    asyncio.run(run(args.changes, args.flows))


if __name__ == "__main__":
    main()

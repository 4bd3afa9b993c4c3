"""A retention pass reports the longest one step held the ledger's writer (what a recorder batch
queued behind it waited), in its report and in `/metrics`, against a real DuckDB file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from stream.control.retention import Retention
from stream.metrics import prometheus
from stream.metrics.queries import RuntimeStatus
from stream.store import Store
from stream.store.retention import RetentionPolicy
from tests.support.clock import FakeClock
from tests.support.ledger import outcome


async def test_pass_reports_its_longest_step_and_metrics_show_it(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await Store.open(tmp_path / "signal.duckdb", reader_threads=2, threads=2)
    try:
        old = clock.now - timedelta(days=500)
        await store.record_outcomes(
            [outcome(f"c{i}", "delivered", old + timedelta(minutes=i)) for i in range(5)]
        )
        retention = Retention(store, RetentionPolicy(batch=2), pause_s=0.0, clock=clock)
        report = await retention.prune()
        assert report.rows["delivery_state:drop"] == 5
        assert report.longest_step is not None and ":" in report.longest_step
        assert 0 < report.longest_step_s <= report.seconds
        shown = report.to_dict()
        assert shown["longest_step"] == report.longest_step
        assert shown["longest_step_s"] == round(report.longest_step_s, 3)

        text = await prometheus.exposition(
            store, runtime=RuntimeStatus(retention=retention.snapshot()), now=clock.now
        )
        line = next(
            x for x in text.splitlines() if x.startswith("signal_ledger_retention_longest_step")
        )
        assert float(line.split()[-1]) == shown["longest_step_s"]
    finally:
        await store.close()

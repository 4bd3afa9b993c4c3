"""Activity feed paging, the `metric_*` views and the Prometheus text, on the generated stream."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from stream.metrics import ParameterError, activity, parse_window, prometheus, views
from stream.metrics.definitions import Mode
from stream.metrics.lag import GroupLag, LagReading
from stream.metrics.queries import RuntimeStatus
from stream.store import Store
from stream.store.store import LEDGER_ONLY_STATUSES
from stream.store.writer import Con
from tests.metrics.metrics_stream_gen import NOW, Stream, feed_order


@pytest.mark.parametrize(("mode", "period", "limit"), [("live", "7d", 37), ("test", "24h", 5)])
async def test_feed_pages_cover_the_window_newest_first_once(
    metrics_store: Store, recorded_stream: Stream, mode: Mode, period: str, limit: int
) -> None:
    window = parse_window(period, now=NOW)
    seen: list[tuple[str, str]] = []
    before = None
    pages = 0
    while True:
        page = await activity.page(metrics_store, mode, window, limit=limit, before=before)
        assert len(page["items"]) <= limit
        seen += [(i["change_id"], i["flow_id"]) for i in page["items"]]
        pages += 1
        if page["next_before"] is None:
            break
        assert len(page["items"]) == limit
        before = activity.decode_cursor(page["next_before"])
    assert seen == feed_order(recorded_stream, mode, window.start, window.end)
    assert pages > 1


async def test_feed_rows_show_the_latest_state_with_its_detail(
    metrics_store: Store, recorded_stream: Stream
) -> None:
    window = parse_window("7d", now=NOW)
    page = await activity.page(metrics_store, "live", window, limit=500)
    states = {(p.change_id, p.flow.flow_id): p for p in recorded_stream.pairs}
    for item in page["items"]:
        pair = states[(item["change_id"], item["flow_id"])]
        state = pair.state
        assert item["time"] == state.processed_at.isoformat()
        assert item["status"] == state.status
        assert item["attempts"] == sum(a.status not in LEDGER_ONLY_STATUSES for a in pair.attempts)
        assert item["registration_code"] == state.registration_code
        assert item["action"] == pair.flow.action
        assert item["detail"] == (state.reason or state.lead_result or state.status)


async def test_feed_refuses_bad_limits_and_cursors(metrics_store: Store) -> None:
    window = parse_window("24h", now=NOW)
    for limit in (0, activity.MAX_LIMIT + 1):
        with pytest.raises(ParameterError):
            await activity.page(metrics_store, "live", window, limit=limit)
    for text in ("", "not-base64!", "WyJ4Il0", activity.encode_cursor((NOW, "a", "b"))[:-3]):
        with pytest.raises(ParameterError):
            activity.decode_cursor(text)


async def test_metric_views_agree_with_the_summary(
    metrics_store: Store, recorded_stream: Stream
) -> None:
    await views.install(metrics_store)
    await views.install(metrics_store)  # idempotent at every start
    window = parse_window("7d", now=NOW)

    def read(con: Con) -> list[tuple[str, str, int]]:
        return [
            tuple(r)
            for r in con.execute(
                "SELECT status, reason_code, count(*) FROM metric_outcomes "
                "WHERE mode = 'live' AND not_triggered AND processed_at >= ? AND processed_at < ? "
                "GROUP BY ALL",
                [window.start, window.end],
            ).fetchall()
        ]

    got = Counter({(s, c): n for s, c, n in await metrics_store.read(read)})
    want: Counter[tuple[str, str]] = Counter()
    for p in recorded_stream.pairs:
        s = p.state
        in_window = p.flow.mode == "live" and window.start <= s.processed_at < window.end
        if in_window and s.status in ("not_activated", "filtered_out", "failed"):
            want[(s.status, p.code or "")] += 1
    assert got == want

    result = await metrics_store.query(
        "SELECT mode, count(*) FROM metric_retry_queue GROUP BY ALL ORDER BY 1"
    )
    items = Counter(p.flow.mode for p in recorded_stream.pairs if p.retry is not None)
    assert [tuple(r) for r in result.rows] == sorted(items.items())
    calls = await metrics_store.query(
        "SELECT error_code, count(*) FROM metric_api_calls WHERE is_error GROUP BY ALL"
    )
    assert sum(r[1] for r in calls.rows) == sum(
        c.http_status is None or c.http_status >= 400 or c.marketo_error is not None
        for c in recorded_stream.calls
    )


_SAMPLE = re.compile(r"^([a-z_0-9]+)(?:\{(.*)\})? (\S+)$")


def _parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_0-9]+ .+$", line), line
            continue
        match = _SAMPLE.match(line)
        assert match, line
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


LAG = LagReading(
    (
        GroupLag("certain-changes", "signal-pipeline", 2),
        GroupLag("certain-changes", "signal-control", 5),
        GroupLag("signal-outcomes", "signal-control", 3),
    )
)


async def test_prometheus_counters_match_the_stream(
    metrics_store: Store, recorded_stream: Stream
) -> None:
    text = await prometheus.exposition(
        metrics_store, now=NOW, runtime=RuntimeStatus(consumer_lag=LAG, workers_alive=1)
    )
    samples = _parse(text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    attempts = Counter((a.mode, a.status) for a in recorded_stream.outcome_rows)
    for (mode, status), n in attempts.items():
        assert value("signal_outcome_attempts_total", mode=mode, status=status) == n
    states = Counter((p.flow.mode, p.state.status) for p in recorded_stream.pairs)
    for (flow_mode, state), n in states.items():
        assert value("signal_outcomes", mode=flow_mode, status=state) == n
    queue = Counter((i.status, i.category) for i in recorded_stream.retry_items)
    for (item_status, category), n in queue.items():
        assert value("signal_retry_queue_items", status=item_status, category=category) == n
    calls = Counter(c.connection_id for c in recorded_stream.calls)
    for cid, n in calls.items():
        assert value("signal_marketo_calls_total", connection=cid) == n
        assert value("signal_marketo_call_duration_ms_count", connection=cid) == n
    assert value("signal_marketo_call_errors_total", connection="c1", code="606") == sum(
        c.connection_id == "c1" and c.marketo_error == "606" for c in recorded_stream.calls
    )
    assert value("signal_marketo_rate_budget_20s", connection="c1") == 50
    recent = sum(
        c.connection_id == "c1"
        and NOW.timestamp() - 20 <= c.started_at.timestamp() < NOW.timestamp()
        for c in recorded_stream.calls
    )
    assert value("signal_marketo_calls_last_20s", connection="c1") == recent
    assert value("signal_changes_rejected_total") == len(recorded_stream.rejected)
    lag = {g.topic + "/" + g.group: g.lag for g in LAG.groups}
    assert {
        f"{dict(labels)['topic']}/{dict(labels)['group']}": v
        for (name, labels), v in samples.items()
        if name == "signal_consumer_lag"
    } == lag
    assert value("signal_workers_alive") == 1
    assert ("signal_last_change_seen_timestamp_seconds", frozenset()) not in samples


def test_prometheus_text_escapes_label_values() -> None:
    family = prometheus.Family("signal_x_total", "counter", "a help\nline")
    family.add(3, connection='we"ird\\name\nhere')
    family.add(0.25, "_sum")
    text = prometheus.render([family])
    assert text == (
        "# HELP signal_x_total a help\\nline\n"
        "# TYPE signal_x_total counter\n"
        'signal_x_total{connection="we\\"ird\\\\name\\nhere"} 3\n'
        "signal_x_total_sum 0.25\n"
    )

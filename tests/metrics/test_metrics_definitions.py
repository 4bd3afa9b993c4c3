"""Periods, chart buckets and reason codes (pure; the SQL twin checked on an in-memory DuckDB)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest

from stream.metrics.definitions import (
    MAX_BUCKETS,
    ParameterError,
    call_error_code,
    call_error_code_sql,
    parse_mode,
    parse_window,
    reason_code,
    reason_code_sql,
)
from tests.metrics.metrics_stream_gen import NOT_ACTIVATED_TEXTS

NOW = datetime(2026, 11, 28, 12, 34, 56, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "span", "bucket"),
    [
        ("15m", timedelta(minutes=15), timedelta(minutes=1)),
        ("1h", timedelta(hours=1), timedelta(minutes=1)),
        ("24h", timedelta(hours=24), timedelta(hours=1)),
        ("7d", timedelta(days=7), timedelta(hours=6)),
        ("30d", timedelta(days=30), timedelta(days=1)),
        ("365d", timedelta(days=365), timedelta(days=7)),
    ],
)
def test_periods_and_their_chart_steps(period: str, span: timedelta, bucket: timedelta) -> None:
    window = parse_window(period, now=NOW)
    assert (window.end, window.end - window.start, window.bucket) == (NOW, span, bucket)
    starts = window.bucket_starts()
    assert starts[0] <= window.start < starts[0] + bucket
    assert starts[-1] < window.end <= starts[-1] + bucket
    assert len(starts) <= MAX_BUCKETS + 1
    assert all(b - a == bucket for a, b in itertools.pairwise(starts))


def test_explicit_bounds_and_defaults() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    window = parse_window(start=start, end=NOW)
    assert (window.start, window.end) == (start, NOW)
    assert parse_window(now=NOW).label == "24h"
    assert parse_window(start=start, now=NOW).end == NOW
    assert parse_mode(None) == "live" and parse_mode(" TEST ") == "test"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"period": "24"},
        {"period": "1w"},
        {"period": "-1h"},
        {"period": "0d"},
        {"period": "401d"},
        {"period": "1h", "start": NOW - timedelta(hours=1)},
        {"start": NOW, "end": NOW},
        {"start": NOW - timedelta(days=500), "end": NOW},
        {"start": datetime(2026, 11, 1), "end": NOW},
        {"start": NOW - timedelta(hours=1), "end": datetime(2026, 12, 1)},
    ],
)
def test_bad_windows_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ParameterError):
        parse_window(now=NOW, **kwargs)


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ParameterError):
        parse_mode("production")


CASES = [
    *[("not_activated", text, None, code) for code, text in NOT_ACTIVATED_TEXTS.items()],
    (
        "not_activated",
        "test data (the event is a test event); a live flow takes only live data",
        None,
        "mode",
    ),
    ("not_activated", None, None, "other"),
    (
        "filtered_out",
        "filter 12 does not hold: profile.email ends with '@x.com' (found 'a@b')",
        None,
        "filter_12",
    ),
    ("filtered_out", "dropped by a rule", None, "other"),
    ("failed", "HTTP 503", "technical", "technical"),
    ("failed", "required field 'email' is empty", "data", "data"),
    ("parked", "daily_quota: reached", "technical", "daily_quota"),
    ("skipped_duplicate", "already delivered", None, "other"),
]


@pytest.mark.parametrize(("status", "reason", "category", "code"), CASES)
def test_reason_codes_in_python_and_sql_agree(
    status: str, reason: str | None, category: str | None, code: str
) -> None:
    assert reason_code(status, reason, category) == code
    con = duckdb.connect()
    try:
        got = con.execute(
            f"SELECT {reason_code_sql()} FROM (SELECT ? AS status, ? AS reason, ? AS category)",
            [status, reason, category],
        ).fetchall()
    finally:
        con.close()
    assert got == [(code,)]


@pytest.mark.parametrize(
    ("http", "marketo", "cls", "code"),
    [
        (200, "606", None, "606"),
        (503, None, None, "http_503"),
        (None, None, "timeout", "timeout"),
        (None, None, None, "no_response"),
    ],
)
def test_call_error_codes_in_python_and_sql_agree(
    http: int | None, marketo: str | None, cls: str | None, code: str
) -> None:
    assert call_error_code(http, marketo, cls) == code
    con = duckdb.connect()
    try:
        got = con.execute(
            f"SELECT {call_error_code_sql()} FROM (SELECT ?::INTEGER AS http_status, "
            "?::VARCHAR AS marketo_error, ?::VARCHAR AS error_class)",
            [http, marketo, cls],
        ).fetchall()
    finally:
        con.close()
    assert got == [(code,)]

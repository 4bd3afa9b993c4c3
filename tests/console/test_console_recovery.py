"""The Troubleshooting tab's recovery lines, from the `recovery` object of
`GET /api/v1/metrics/troubleshooting`."""

from __future__ import annotations

from typing import Any

from console.screens.metrics import troubleshooting_text

BODY: dict[str, Any] = {
    "retry_queue": {"by_status": {}, "by_status_and_category": {}, "open": 0},
    "validation_errors": {},
}
RECOVERY: dict[str, Any] = {
    "grace_s": 60.0,
    "horizon_s": 604800.0,
    "every_s": 15.0,
    "max_redrives": 5,
    "unpublished": 2,
    "unrouted": 1234,
    "queued_overdue": 4,
    "redriven_total": 17,
    "stranded": 3,
    "nothing_expected": 6,
    "oldest_age_s": 4000.0,
    "scans": 9,
    "failed_scans": 1,
    "last_scan_at": "2026-11-28T12:00:05+00:00",
    "last_error": None,
    "reseeded_keys": 100,
    "reseed_s": 0.5,
}


def test_recovery_lines() -> None:
    text = troubleshooting_text({**BODY, "recovery": RECOVERY})
    assert "Recovery (grace 60 s, every 15 s, at most 5 redrives a pair)" in text
    assert "unpublished 2 · unrouted 1,234 · queued overdue 4 · oldest 67 min" in text
    assert "re-driven 17 · stranded 3 (re-driven the most times, still no outcome)" in text
    assert "last scan 12:00:05" in text
    assert "last scan failed" not in text


def test_a_failed_scan_is_shown_and_nothing_pending_reads_as_a_dash() -> None:
    failed = {**RECOVERY, "stranded": 0, "oldest_age_s": None, "last_error": "KafkaTimeoutError: x"}
    text = troubleshooting_text({**BODY, "recovery": failed})
    assert "oldest —" in text and "stranded 0 ·" in text
    assert "last scan failed: KafkaTimeoutError: x" in text


def test_a_control_without_recovery_shows_no_recovery_lines() -> None:
    assert "Recovery" not in troubleshooting_text({**BODY, "recovery": None})
    assert "Recovery" not in troubleshooting_text(BODY)

"""The Troubleshooting tab's ledger lines: retention's settings, the ledger's size and the oldest
rows kept, from a real control's pruner (Pilot at 80x24) and from the API's `ledger` object."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from console.screens.metrics import troubleshooting_text
from tests.console.console_helpers import MakeConsole, keys, settle
from tests.console.control_harness import Control
from tests.support.clock import FIXED

BODY: dict[str, Any] = {
    "retry_queue": {"by_status": {}, "by_status_and_category": {}, "open": 0},
    "validation_errors": {},
}


@pytest.fixture
def pruned_control(tmp_path: Path) -> Iterator[Control]:
    service = Control(tmp_path, base=FIXED, retention=True).start()
    try:
        yield service
    finally:
        service.stop()


async def test_troubleshooting_shows_the_ledger(
    pruned_control: Control, make_console: MakeConsole
) -> None:
    app = make_console(pruned_control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "5", "l")
        await settle(pilot)
        text = str(app.screen.query_one("#trouble-text", Static).render())
        assert "keeps payloads 90 d, outcomes 400 d, resolved retries 30 d" in text
        assert "Ledger " in text and " MB (WAL " in text
        # The seeded outcomes are hours old at the control's clock: kept, dated that day.
        assert f"oldest outcome {FIXED:%Y-%m}" in text
        assert f"last prune {FIXED:%Y-%m-%d}" in text


def test_ledger_lines_read_the_api_object() -> None:
    ledger = {
        "policy": {"payload_days": 90, "outcomes_days": 400, "retry_resolved_days": 30},
        "file_bytes": {"database": 2_600_000_000, "wal": 0},
        "oldest": {
            "outcome_log": "2025-10-24T08:00:00+00:00",
            "api_call_log": None,
            "change_log_payload": "2026-08-30T00:00:00+00:00",
        },
        "last_pass": {"finished_at": "2026-11-28T12:00:00+00:00", "error": "disk full"},
    }
    text = troubleshooting_text({**BODY, "ledger": ledger})
    assert "Ledger 2,600.0 MB (WAL 0.0 MB) · keeps payloads 90 d, outcomes 400 d" in text
    assert "oldest outcome 2025-10-24 · call — · full payload 2026-08-30" in text
    assert "last prune failed: disk full" in text
    assert "Ledger" not in troubleshooting_text({**BODY, "ledger": None})

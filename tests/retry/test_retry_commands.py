"""`csignal retry`, `replay`, `flows` and `metrics` as an operator runs them: real processes
talking HTTP to the operator API app (served by the test) over a real store and broker. The app's
operations run on the test's FakeClock, so the fixed dates never meet the real clock."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from stream.control.retry_scheduler import DEFAULT_SCHEDULE
from tests.retry.retry_helpers import OpsApi, RedriveTopic, failed_outcome, record_new_outcomes
from tests.retry.retry_helpers import registration_dict as reg
from tests.support.changes import change_row
from tests.support.clock import FIXED, FakeClock
from tests.support.processes import clean_env, run_csignal


async def csignal(api: OpsApi, *args: str, actor: str = "ana") -> tuple[int, str, str]:
    url = str(api.client.make_url("")).rstrip("/")
    env = clean_env(SIGNAL_API_TOKEN=api.token, SIGNAL_ACTOR=actor)
    return await run_csignal(*args, "--api", url, env=env, within=60)


async def seed(api: OpsApi, clock: FakeClock) -> None:
    ids = ["d0", "d1", "t0"]
    await api.store.archive_changes([change_row(reg(i)) for i in ids])
    records = [failed_outcome(c, "technical" if c.startswith("t") else "data") for c in ids]
    await record_new_outcomes(api.store, records, DEFAULT_SCHEDULE, clock.now)


async def test_retry_list_and_submit(
    ops_api: OpsApi, clock: FakeClock, redrive: RedriveTopic
) -> None:
    await seed(ops_api, clock)
    code, out, err = await csignal(ops_api, "retry", "list", "--category", "data")
    assert code == 0, err
    assert "d0" in out and "d1" in out and "t0" not in out
    assert "2 item(s); page 1 of 1" in err
    code, out, err = await csignal(ops_api, "retry", "list", "--format", "json", "--page-size", "1")
    assert code == 0 and json.loads(out)["total"] == 3 and len(json.loads(out)["items"]) == 1
    code, out, err = await csignal(ops_api, "retry", "submit", "d0/nurture", actor="bo")
    assert code == 0, err
    assert out.startswith("submitted 1;")
    code, out, err = await csignal(
        ops_api, "retry", "submit", "--all-matching", "--category", "data"
    )
    assert code == 0 and "submitted 1;" in out and "1 in flight" in out
    assert len(await redrive.read(2)) == 2
    audit = await ops_api.store.config_audit(kind="retry_queue")
    assert [a.actor for a in audit] == ["ana", "bo"]
    code, _, err = await csignal(ops_api, "retry", "submit", "not-a-key")
    assert code == 2 and "CHANGE_ID/FLOW_ID" in err
    code, _, err = await csignal(ops_api, "retry", "submit")
    assert code == 2


async def test_replay_dry_run_and_real_run(ops_api: OpsApi, redrive: RedriveTopic) -> None:
    rows = [change_row(reg(f"c{i}", occurred_at=FIXED + timedelta(minutes=i))) for i in range(3)]
    await ops_api.store.archive_changes(rows)
    code, out, err = await csignal(ops_api, "replay", "nurture", "--event", "SUMMIT26", "--dry-run")
    assert code == 0, err
    assert "3 change(s) in scope" in out and "would send: 3" in out and "nothing was sent" in out
    assert await redrive.read(settle_s=0.3) == []
    code, out, err = await csignal(
        ops_api,
        "replay",
        "nurture",
        "--from",
        "2026-11-28T00:00:00Z",
        "--to",
        "2026-11-29T00:00:00Z",
        "--no-wait",
    )
    assert code == 0, err
    assert len(await redrive.read(3)) == 3
    replay_id = err.split()[1]
    code, out, err = await csignal(ops_api, "replay", "--status", replay_id)
    assert code == 0, err
    assert f"{replay_id}: published 3, 3 awaiting outcome" in out
    code, _, err = await csignal(ops_api, "replay", "nurture", "--from", "2026-11-28T00:00:00Z")
    assert code == 2 and "both --from and --to" in err
    code, _, err = await csignal(ops_api, "replay", "ghost", "--event", "SUMMIT26")
    assert code == 1 and "ghost" in err


async def test_flows_list_and_switches(ops_api: OpsApi) -> None:
    code, out, err = await csignal(ops_api, "flows")
    assert code == 0, err
    assert "nurture" in out and "sessions" in out
    code, out, err = await csignal(ops_api, "flows", "active", "nurture", "off")
    assert code == 0, err
    assert "nurture: inactive, live" in out
    flow = ops_api.config.account.flow("nurture")
    assert flow is not None and flow.active is False
    code, out, err = await csignal(ops_api, "flows", "mode", "nurture", "test")
    assert code == 0 and "test" in out
    code, _, err = await csignal(ops_api, "flows", "mode", "nurture", "sideways")
    assert code == 2
    code, _, err = await csignal(ops_api, "flows", "active", "ghost", "on")
    assert code == 1 and "ghost" in err


async def test_commands_without_a_control_say_so(tmp_path: Path) -> None:
    env = clean_env(SIGNAL_API_TOKEN="x", SIGNAL_DATA_DIR=str(tmp_path))
    code, _, err = await run_csignal("retry", "list", "--api", "127.0.0.1:9", env=env, within=60)
    assert code == 1
    assert err.startswith("csignal retry:")


def test_metrics_render_as_text() -> None:
    import io

    from stream.commands.metrics import render

    out = io.StringIO()
    render(
        {
            "changes_processed": 12,
            "latency_ms": {"p50": 12.5, "p99": 80.123456},
            "not_triggered": [{"reason": "mode", "count": 3}, {"reason": "source", "count": 1}],
            "active_flows": ["nurture"],
            "processing": {"lag": None, "workers": {"alive": 1}},
        },
        out,
    )
    text = out.getvalue()
    assert "changes processed: 12" in text
    assert "latency ms: p50 12.5, p99 80.12" in text
    assert "reason  count" in text and "mode    3" in text
    assert "active flows: nurture" in text
    assert "processing:\n  lag: -\n  workers: alive 1" in text

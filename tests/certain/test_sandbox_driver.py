"""Simulated traffic performed in the real Certain sandbox over HTTP: every registration ends in
the state the traffic left it in, mass actions are single calls, repeated changes do nothing,
a producer's bad item becomes one malformed record, and a refused call is reported while the
rest go on."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import aiohttp
import pytest

from simulators.certain.sandbox import CertainSandbox
from simulators.certain.sandbox_driver import SandboxOp, SandboxPlanner, drive_paced, perform
from simulators.certain.sandbox_state import SESSION_TRANSITIONS as SANDBOX_MOVES
from simulators.certain.traffic import (
    ACCOUNT_CODE,
    DUPLICATE,
    INACTIVE,
    INVALID,
    MASS_ACTION,
    REG_STATUS,
    SESSION_STATUS,
    SimChange,
    generate,
)
from tests.support.processes import run_csignal

START = datetime(2026, 1, 5, tzinfo=UTC)  # only stamps occurredAt; nothing compares it to now


@pytest.fixture
async def sandbox() -> AsyncIterator[CertainSandbox]:
    async with CertainSandbox(seed=3, per_event=2) as sb:
        yield sb


def all_due_at_once() -> Callable[[], float]:
    """A clock for which the whole schedule is due on the first look: no waiting in tests."""
    ticks = itertools.chain([0.0], itertools.repeat(1e9))
    return lambda: next(ticks)


def expected_state(
    items: list[SimChange],
) -> tuple[dict[tuple[str, str], tuple[str, bool]], dict[tuple[str, str, str], str]]:
    """(event, registration) → (status, active) and (event, registration, session) → status, as
    the traffic leaves them."""
    regs: dict[tuple[str, str], tuple[str, bool]] = {}
    sessions: dict[tuple[str, str, str], str] = {}
    for item in items:
        if not item.valid or DUPLICATE in item.kinds:
            continue
        body = item.body
        reg = body.get("registration")
        if reg is None:
            continue
        key = (body["eventCode"], reg["registrationCode"])
        active = INACTIVE not in item.kinds and regs.get(key, ("", True))[1]
        regs[key] = (reg["registrationStatusLabel"], active)
        if body["type"] == SESSION_STATUS:
            session = body["session"]
            sessions[(*key, session["sessionCode"])] = session["regSessionStatus"]
    return regs, sessions


async def test_traffic_ends_in_the_sandbox_as_it_left_the_registrations(
    sandbox: CertainSandbox,
) -> None:
    items = generate(11, 40.0, 30.0, START)
    kinds = [k for item in items for k in item.kinds]
    assert {MASS_ACTION, DUPLICATE, INVALID, INACTIVE} <= set(kinds), "traffic lacks a kind"
    malformed_before = sandbox.faults.malformed

    result = await drive_paced(items, sandbox.url, account=ACCOUNT_CODE, clock=all_due_at_once())

    assert result.refused == []
    assert result.items == len(items)
    assert result.duplicates == kinds.count(DUPLICATE)
    invalid = kinds.count(INVALID)
    assert result.malformed == invalid
    assert sandbox.faults.malformed == malformed_before + invalid
    regs, sessions = expected_state(items)
    for (event_code, code), (status, active) in regs.items():
        event = sandbox.state.event(ACCOUNT_CODE, event_code)
        assert event is not None, event_code
        reg = event.registrations[code]
        assert (reg.status, reg.is_active) == (status, active), code
    for (event_code, code, session_code), status in sessions.items():
        event = sandbox.state.event(ACCOUNT_CODE, event_code)
        assert event is not None
        assert event.agendas[(code, session_code)].status == status
    assert result.calls < len(items), "mass actions and duplicates need fewer calls than items"


async def test_a_mass_action_is_one_call_with_one_stamp(sandbox: CertainSandbox) -> None:
    items = [i for i in generate(11, 40.0, 30.0, START) if i.valid and DUPLICATE not in i.kinds]
    planner = SandboxPlanner(ACCOUNT_CODE)
    ops, _ = planner.plan(items)
    mass = [op for op in ops if op.path.endswith("/mass")]
    steps = sum(1 for i in items if MASS_ACTION in i.kinds)
    assert mass and sum(op.items for op in mass) == steps
    async with aiohttp.ClientSession() as http:
        result = await perform(http, sandbox.url, ops)
    assert result.refused == []
    first = mass[0].body
    assert first is not None
    event = sandbox.state.event(ACCOUNT_CODE, first["eventCode"])
    assert event is not None
    stamps = {event.registrations[code].date_modified for code in first["codes"]}
    assert len(stamps) == 1


async def test_a_refused_call_is_reported_and_the_rest_go_on(sandbox: CertainSandbox) -> None:
    event = next(iter(sandbox.state.accounts[ACCOUNT_CODE].events.values()))
    code = next(iter(event.registrations))
    path = f"/_sandbox/registrations/{ACCOUNT_CODE}/{event.code}"
    ops = [
        SandboxOp("PATCH", f"{path}/NO-SUCH-REG", {"registrationStatusLabel": "Attended"}),
        SandboxOp("PATCH", f"{path}/{code}", {"registrationStatusLabel": "No Status"}),
        SandboxOp("PATCH", f"{path}/{code}", {"registrationStatusLabel": "Attended"}),
    ]
    async with aiohttp.ClientSession() as http:
        result = await perform(http, sandbox.url, ops)
    assert result.applied == 1 and result.calls == 3
    assert [(where, status) for where, status, _ in result.refused] == [
        (f"PATCH {path}/NO-SUCH-REG", 404),
        (f"PATCH {path}/{code}", 400),
    ]
    assert "NO-SUCH-REG" in result.refused[0][2]
    assert "No Status" in result.refused[1][2]
    assert event.registrations[code].status == "Attended"


def test_the_first_step_for_a_registration_creates_it_and_later_steps_change_it() -> None:
    items = generate(11, 40.0, 30.0, START)
    status_changes = [
        i
        for i in items
        if i.valid and DUPLICATE not in i.kinds and i.body.get("type") == REG_STATUS
    ]
    planner = SandboxPlanner(ACCOUNT_CODE)
    ops, _ = planner.plan(items)
    created = [op for op in ops if op.method == "POST" and op.path == "/_sandbox/registrations"]
    patched = [op for op in ops if op.method == "PATCH"]
    codes = [op.body["registrationCode"] for op in created if op.body is not None]
    assert len(codes) == len(set(codes)), "a registration was created twice"
    assert status_changes and patched
    again, _ = SandboxPlanner(ACCOUNT_CODE).plan(items)
    assert again == ops, "planning is not repeatable"


@pytest.mark.parametrize("seed", [1, 2, 3, 11, 42])
def test_traffic_moves_sessions_only_as_certain_allows(seed: int) -> None:
    """Attended and No Show are final (reference §2.8): the traffic never moves out of them."""
    state: dict[tuple[str, str, str], str | None] = {}
    for item in generate(seed, 40.0, 60.0, START):
        if not item.valid or DUPLICATE in item.kinds or item.body["type"] != SESSION_STATUS:
            continue
        session = item.body["session"]
        key = (item.body["eventCode"], item.body["registration"]["registrationCode"])
        where = (*key, session["sessionCode"])
        before, after = state.get(where), session["regSessionStatus"]
        assert session["previousRegSessionStatus"] == before
        allowed = {"Registered", "Waitlisted"} if before is None else SANDBOX_MOVES[before]
        assert after in allowed, f"{where}: {before} -> {after}"
        state[where] = after


async def test_csignal_simulate_performs_the_traffic_in_a_certain_sandbox(
    sandbox: CertainSandbox,
) -> None:
    before = sum(len(e.registrations) for e in sandbox.state.accounts[ACCOUNT_CODE].events.values())
    code, out, err = await run_csignal(
        "simulate",
        "--certain-sandbox",
        sandbox.url,
        *("--rate", "30", "--duration", "2", "--seed", "5", "--start", "2026-01-05T00:00:00Z"),
        within=120,
    )
    assert code == 0, err
    items = generate(5, 30.0, 2.0, START)
    new = {
        item.body["registration"]["registrationCode"]
        for item in items
        if item.valid and item.body.get("registration")
    }
    after = sum(len(e.registrations) for e in sandbox.state.accounts[ACCOUNT_CODE].events.values())
    assert after == before + len(new)
    assert f"{len(items)} steps in" in out and ", 0 refused" in out


@pytest.mark.parametrize(
    ("url", "exit_code", "message"),
    [
        ("ftp://127.0.0.1/", 2, "--certain-sandbox is 'ftp://127.0.0.1/': expected an http(s) URL"),
        ("http://127.0.0.1:9", 1, "Certain sandbox at http://127.0.0.1:9:"),
    ],
)
async def test_csignal_simulate_names_a_bad_or_unreachable_sandbox(
    url: str, exit_code: int, message: str
) -> None:
    code, _, err = await run_csignal(
        "simulate", "--certain-sandbox", url, "--rate", "5", "--duration", "1", "--seed", "1"
    )
    assert code == exit_code
    assert message in err
    assert "Traceback" not in err

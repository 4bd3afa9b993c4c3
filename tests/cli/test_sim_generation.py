"""The simulator: repeatable by seed, realistic coverage, and bad data that is bad on purpose."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from config.completeness import completeness
from config.models import Account
from config.validation import validate_account
from config.yamlio import load_text
from simulators.certain import traffic as sim
from simulators.certain import traffic_world as world
from simulators.certain.demo_account import SECRET_ENV, demo_account_yaml
from stream.certain.parsing import Rejection, parse_change
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate_all
from stream.core.results import DataFailure, Mapped

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def run60() -> list[sim.SimChange]:
    return sim.generate(seed=42, rate=20, duration=60, start=START)


def test_same_seed_same_changes() -> None:
    first = sim.generate(7, 20, 30, START)
    second = sim.generate(7, 20, 30, START)
    assert [i.body for i in first] == [i.body for i in second]
    assert [i.kinds for i in first] == [i.kinds for i in second]


def test_other_seed_other_changes() -> None:
    first = {i.change_id for i in sim.generate(7, 20, 10, START)}
    second = {i.change_id for i in sim.generate(8, 20, 10, START)}
    assert not (first - {None}) & (second - {None})


def test_change_ids_derive_from_the_seed() -> None:
    items = sim.generate(5, 10, 3, START)
    assert items[0].change_id == sim.change_id(5, 0)
    assert items[3].change_id == sim.change_id(5, 3)


def test_count_and_pacing() -> None:
    items = sim.generate(1, 20, 60, START)
    assert len(items) == 1200
    offsets = [i.offset for i in items]
    assert offsets == sorted(offsets)
    assert offsets[-1] < 60
    assert sim.generate(1, 20, 0, START) == []


def test_invalid_rate_refused() -> None:
    with pytest.raises(ValueError):
        sim.generate(1, 0, 10)


def test_every_source_live_and_test_present(run60: list[sim.SimChange]) -> None:
    seen = {
        (item.body["type"], sim.TEST in item.kinds)
        for item in run60
        if item.valid and isinstance(item.body, dict)
    }
    for source in sim.SOURCES:
        assert (source, False) in seen, source
        assert (source, True) in seen, source


def test_bad_data_and_special_kinds_present(run60: list[sim.SimChange]) -> None:
    kinds = Counter(k for item in run60 for k in item.kinds)
    for kind in (
        sim.INVALID,
        sim.MISSING_EMAIL,
        sim.INVALID_EMAIL,
        sim.UNTAGGED_STATUS,
        sim.DUPLICATE,
        sim.MASS_ACTION,
        sim.INACTIVE,
        sim.TEST_EVENT,
    ):
        assert kinds[kind] > 0, kind
    assert kinds[sim.INVALID] < len(run60) * 0.05


def test_short_run_still_covers_every_bad_kind() -> None:
    items = sim.generate(3, 10, 4, START)
    kinds = {k for item in items for k in item.kinds}
    assert set(sim.BAD_KINDS) <= kinds


def test_good_items_parse_and_invalid_ones_are_rejected(run60: list[sim.SimChange]) -> None:
    for position, item in enumerate(run60):
        result = parse_change(item.body, position)
        if item.valid:
            assert not isinstance(result, Rejection), (item.kinds, result)
        else:
            assert isinstance(result, Rejection), item.body
            assert result.reason


def test_duplicates_repeat_an_earlier_change(run60: list[sim.SimChange]) -> None:
    earlier: dict[str, object] = {}
    for item in run60:
        if sim.DUPLICATE in item.kinds:
            assert item.change_id in earlier
            assert earlier[item.change_id] == item.body
        elif item.change_id is not None and item.valid:
            earlier[item.change_id] = item.body


def test_events_are_announced_first(run60: list[sim.SimChange]) -> None:
    codes = [item.body["eventCode"] for item in run60[: len(world.EVENTS)]]
    assert codes == [e.code for e in world.EVENTS]
    assert all(item.body["type"] == sim.EVENT_CREATE for item in run60[: len(world.EVENTS)])


def test_status_moves_follow_certain(run60: list[sim.SimChange]) -> None:
    for item in run60:
        body = item.body
        if item.valid and isinstance(body, dict) and body["type"] == sim.REG_STATUS:
            registration = body["registration"]
            previous = registration.get("previousStatusLabel")
            if previous is not None and sim.DUPLICATE not in item.kinds:
                allowed = [to for to, _ in world.TRANSITIONS[previous]]
                assert registration["registrationStatusLabel"] in allowed


def _demo_account() -> Account:
    loaded = load_text(demo_account_yaml("http://127.0.0.1:9"), env={SECRET_ENV: "s3cret"})
    assert loaded.problems == []
    assert loaded.account is not None
    return loaded.account


def test_demo_account_valid_and_every_flow_complete() -> None:
    account = _demo_account()
    assert validate_account(account) == []
    flows = account.flows
    assert {f.destination.action and f.destination.action.value for f in flows} == {
        "create_update_lead",
        "trigger_campaign",
        "form_post",
        "update_program_status",
    }
    assert {f.mode.value for f in flows} == {"live", "test"}
    for flow in flows:
        assert completeness(flow, account) == [], flow.id


def test_demo_account_export_keeps_secret_as_reference() -> None:
    text = demo_account_yaml("http://127.0.0.1:9")
    assert "${" + SECRET_ENV + "}" in text
    assert "s3cret" not in text


def test_demo_traffic_exercises_every_flow_and_failure(run60: list[sim.SimChange]) -> None:
    """Against the demo account, the simulator makes every flow deliver and every failure kind
    appear, so a newcomer sees the whole range of outcomes."""
    account = _demo_account()
    catalog = EventCatalog()
    mapped: Counter[str] = Counter()
    failures: set[str] = set()
    statuses: set[str] = set()
    for item in run60:
        change = parse_change(item.body)
        if isinstance(change, Rejection):
            continue
        catalog = catalog.apply(change)
        for flow, result in evaluate_all(change, account, catalog):
            statuses.add(result.status)
            if isinstance(result, Mapped):
                mapped[flow.id] += 1
            if isinstance(result, DataFailure):
                failures.add(result.field)
    assert set(mapped) == {f.id for f in account.flows}
    assert {"email", "registration.registrationStatusLabel"} <= failures
    assert statuses == {"mapped", "not_activated", "filtered_out", "data_failure"}

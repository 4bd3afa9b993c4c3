"""Session changes as the Certain source makes them, from records as the Certain sandbox serves
them, meet the session flows of the demo account and of the specification's example account:
a VIP who attends a session triggers the campaign with the session's name as a token; other
attendee types are filtered out; a session booking activates nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest

from config.models import Account, Flow
from simulators.certain.demo_account import demo_account
from simulators.certain.sandbox import CertainSandbox
from simulators.certain.sandbox_changes import create_registration, set_session_status
from simulators.certain.sandbox_seed import DEFAULT_ACCOUNT
from stream.certain.events import ChangeEvent
from stream.certain.poll_diff import LastSeen, RecordDiff, diff_event, diff_registration
from stream.certain.session_diff import (
    SessionDiff,
    SessionRecord,
    diff_session_registration,
    read_session_registration,
)
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate
from stream.core.results import DataFailure, FilteredOut, Mapped, NotActivated
from tests.support.accounts import example_account

INCLUDE = frozenset({"registration_questions", "reg_properties", "tags"})
EVENT = "SUMMIT26"


def accounts() -> list[tuple[Account, str, type]]:
    """Each account, its session flow, and what a session booking amounts to there: the demo
    account tags `Registered` (no flow activates), the example account leaves it untagged (a
    data failure naming the status, as for any untagged item)."""
    demo = Account.model_validate(demo_account("http://127.0.0.1:1"))
    return [
        (demo, "vip-session-attended", NotActivated),
        (example_account(), "vip-attended", DataFailure),
    ]


class Certain:
    """The sandbox's records, read the way the poller reads them (no HTTP: the records are the
    ones its endpoints serve)."""

    def __init__(self) -> None:
        self.sandbox = CertainSandbox(per_event=0)
        event = self.sandbox.state.event(DEFAULT_ACCOUNT, EVENT)
        assert event is not None
        self.event = event
        self.rng = random.Random(7)
        self.seen: dict[tuple[str, str], LastSeen] = {}

    def catalog(self) -> EventCatalog:
        result = diff_event(DEFAULT_ACCOUNT, self.event.as_json(INCLUDE, detail=True), None)
        assert isinstance(result, RecordDiff)
        return EventCatalog().apply_all(result.changes)

    def register(self, attendee_type: str) -> dict[str, Any]:
        reg = create_registration(
            self.sandbox.state, self.event, {"attendeeTypeCode": attendee_type}, self.rng
        )
        result = diff_registration(DEFAULT_ACCOUNT, EVENT, reg.as_json(INCLUDE), None)
        assert isinstance(result, RecordDiff) and result.body is not None
        return result.body

    def move(self, registration: dict[str, Any], session: str, status: str) -> list[ChangeEvent]:
        code = registration["registrationCode"]
        agenda = set_session_status(self.sandbox.state, self.event, code, session, status)
        record = read_session_registration(agenda.as_json(EVENT))
        assert isinstance(record, SessionRecord)
        listed = self.event.sessions[session].as_json(EVENT)
        key = (code, session)
        result = diff_session_registration(
            DEFAULT_ACCOUNT, EVENT, record, self.seen.get(key), registration, listed
        )
        assert isinstance(result, SessionDiff)
        self.seen[key] = record.seen
        return result.changes


def flow_of(account: Account, flow_id: str) -> Flow:
    flow = account.flow(flow_id)
    assert flow is not None, flow_id
    return flow


@pytest.mark.parametrize(("account", "flow_id", "booking"), accounts())
def test_a_vip_attending_a_session_triggers_the_campaign_with_the_session_name(
    account: Account, flow_id: str, booking: type
) -> None:
    certain = Certain()
    vip = certain.register("VIP")
    flow = flow_of(account, flow_id)
    [booked] = certain.move(vip, "KEYNOTE", "Registered")
    assert isinstance(evaluate(booked, flow, account, certain.catalog()), booking)
    [attended] = certain.move(vip, "KEYNOTE", "Attended")
    assert attended.session is not None
    assert attended.session.previous_reg_session_status == "Registered"
    result = evaluate(attended, flow, account, certain.catalog())
    assert isinstance(result, Mapped), result
    assert result.tokens == {"{{my.session}}": "Opening keynote"}
    assert result.payload["email"] == vip["profile"]["email"].lower()
    assert result.campaign_id is not None


@pytest.mark.parametrize(("account", "flow_id", "booking"), accounts())
def test_an_attendee_who_is_not_a_vip_is_filtered_out(
    account: Account, flow_id: str, booking: type
) -> None:
    certain = Certain()
    attendee = certain.register("Attendee")
    certain.move(attendee, "KEYNOTE", "Registered")
    [attended] = certain.move(attendee, "KEYNOTE", "Attended")
    result = evaluate(attended, flow_of(account, flow_id), account, certain.catalog())
    assert isinstance(result, FilteredOut), result

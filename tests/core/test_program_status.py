"""evaluate() for update_program_status: the program (flow or event question), the status from
the change's status tags, and every way it cannot give one."""

from __future__ import annotations

from typing import Any

from config.models import Action, ActivateFor, Flow, ProgramRule, Source
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate
from stream.core.results import DataFailure, Mapped, NotActivated
from tests.support.accounts import example_account
from tests.support.changes import catalog, event_change, registration_change

ACCOUNT = example_account()
STATUSES = {"registered": "Registered", "attended": "Attended"}


def program_flow(
    source: Source = Source.REGISTRATION_STATUS_CHANGE,
    activate: ActivateFor | None = None,
    **rule: Any,
) -> Flow:
    base = ACCOUNT.flow("registered-to-nurture")
    assert base is not None
    destination = base.destination.model_copy(
        update={
            "action": Action.UPDATE_PROGRAM_STATUS,
            "campaign": None,
            "program": ProgramRule(**{"program_id": 1044, "statuses": STATUSES, **rule}),
        }
    )
    return base.model_copy(
        update={
            "source": source,
            "filters": [],
            "activate_for": activate
            or ActivateFor(registration_statuses=["registered", "attended"]),
            "destination": destination,
        }
    )


def run(change: ChangeEvent, flow: Flow, cat: EventCatalog | None = None) -> Any:
    return evaluate(change, flow, ACCOUNT, cat if cat is not None else catalog())


def test_each_status_gets_its_program_status() -> None:
    flow = program_flow()
    registered = run(registration_change(status="New"), flow)
    attended = run(registration_change(status="Attended"), flow)
    assert isinstance(registered, Mapped) and isinstance(attended, Mapped)
    assert (registered.program_id, registered.program_status) == (1044, "Registered")
    assert attended.program_status == "Attended"
    assert registered.action is Action.UPDATE_PROGRAM_STATUS
    assert registered.campaign_id is None and registered.payload["email"]
    assert registered.reason == "update_program_status → program 1044: Registered"
    shown = registered.to_dict()
    assert (shown["program_id"], shown["program_status"]) == (1044, "Registered")


def test_the_event_question_overrides_the_program_id() -> None:
    flow = program_flow(event_question="marketoProgram")
    cat = catalog(event_change(questions={"marketoProgram": "2044"}))
    result = run(registration_change(status="New"), flow, cat)
    assert isinstance(result, Mapped) and result.program_id == 2044
    blank = run(registration_change(status="New"), flow, catalog(event_change(questions={})))
    assert isinstance(blank, Mapped) and blank.program_id == 1044


def test_a_question_that_is_not_a_program_id_is_a_data_failure() -> None:
    flow = program_flow(event_question="marketoProgram")
    cat = catalog(event_change(questions={"marketoProgram": "webinar"}))
    result = run(registration_change(status="New"), flow, cat)
    assert isinstance(result, DataFailure)
    assert result.field == "eventQuestions.marketoProgram"
    assert "'webinar'" in result.reason and "program id" in result.reason


def test_no_program_at_all_is_a_data_failure() -> None:
    flow = program_flow(program_id=None, event_question="marketoProgram")
    result = run(registration_change(status="New"), flow, catalog(event_change(questions={})))
    assert isinstance(result, DataFailure) and result.field == "program_id"
    assert "no value for question 'marketoProgram'" in result.reason


def test_a_status_the_map_lacks_is_a_data_failure_naming_status_and_tags() -> None:
    activate = ActivateFor(registration_statuses=["registered", "cancelled"])
    result = run(registration_change(status="Cancelled"), program_flow(activate=activate))
    assert isinstance(result, DataFailure)
    assert result.field == "destination.program.statuses"
    assert "registration status 'Cancelled' (tags: cancelled)" in result.reason
    assert "it maps: registered, attended" in result.reason


def test_session_flows_take_the_session_status() -> None:
    flow = program_flow(
        source=Source.SESSION_REGISTRATION_STATUS_CHANGE,
        activate=ActivateFor(session_registration_statuses=["attended"]),
        statuses={"attended": "Attended"},
    )
    change = registration_change(
        change_type="session_registration.status_change", session_status="Attended"
    )
    result = run(change, flow)
    assert isinstance(result, Mapped) and result.program_status == "Attended"


def test_test_registrations_stay_out_of_live_program_flows() -> None:
    result = run(registration_change(status="New", is_test=True), program_flow())
    assert isinstance(result, NotActivated)


def test_an_empty_lookup_field_is_a_data_failure() -> None:
    result = run(registration_change(status="New", email=None), program_flow())
    assert isinstance(result, DataFailure)

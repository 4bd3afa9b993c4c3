"""The planned evaluation of every flow (`stream.core.plan`) gives exactly the outcomes of the
flow-by-flow evaluation it replaced (`tests.core.reference_evaluation`), field by field, for
generated changes against generated variants of the example and demo accounts: flows copied,
moved between modes and sources, activate-for tags redrawn (in other spellings too), filters
added, some made inactive or incomplete."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from config.models import Account, ActivateFor, Flow, Mode, Source, StandardProperty
from simulators.certain.demo_account import demo_account
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate_all, evaluate_all_shared
from stream.core.plan import forget_plan, plan_for
from stream.core.results import Evaluation, NotActivated
from tests.core.reference_evaluation import reference_evaluate_all
from tests.core.test_properties import catalogs, changes, filters
from tests.support.accounts import example_account
from tests.support.changes import SUMMIT_SETUP, event_body
from tests.support.examples import examples

SETTINGS = settings(
    max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck)
)


def _with_secrets(account: Account) -> Account:
    for connection in account.connections:
        connection.client_secret = SecretStr("secret")
    return account


BASES = {
    "example": _with_secrets(example_account()),
    "demo": _with_secrets(Account.model_validate(demo_account("http://127.0.0.1:1"))),
}


def _spellings(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.upper(), name.lower()])


@st.composite
def activate_fors(draw: st.DrawFn, account: Account) -> ActivateFor:
    names = [t.name for t in account.tags] + ["nothing-like-it"]
    pick = st.lists(st.sampled_from(names).flatmap(_spellings), max_size=3)
    return ActivateFor(
        registration_statuses=draw(pick),
        custom_registration_properties=draw(pick),
        standard_properties=draw(st.lists(st.sampled_from(list(StandardProperty)), max_size=2)),
        session_registration_statuses=draw(pick),
        event_statuses=draw(pick),
    )


@st.composite
def accounts(draw: st.DrawFn) -> Account:
    base = BASES[draw(st.sampled_from(sorted(BASES)))]
    flows: list[Flow] = []
    for flow in base.flows:
        for copy in range(draw(st.integers(1, 3))):
            update: dict[str, Any] = {
                "id": f"{flow.id}-{copy}",
                "mode": draw(st.sampled_from(list(Mode))),
                "active": draw(st.sampled_from([True, True, True, False])),
            }
            if draw(st.integers(0, 3)) == 0:
                update["activate_for"] = draw(activate_fors(base))
            if draw(st.integers(0, 5)) == 0:
                update["source"] = draw(st.sampled_from(list(Source)))
            if draw(st.booleans()):
                update["filters"] = [*flow.filters, *draw(st.lists(filters, max_size=2))]
            flows.append(flow.model_copy(deep=True, update=update))
    flows = draw(st.permutations(flows))
    data = base.model_dump(mode="json", by_alias=True, exclude={"flows"})
    data["flows"] = [f.model_dump(mode="json", by_alias=True) for f in flows]
    try:
        account = Account.model_validate(data)
    except ValidationError:
        assume(False)
        raise
    return _with_secrets(account)


@st.composite
def changes_for(draw: st.DrawFn, account: Account) -> ChangeEvent:
    change = draw(changes())
    code = draw(st.sampled_from([account.account, account.account, "OTHER"]))
    return change.model_copy(update={"account_code": code})


def _fields(pairs: list[tuple[Flow, Evaluation]]) -> list[tuple[str, str, str, str]]:
    """Every field of every outcome, as text (NaN answers compare equal as text)."""
    return [
        (
            flow.id,
            type(evaluation).__name__,
            evaluation.reason,
            json.dumps(evaluation.to_dict(), sort_keys=True, default=repr),
        )
        for flow, evaluation in pairs
    ]


def _same(change: ChangeEvent, account: Account, catalog: EventCatalog, **runnable: Any) -> int:
    planned = evaluate_all(change, account, catalog, **runnable)
    reference = reference_evaluate_all(change, account, catalog, **runnable)
    assert [f for f, _ in planned] == [f for f, _ in reference]
    assert _fields(planned) == _fields(reference)
    return len(planned)


@SETTINGS
@given(data=st.data(), catalog=catalogs())
def test_planned_outcomes_equal_the_flow_by_flow_ones(
    data: st.DataObject, catalog: EventCatalog
) -> None:
    account = data.draw(accounts())
    for change in data.draw(st.lists(changes_for(account), min_size=1, max_size=4)):
        _same(change, account, catalog)
        _same(change, account, catalog, is_runnable=lambda _: True)


def _flattened(change: ChangeEvent, account: Account, catalog: EventCatalog) -> int:
    """`evaluate_all_shared` gives every runnable flow exactly one outcome, the reference's, and
    looks at flows one by one only where the outcome can depend on the flow."""
    evaluated = evaluate_all_shared(change, account, catalog)
    flows = evaluated.plan.flows
    given: dict[int, Evaluation] = {}
    for position, evaluation in evaluated.single:
        assert position not in given
        given[position] = evaluation
    for evaluation, positions in evaluated.shared:
        assert positions
        for position in positions:
            assert position not in given
            given[position] = evaluation
    assert sorted(given) == list(range(len(flows)))
    reference = reference_evaluate_all(change, account, catalog)
    assert [f.id for f in flows] == [f.id for f, _ in reference]
    assert _fields([(flows[p], given[p]) for p in range(len(flows))]) == _fields(reference)
    return len(evaluated.single)


@SETTINGS
@given(data=st.data(), catalog=catalogs())
def test_shared_outcomes_cover_every_flow_once_with_the_reference_outcome(
    data: st.DataObject, catalog: EventCatalog
) -> None:
    account = data.draw(accounts())
    for change in data.draw(st.lists(changes_for(account), min_size=1, max_size=4)):
        _flattened(change, account, catalog)


@pytest.mark.parametrize("name", sorted(BASES))
@SETTINGS
@given(data=st.data(), catalog=catalogs())
def test_the_accounts_as_shipped_evaluate_alike(
    name: str, data: st.DataObject, catalog: EventCatalog
) -> None:
    account = BASES[name]
    change = data.draw(changes_for(account))
    assert _same(change, account, catalog) == len([f for f in account.flows if f.active])


def test_flows_that_cannot_match_share_the_not_activated_outcome() -> None:
    """The not-activated reason lists the tags found, rebuilt once per change for every flow
    whose activate-for tags are not among them."""
    account = BASES["example"].model_copy(deep=True)
    account.flows = [
        flow.model_copy(deep=True, update={"id": f"{flow.id}-{i}"})
        for i in range(5)
        for flow in account.flows
    ]
    change = ChangeEvent.model_validate(
        {
            "changeId": "c-1",
            "type": "registration.status_change",
            "accountCode": account.account,
            "eventCode": "SUMMIT26",
            "occurredAt": "2026-11-28T12:00:00+01:00",
            "registration": {"registrationCode": "R1", "registrationStatusLabel": "Cancelled"},
        }
    )
    catalog = EventCatalog().apply(
        ChangeEvent.model_validate(
            {
                "changeId": "e-1",
                "type": "event.create_update",
                "accountCode": account.account,
                "eventCode": "SUMMIT26",
                "occurredAt": "2026-11-01T00:00:00Z",
                "event": event_body(setup=SUMMIT_SETUP),
            }
        )
    )
    planned = evaluate_all(change, account, catalog)
    assert _fields(planned) == _fields(reference_evaluate_all(change, account, catalog))
    tagged = [e for _, e in planned if isinstance(e, NotActivated) and e.tags_found]
    assert tagged and "found" in tagged[0].reason
    assert len({id(e) for e in tagged}) == 1
    # Given once for all of them: only flows selecting a found tag are looked at one by one.
    looked_at = _flattened(change, account, catalog)
    assert looked_at < len(account.flows) // 2
    shared = evaluate_all_shared(change, account, catalog).shared
    (unmatched,) = [p for e, p in shared if isinstance(e, NotActivated) and e.tags_found]
    assert len(unmatched) == len(tagged)


def test_the_plan_is_kept_per_account_object_until_its_flows_change() -> None:
    account = BASES["example"].model_copy(deep=True)
    first = plan_for(account)
    assert plan_for(account) is first
    assert plan_for(account.model_copy(deep=True)) is not first
    account.flows = [*account.flows]
    second = plan_for(account)
    assert second is not first
    account.flows[0].active = not account.flows[0].active
    assert plan_for(account) is second  # an edit in place is not seen ...
    forget_plan(account)
    assert plan_for(account) is not second  # ... until the plan is forgotten

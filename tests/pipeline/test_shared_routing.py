"""The route step publishes one `not_activated` record per outcome that several flows share
(`OutcomeRecord.also`), not one per flow: its pairs are exactly the records each flow gets on
its own, its records on the topic do not grow with the flows that cannot match, and a batch
cut short anywhere holds every pair of a shared record or none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config.models import Account, Flow
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.messages import OutcomeRecord, OutcomeStatus
from stream.pipeline.records import route_records
from stream.pipeline.route import Routed, route_change
from stream.topics import OUTCOMES
from tests.pipeline.pipeline_support import account, catalog_with, event_json, registration_json

NOW = datetime(2026, 11, 28, 12, 0, 5, tzinfo=UTC)
RECEIVED = NOW - timedelta(milliseconds=250)
CATALOG: EventCatalog = catalog_with(event_json())
ACTIVATE_FOR_LISTS = (
    "registration_statuses",
    "custom_registration_properties",
    "session_registration_statuses",
    "event_statuses",
)


def many_flows(count: int) -> Account:
    """The pipeline account's flows, active, then copies selecting tags no change carries, some
    in the other mode: only the first three can match a change."""
    base = account()
    made: list[Flow] = []
    for i in range(count):
        model = base.flows[i % len(base.flows)]
        update: dict[str, object] = {"id": f"{model.id}-{i}", "name": f"{model.name} {i}"}
        update["active"] = True
        flow = model.model_copy(deep=True, update=update)
        if i >= len(base.flows):
            wanted = flow.activate_for
            for name in ACTIVATE_FOR_LISTS:
                if getattr(wanted, name):
                    setattr(wanted, name, [f"other-{i}"])
            if wanted.standard_properties:
                wanted.standard_properties = []
                wanted.registration_statuses = [f"other-{i}"]
        made.append(flow)
    return base.model_copy(update={"flows": made})


def alone(account_: Account, flow: Flow) -> Account:
    return account_.model_copy(update={"flows": [flow]})


UNTAGGED = registration_json(4, status="Mystery")
"""A status no tag is assigned to: every flow of its source reads its own filters (a filter
that holds makes it a data failure), so these outcomes stay one per flow."""


CHANGES = [
    registration_json(1),  # registered, US: the nurture flow delivers
    registration_json(2, country="FR"),  # filtered out
    registration_json(3, status="Cancelled"),
    UNTAGGED,
    registration_json(5, event_code="NOPE26"),  # an event the catalog does not know
    {**registration_json(6), "accountCode": "OTHER"},
    registration_json(7, kind="session_registration.status_change"),
    registration_json(8, kind="registration.create_update"),
]


def _change(data: dict[str, object]) -> ChangeEvent:
    return ChangeEvent.model_validate(data)


def _route(change: ChangeEvent, account_: Account) -> Routed:
    return route_change(change, account_, CATALOG, now=NOW, received_at=RECEIVED)


def _key(o: OutcomeRecord) -> str:
    return o.flow_id


@pytest.mark.parametrize("data", CHANGES, ids=lambda d: str(d["changeId"]))
def test_shared_records_are_each_flows_own_record(data: dict[str, object]) -> None:
    change = _change(data)
    account_ = many_flows(40)
    routed = _route(change, account_)
    each = Routed()
    for flow in account_.flows:
        each.extend(_route(change, alone(account_, flow)))
    assert sorted(routed.outcomes, key=_key) == sorted(each.outcomes, key=_key)
    assert routed.deliveries == each.deliveries
    assert routed.pairs() == len(each.outcomes)
    assert all(r.status is OutcomeStatus.NOT_ACTIVATED for r in routed.records if r.also)


@pytest.mark.parametrize(
    "data", [d for d in CHANGES if d is not UNTAGGED], ids=lambda d: str(d["changeId"])
)
def test_records_do_not_grow_with_flows_that_cannot_match(data: dict[str, object]) -> None:
    change = _change(data)
    few, many = _route(change, many_flows(3)), _route(change, many_flows(100))
    assert many.pairs() + len(many.deliveries) == 100
    assert len(many.records) <= len(few.records) + 2  # the copies' own shared outcomes
    assert len(route_records(many)) <= len(route_records(few)) + 2


def test_a_batch_cut_anywhere_holds_all_of_a_shared_record_or_nothing() -> None:
    """What control can hold of a change after a crash is a prefix of its records: each
    shared record is one of them, so a prefix never holds part of its flows; the queued
    records still come first."""
    routed = Routed()
    for data in CHANGES:
        routed.extend(_route(_change(data), many_flows(100)))
    records = [v for t, _, v in route_records(routed) if t == OUTCOMES.name]
    assert all(isinstance(v, OutcomeRecord) for v in records)
    outcomes = [v for v in records if isinstance(v, OutcomeRecord)]
    statuses = [o.status for o in outcomes]
    queued = statuses.count(OutcomeStatus.QUEUED)
    assert queued and set(statuses[:queued]) == {OutcomeStatus.QUEUED}
    for cut in range(len(outcomes) + 1):
        held = [pair for o in outcomes[:cut] for pair in o.pairs()]
        by_change: dict[str, set[str]] = {}
        for pair in held:
            by_change.setdefault(pair.change_id, set()).add(pair.flow_id)
        for o in outcomes[:cut]:
            assert {o.flow_id, *(f[0] for f in o.shared())} <= by_change[o.change_id]
    wire = [OutcomeRecord.loads(o.dumps()) for o in outcomes]
    assert wire == outcomes


def test_a_shared_record_is_written_as_its_whole_json() -> None:
    """`OutcomeRecord.dumps` writes the `also` list once per list: the bytes are those of
    the whole record, for the route's lists, copies of them and changed copies alike."""
    account_ = many_flows(100)
    records = [r for data in CHANGES for r in _route(_change(data), account_).records]
    shared = [r for r in records if r.also]
    assert len(shared) >= len(CHANGES)
    for record in records:
        assert record.dumps() == record.model_dump_json().encode()
        again = OutcomeRecord.model_validate(record.model_dump())
        assert again.also is not record.also or not record.also
        assert again.dumps() == record.dumps()
    renamed = [
        g.model_copy(update={"flows": [(i, f'é "{n}"') for i, n in g.flows]})
        for g in shared[0].also
    ]
    changed = shared[0].model_copy(update={"also": renamed})
    assert changed.dumps() == changed.model_dump_json().encode() != shared[0].dumps()

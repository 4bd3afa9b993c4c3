"""The route stage reads a plain record in one step (`records._plain_change`: validation from
the JSON text) and everything else the full way (decode, shape check, `parse_change`). Whatever
way a record goes, it must read exactly as the full way reads it: the same change, or the same
rejection. Hypothesis mutates valid changes (a field replaced by any JSON value, removed, or an
unknown one added, nesting, surrogate escapes) and compares both readings."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.certain.events import ChangeEvent
from stream.certain.parsing import MAX_DEPTH, MAX_VALUES, Rejection, parse_change
from stream.pipeline.records import _plain_change, parse_record
from tests.support.changes import event_json, registration_json
from tests.support.examples import examples

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["", " ", "New", "2026-11-01T08:00:00Z", "2026-11-01T08:00:00", "12", "1.5", "true"]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _bases() -> list[dict[str, Any]]:
    session = {"sessionCode": "S1", "sessionName": "Keynote", "regSessionStatus": "Attended"}
    return [
        registration_json("p-1"),
        registration_json("p-2", "registration.create_update", status="Need photo"),
        registration_json("p-3", "session_registration.status_change", session=session),
        event_json(),
    ]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in items:
        found.append((*prefix, key))
        if isinstance(child, dict | list) and child:
            found.extend(_paths(child, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    change: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(_bases()))))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(_paths(change)))
        parent = change
        for key in path[:-1]:
            parent = parent[key]
        how = draw(st.sampled_from(["replace", "remove", "add"]))
        if how == "replace":
            parent[path[-1]] = draw(json_values)
        elif how == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
    return change


def full_reading(raw: bytes) -> ChangeEvent | Rejection:
    """The full way: decode, then `parse_change` (shape, type, validation)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        return Rejection(None, "", f"not JSON: {error}", None)
    return parse_change(data)


def assert_same_reading(raw: bytes) -> None:
    expected = full_reading(raw)
    got = parse_record(raw, False)
    if isinstance(expected, Rejection):
        assert isinstance(got, Rejection), got
        assert (got.path, got.reason) == (expected.path, expected.reason)
        return
    assert not isinstance(got, Rejection), got
    change, why = got
    assert why is None
    assert change == expected
    assert change.to_json_dict() == expected.to_json_dict()


@settings(max_examples=examples(400), deadline=None)
@given(change=mutated())
def test_any_change_reads_as_the_full_reading_reads_it(change: dict[str, Any]) -> None:
    assert_same_reading(json.dumps(change).encode())
    assert_same_reading(json.dumps(change, ensure_ascii=False).encode())


def test_a_plain_change_is_read_in_one_step() -> None:
    """The comparison above covers the one-step reading: plain records take it."""
    for change in _bases():
        raw = json.dumps(change, ensure_ascii=False).encode()
        assert _plain_change(raw) == full_reading(raw)


def test_records_the_one_step_reading_cannot_vouch_for_go_the_full_way() -> None:
    lone = registration_json("s-1")
    lone["registration"]["profile"]["firstName"] = "A\ud800"
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    nested = registration_json("d-1", extra={"deep": deep})
    crowded = registration_json("v-1", extra={"many": [1] * MAX_VALUES})
    for change in (lone, nested, crowded):
        raw = json.dumps(change).encode()
        assert _plain_change(raw) is None
        rejected = parse_record(raw, False)
        assert isinstance(rejected, Rejection)
        expected = full_reading(raw)
        assert isinstance(expected, Rejection)
        assert (rejected.path, rejected.reason) == (expected.path, expected.reason)
    for broken in (b"", b"{", b"[]", b'"x"', b"\xff{}", b'{"changeId": NaN}'):
        assert_same_reading(broken)

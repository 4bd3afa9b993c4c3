"""Fuzzing `POST /api/v1/changes` on a real control process: batches (JSON arrays and NDJSON)
mixing valid change events with hostile items — random JSON, text that is not JSON, nesting
thousands of levels deep, lone surrogates, changes over the broker's message limit. The valid
items are always accepted, every bad one is rejected by its position and recorded in
`rejected_changes`, and nothing ever answers 500."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.fuzz_support import call, fuzz, sql_scalar
from tests.support.changes import registration_json
from tests.support.processes import ControlProcess

pytestmark = pytest.mark.integration

_ids = itertools.count()


def _fresh_id() -> str:
    return f"fz-{next(_ids)}-{id(_ids):x}"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["\ud800", "\udc80x", "a\x00b", "\u2028", "\ufeff"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["changeId", "type"]), children, max_size=4
        )
    ),
    max_leaves=16,
)

not_json = st.text(
    alphabet=st.characters(blacklist_characters='"[]{},\n', blacklist_categories=["Cs"]),
    min_size=1,
    max_size=20,
).filter(lambda t: t.strip() != "" and not _is_json(t))
"""Text that is not JSON and holds no string or bracket, so an array's items stay apart."""


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _valid() -> dict[str, Any]:
    return registration_json(_fresh_id(), code=f"R{next(_ids)}")


def _nested(depth: int) -> str:
    item = json.dumps(registration_json(_fresh_id()))
    return item[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"


def _with_surrogate(field: str) -> str:
    item = registration_json(_fresh_id())
    item["registration"]["profile"][field] = "x\udc80y"
    return json.dumps(item, ensure_ascii=True)


def _huge() -> str:
    return json.dumps(registration_json(_fresh_id(), extra={"notes": "n" * 1_050_000}))


# An item as (its JSON text, whether it is valid).
valid_item = st.builds(lambda: json.dumps(_valid())).map(lambda text: (text, True))
bad_item = st.one_of(
    json_values.map(lambda v: (json.dumps(v, ensure_ascii=True), False)),
    not_json.map(lambda text: (text, False)),
    st.integers(65, 4000).map(lambda depth: (_nested(depth), False)),
    st.sampled_from(["firstName", "email", "organization"]).map(
        lambda f: (_with_surrogate(f), False)
    ),
    st.integers(0, 24).map(lambda n: (_huge() if n == 0 else json.dumps([n]), False)),
)
batches = st.tuples(
    st.lists(valid_item, min_size=1, max_size=5),
    st.lists(bad_item, max_size=5),
    st.randoms(use_true_random=False),
    st.sampled_from(["array", "ndjson"]),
)


def _body(items: list[tuple[str, bool]], form: str) -> bytes:
    texts = [text for text, _ in items]
    joined = "[" + ",".join(texts) + "]" if form == "array" else "\n".join(texts)
    return joined.encode()


def _rejected_count(control: ControlProcess) -> int:
    return int(sql_scalar(control, "SELECT count(*) FROM rejected_changes"))


@fuzz
@given(batch=batches)
def test_valid_items_accepted_bad_ones_rejected_by_position(
    fuzz_control: ControlProcess, batch: Any
) -> None:
    valid, bad, rng, form = batch
    items = valid + bad
    rng.shuffle(items)
    before = _rejected_count(fuzz_control)
    answer = call(fuzz_control, "POST", "/api/v1/changes", _body(items, form))
    body = answer.json()
    expected_ids = [json.loads(text)["changeId"] for text, ok in items if ok]
    bad_positions = [i for i, (_, ok) in enumerate(items) if not ok]
    assert answer.status == (207 if bad_positions else 202), body
    assert body["change_ids"] == expected_ids
    assert [e["index"] for e in body["errors"]] == bad_positions
    assert all(e["message"] for e in body["errors"])
    assert _rejected_count(fuzz_control) == before + len(bad_positions)


garbage = st.text(max_size=30) | st.sampled_from(['"', "[", "]", "{", "}", ",", '\\"', "\ufeff"])


@fuzz
@given(
    valid=st.lists(valid_item, min_size=1, max_size=3),
    junk=st.lists(garbage, min_size=1, max_size=4),
    form=st.sampled_from(["array", "ndjson"]),
)
def test_arbitrary_junk_beside_valid_items_is_never_dropped_silently(
    fuzz_control: ControlProcess, valid: list[tuple[str, bool]], junk: list[str], form: str
) -> None:
    items = [*valid, *((text, False) for text in junk)]
    before = _rejected_count(fuzz_control)
    answer = call(fuzz_control, "POST", "/api/v1/changes", _body(items, form))
    body = answer.json()
    assert answer.status in (202, 207, 400), body
    assert len(body["errors"]) == _rejected_count(fuzz_control) - before
    accepted = set(body.get("change_ids", []))
    for text, _ in valid:
        change_id = json.loads(text)["changeId"]
        if change_id not in accepted:  # swallowed by a neighbour: kept as rejected input
            found = sql_scalar(
                fuzz_control,
                "SELECT count(*) FROM rejected_changes "
                f"WHERE payload::VARCHAR LIKE '%{change_id}%'",
            )
            assert found >= 1, (change_id, body)


@fuzz
@given(data=st.binary(max_size=3000))
def test_random_bytes_are_answered_never_crash(fuzz_control: ControlProcess, data: bytes) -> None:
    answer = call(fuzz_control, "POST", "/api/v1/changes", data)
    assert answer.status in (202, 207, 400), answer.body[:300]
    if answer.status == 400:
        assert answer.json()["accepted"] == 0

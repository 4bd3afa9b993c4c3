"""A flow's filters as rows of field, operator and value, and back, without Textual.

The flow editor shows each rule as a row; saving turns the rows back into the same rules the
configuration holds, so a flow opened and saved unchanged keeps its filters exactly (a value
whose text was not edited keeps its type: a number stays a number, a list keeps its items). A
rule that a row cannot hold without changing it (an `in` item with a comma, a value of the
wrong shape for its operator) is named by its path, and the editor keeps the filters as JSON
text instead. Problems in rows are named by path too (`filters[1].value: …`), as control names
them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from config.models import FilterOp, Source
from config.source_paths import ANSWERS_PREFIX, EVENT_QUESTIONS_PREFIX, SOURCE_PATHS, paths_for
from config.validation import filter_value_problem

ATTENDEE_TYPE = "@attendee_type"
"""The field choice of a rule on the registration's attendee-type tags."""
ATTENDEE_TYPE_LABEL = "attendee type tags"
NO_VALUE_OPS = frozenset({FilterOp.IS_EMPTY.value, FilterOp.IS_NOT_EMPTY.value})
OPS = tuple(op.value for op in FilterOp)


@dataclass
class RuleRow:
    """One rule as the editor shows it. `original` is the value as loaded: kept on save while
    `text` still reads as it did, so an untouched rule saves as it was."""

    field: str | None = None
    op: str | None = FilterOp.EQUALS.value
    text: str = ""
    original: Any = None
    original_op: str | None = None

    def untouched(self) -> bool:
        """Operator and text as loaded: the loaded value stands."""
        return (
            self.original is not None
            and self.op == self.original_op
            and self.text == value_text(self.original)
        )


def value_text(value: Any) -> str:
    """A rule's value as typed in a row: a list as `a, b`, other values as JSON would show
    them, text as it is."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return json.dumps(value)


def split_items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _clean_items(items: list[Any]) -> bool:
    """Items a comma-separated row gives back unchanged."""
    return all(isinstance(i, str) and i and i == i.strip() and "," not in i for i in items)


def row_of(rule: Any) -> RuleRow | str:
    """The row for one rule, or why a row cannot hold it unchanged."""
    if not isinstance(rule, dict):
        return "not an object"
    if "attendee_type_tags" in rule:
        tags = rule["attendee_type_tags"]
        if set(rule) != {"attendee_type_tags"} or not isinstance(tags, list):
            return "an attendee-type rule holds only a list attendee_type_tags"
        if not _clean_items(tags):
            return "an attendee-type tag a comma-separated list cannot hold"
        return RuleRow(ATTENDEE_TYPE, None, value_text(tags), tags, None)
    if not set(rule) <= {"field", "op", "value"} or not isinstance(rule.get("field"), str):
        return "not a rule of field, op and value"
    op, value = rule.get("op"), rule.get("value")
    if op not in OPS:
        return f"unknown operator {op!r}"
    if filter_value_problem(FilterOp(op), value) is not None:
        return f"a value of the wrong shape for {op}"
    if isinstance(value, list) and not _clean_items(value):
        return "an item a comma-separated list cannot hold"
    if isinstance(value, dict):
        return "an object as value"
    return RuleRow(rule["field"], op, value_text(value), value, op)


def rows_of(filters: list[Any]) -> tuple[list[RuleRow], str | None]:
    """The rows for `filters`, or the first rule rows cannot hold (`filters[2]: why`)."""
    rows: list[RuleRow] = []
    for position, rule in enumerate(filters):
        row = row_of(rule)
        if isinstance(row, str):
            return [], f"filters[{position}]: {row}"
        rows.append(row)
    return rows, None


def rule_of(
    row: RuleRow, position: int, attendee_tags: list[str]
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """The rule a row holds, or its problem as (path, message)."""
    path = f"filters[{position}]"
    if not row.field:
        return None, (f"{path}.field", "choose a field (or remove the rule)")
    if row.field == ATTENDEE_TYPE:
        tags = split_items(row.text)
        if row.untouched():
            tags = list(row.original)
        if not tags:
            return None, (f"{path}.attendee_type_tags", "name at least one attendee-type tag")
        known = {t.casefold() for t in attendee_tags}
        for index, tag in enumerate(tags):
            if tag.casefold() not in known:
                names = ", ".join(attendee_tags) or "none"
                message = f"unknown attendee-type tag {tag!r} (known: {names})"
                return None, (f"{path}.attendee_type_tags[{index}]", message)
        return {"attendee_type_tags": tags}, None
    if row.op not in OPS:
        return None, (f"{path}.op", f"choose an operator ({', '.join(OPS)})")
    value: Any
    if row.untouched():
        value = row.original
    elif row.op in NO_VALUE_OPS:
        value = None
    elif row.op == FilterOp.IN.value:
        value = split_items(row.text)
    else:
        value = row.text
        if not value:
            return None, (f"{path}.value", f"operator {row.op} expects a value, got nothing")
    if row.op in NO_VALUE_OPS:
        value = None
    problem = filter_value_problem(FilterOp(row.op), value)
    if problem is not None:
        return None, (f"{path}.value", problem)
    rule: dict[str, Any] = {"field": row.field, "op": row.op}
    if value is not None:
        rule["value"] = value
    return rule, None


def rules_of(
    rows: list[RuleRow], attendee_tags: list[str]
) -> tuple[list[dict[str, Any]], tuple[int, str, str] | None]:
    """The rules the rows hold, or the first problem as (row index, path, message)."""
    rules: list[dict[str, Any]] = []
    for position, row in enumerate(rows):
        rule, problem = rule_of(row, position, attendee_tags)
        if problem is not None:
            return [], (position, problem[0], problem[1])
        assert rule is not None
        rules.append(rule)
    return rules, None


JSON_KINDS: dict[type, str] = {
    dict: "an object",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def filters_of(text: str) -> tuple[list[Any], str | None]:
    """The filters typed as JSON, or why they are not a JSON list (line and column of a syntax
    error)."""
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError as error:
        return [], f"not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
    if not isinstance(value, list):
        return (
            [],
            f"expected a JSON list of rules ([...]), got {JSON_KINDS.get(type(value), 'a value')}",
        )
    return value, None


def filter_fields(account: dict[str, Any], source: str | None) -> list[str]:
    """The paths a filter may read for `source` (every path without one): the fixed ones,
    the answers to tagged registration questions and the event questions flows use."""
    try:
        fixed = paths_for(Source(source)) if source else list(SOURCE_PATHS)
    except ValueError:
        fixed = list(SOURCE_PATHS)
    questions = [
        f"{ANSWERS_PREFIX}{t['name']}"
        for t in account.get("tags", [])
        if "registration_question" in t.get("objects", [])
    ]
    event_questions = sorted(
        {
            f"{EVENT_QUESTIONS_PREFIX}{rule['event_question']}"
            for f in account.get("flows", [])
            for rule in (
                (f.get("destination") or {}).get(key) or {} for key in ("campaign", "program")
            )
            if rule.get("event_question")
        }
    )
    return [*fixed, *questions, *event_questions]

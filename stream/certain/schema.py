"""The JSON Schema of change events, for producers and for `csignal config schema`.

It is derived from the models so the two cannot drift; the per-type requirements that the models
enforce in a validator are added as `if`/`then` clauses so that schema-only producers see them too.
"""

from __future__ import annotations

from typing import Any

from stream.certain.events import REQUIRED_PARTS, ChangeEvent

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://signal.example/schemas/change-event.json"


def change_event_json_schema() -> dict[str, Any]:
    schema = ChangeEvent.model_json_schema(by_alias=True, mode="validation")
    conditions = [
        {
            "if": {"properties": {"type": {"const": change_type.value}}, "required": ["type"]},
            "then": _requirements(paths),
        }
        for change_type, paths in REQUIRED_PARTS.items()
    ]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        **schema,
        "title": "Signal change event",
        "description": (
            "One change from the Certain event platform (DESIGN 4.2). Unknown fields are "
            "allowed and kept. occurredAt must carry a timezone."
        ),
        "allOf": conditions,
    }


def _requirements(paths: tuple[str, ...]) -> dict[str, Any]:
    """Nested `required` + non-null clauses for JSON paths such as `session.regSessionStatus`."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for key in path.split("."):
            node = node.setdefault(key, {})
    return _clause(tree)


def _clause(tree: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": sorted(tree),
        "properties": {
            key: ({"type": "object", **_clause(sub)} if sub else {"not": {"type": "null"}})
            for key, sub in tree.items()
        },
    }

"""The account configuration as a JSON Schema document, for editors and other tools.

Generated from the models, so it cannot drift from what `csignal config import` accepts. It
checks shape only (types, keys, enums); references and tag kinds are `csignal config check`'s job.
A secret may be written as a `${VAR}` reference: it is a string like any other here.
"""

from __future__ import annotations

from typing import Any

from config.models import ACCOUNT_ADAPTER

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "Signal account configuration"


def account_json_schema() -> dict[str, Any]:
    schema = ACCOUNT_ADAPTER.json_schema(mode="validation")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": TITLE,
        "description": (
            "Tags, assignments, Marketo connections, mappings and flows of one Signal account "
            "(csignal config import / export)."
        ),
        **{key: value for key, value in schema.items() if key not in {"title", "description"}},
    }

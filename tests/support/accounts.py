"""The example account of the specification (`shared/examples/account.yaml`), for tests of the
decision code and the pipeline: its flows, mappings and tags are what the change factories in
`tests.support.changes` are written against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from config.models import Account

# The repository's copy of the specification's example (tests/config checks it still matches the
# shared original when that is at hand), so a clone anywhere has it.
EXAMPLE_ACCOUNT = Path(__file__).resolve().parents[1] / "config" / "data" / "account.yaml"


def example_account_data() -> dict[str, Any]:
    """The example account as parsed YAML: a fresh dict on every call, free to modify."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_ACCOUNT.read_text(encoding="utf-8"))
    return data


def example_account() -> Account:
    """The example account as the model (its client secret left as the `${…}` reference)."""
    return Account.model_validate(example_account_data())


# What the example account's `lead-basic` mapping makes of the default registration of
# `tests.support.changes` (its profile trimmed, proper-cased and lower-cased as the mapping says).
EXAMPLE_LEAD_PAYLOAD: dict[str, str] = {
    "email": "ana.ruiz@example.com",
    "firstName": "Ana Maria",
    "lastName": "Ruiz",
    "company": "Acme",
    "title": "CTO",
    "city": "Seattle, WA",
    "certainRegistrationCode": "R7QX2M9K1",
    "dietaryNeeds": "Vegetarian",
}

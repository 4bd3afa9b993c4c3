"""`certain_sources:` in the account YAML: shape, defaults, problems by path, the password's
`${VAR}` rules (those of a connection's client secret), export and the JSON Schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
import yaml

from config.models import CertainSource, EventsByTag
from config.schema import account_json_schema
from config.secret_refs import EnvAllowList
from config.yamlio import dump_account, export_data, load_raw, load_text

PASSWORD_VAR = "SIGNAL_SECRET_CERTAIN_PASSWORD"
PASSWORD = "c3rtain-pa55word"
ENV = {PASSWORD_VAR: PASSWORD}


def source(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "acme-certain",
        "name": "ACME on Certain",
        "host": "https://app.certain.com",
        "account_code": "ACME",
        "username": "signal-api",
        "password": f"${{{PASSWORD_VAR}}}",
    }
    base.update(overrides)
    return base


def account(*sources: dict[str, Any]) -> dict[str, Any]:
    return {"account": "acme", "certain_sources": list(sources)}


def problems_of(raw: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    loaded = load_raw(raw, ENV if env is None else env)
    return [str(p) for p in loaded.problems]


def test_a_source_loads_with_its_defaults_and_the_password_resolved() -> None:
    loaded = load_raw(account(source()), ENV)
    assert loaded.ok, loaded.problems
    assert loaded.account is not None
    [polled] = loaded.account.certain_sources
    assert polled.password is not None and polled.password.get_secret_value() == PASSWORD
    assert polled.password_ref == PASSWORD_VAR
    assert polled.events == "all"
    assert polled.poll_interval_s == 30
    assert polled.start == "now"
    assert polled.request_budget_per_minute == 60
    assert polled.active is True
    assert polled.base_url == "https://app.certain.com/certainExternal/service/v1"
    assert PASSWORD not in repr(polled)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ("all", "all"),
        (["SUMMIT26", "EXPO26"], ["SUMMIT26", "EXPO26"]),
        ({"tag": "signal_marketo"}, EventsByTag(tag="signal_marketo")),
    ],
)
def test_the_three_ways_to_choose_events(events: Any, expected: Any) -> None:
    loaded = load_raw(account(source(events=events)), ENV)
    assert loaded.ok and loaded.account is not None
    assert loaded.account.certain_sources[0].events == expected


def test_start_takes_an_iso_timestamp_as_yaml_writes_it() -> None:
    text = yaml.safe_dump(account(source())) + ""
    text = text.replace(
        "username: signal-api", "username: signal-api\n  start: 2026-11-28T12:00:00Z"
    )
    loaded = load_text(text, ENV)
    assert loaded.ok, loaded.problems
    assert loaded.account is not None
    assert loaded.account.certain_sources[0].start == datetime(2026, 11, 28, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "poll_interval_s",
            0.5,
            "certain_sources[0].poll_interval_s: expected greater than or equal to 1",
        ),
        (
            "poll_interval_s",
            7200,
            "certain_sources[0].poll_interval_s: expected less than or equal to 3600",
        ),
        ("request_budget_per_minute", 0, "certain_sources[0].request_budget_per_minute: expected"),
        ("request_budget_per_minute", 10**6, "certain_sources[0].request_budget_per_minute:"),
        ("events", 5, "certain_sources[0].events: expected 'all' (every active event), a list"),
        ("events", [], "certain_sources[0].events: expected 'all'"),
        ("events", "some", "certain_sources[0].events: expected 'all'"),
        ("start", "yesterday", "certain_sources[0].start: expected 'now' or an ISO 8601"),
        ("start", "2026-11-28T12:00:00", "certain_sources[0].start: expected 'now' or an ISO"),
        ("host", "ftp://app.certain.com", "certain_sources[0].host: expected an http(s) URL"),
        ("host", "https://u:p@app.certain.com", "certain_sources[0].host: expected a URL without"),
        ("host", "https://app.certain.com/?a=1", "certain_sources[0].host: expected the account"),
        ("account_code", "AC ME", "certain_sources[0].account_code: expected an id"),
        ("username", "", "certain_sources[0].username: expected a non-empty value"),
        ("pasword", "x", "certain_sources[0].pasword: unknown key 'pasword' (did you mean"),
    ],
)
def test_each_mistake_is_named_by_its_path(field: str, value: Any, expected: str) -> None:
    problems = problems_of(account(source(**{field: value})))
    assert any(p.startswith(expected) for p in problems), problems


def test_required_fields_are_named() -> None:
    raw = account({"id": "x"})
    problems = problems_of(raw)
    for name in ("name", "host", "account_code", "username"):
        assert f"certain_sources[0].{name}: required, but missing" in problems


def test_duplicate_ids_are_a_problem() -> None:
    problems = problems_of(account(source(), source(name="again")))
    assert problems == [
        "certain_sources[1].id: duplicate Certain source 'acme-certain' "
        "(already used by certain_sources[0])"
    ]


def test_a_wrong_password_type_never_shows_the_value() -> None:
    problems = problems_of(account(source(password=["hunter2-secret"])))
    assert problems and all("hunter2-secret" not in p for p in problems)
    assert problems[0].startswith("certain_sources[0].password:")


def test_an_unset_variable_is_named() -> None:
    assert problems_of(account(source()), env={}) == [
        f"certain_sources[0].password: environment variable {PASSWORD_VAR} is not set "
        f"(from ${{{PASSWORD_VAR}}})"
    ]


def test_a_reference_off_the_allow_list_is_refused_and_never_read() -> None:
    raw = account(source(password="${HOME}"))
    loaded = load_raw(raw, {"HOME": "/root-secret"})
    assert [p.path for p in loaded.problems] == ["certain_sources[0].password"]
    assert "not on the allow-list" in loaded.problems[0].message
    assert "/root-secret" not in str(loaded.problems)


def test_a_host_bound_entry_sends_the_password_to_its_hosts_only() -> None:
    allow = EnvAllowList.parse(f"{PASSWORD_VAR}@*.certain.com")
    ok = load_raw(account(source()), ENV, allow=allow)
    assert ok.ok, ok.problems
    elsewhere = load_raw(account(source(host="https://certain.evil.example")), ENV, allow=allow)
    assert [str(p) for p in elsewhere.problems] == [
        f"certain_sources[0].password: environment variable {PASSWORD_VAR} may not be sent to "
        f"host certain.evil.example (SIGNAL_SECRET_ENV_ALLOWLIST binds it to *.certain.com)"
    ]


def test_export_writes_the_reference_never_the_value_and_round_trips() -> None:
    raw = account(
        source(
            events={"tag": "signal_marketo"},
            poll_interval_s=2,
            start="2026-11-28T12:00:00Z",
            request_budget_per_minute=120,
            active=False,
        )
    )
    loaded = load_raw(raw, ENV)
    assert loaded.account is not None
    text = dump_account(loaded.account)
    assert PASSWORD not in text
    assert f"password: ${{{PASSWORD_VAR}}}" in text
    again = load_text(text, ENV)
    assert again.ok and again.account == loaded.account
    assert dump_account(again.account) == text


def test_export_leaves_defaults_out() -> None:
    loaded = load_raw(account(source()), ENV)
    assert loaded.account is not None
    # The host is written as pydantic normalises a URL, as a connection's service_url is.
    assert export_data(loaded.account)["certain_sources"] == [
        source(host="https://app.certain.com/")
    ]


def test_a_literal_password_is_used_but_never_exported() -> None:
    loaded = load_raw(account(source(password="literal-pw")), {})
    assert loaded.ok and loaded.account is not None
    assert loaded.literal_secrets == ["certain_sources[0].password"]
    polled = loaded.account.certain_sources[0]
    assert polled.password is not None and polled.password.get_secret_value() == "literal-pw"
    assert "literal-pw" not in dump_account(loaded.account)
    assert "password" not in export_data(loaded.account)["certain_sources"][0]


def test_the_json_schema_describes_certain_sources() -> None:
    schema = account_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(account(source(events=["A"], poll_interval_s=5)))) == []
    assert list(validator.iter_errors(account(source(poll_interval_s=0))))
    assert list(validator.iter_errors(account(source(events={"tags": "x"}))))
    assert list(validator.iter_errors(account(source(extra=1))))
    assert "CertainSource" in schema["$defs"]
    assert CertainSource.model_fields["password"].exclude is True

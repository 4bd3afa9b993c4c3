"""YAML import/export: `${VAR}` secrets, round trips, and secrets never leaving the process."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from config.models import Account, Flow, Mode
from config.yamlio import (
    ConfigError,
    YamlSyntaxError,
    dump_account,
    export_data,
    load_account,
    load_text,
    parse_yaml,
    read_account,
    resolve_secrets,
    write_account,
)
from tests.config.config_helpers import LOCAL_EXAMPLE, SECRET, SECRET_VAR
from tests.support.examples import examples

EXAMPLE_TEXT = LOCAL_EXAMPLE.read_text(encoding="utf-8")


def test_example_loads_with_the_secret_resolved() -> None:
    account = load_account(EXAMPLE_TEXT)
    connection = account.connections[0]
    assert connection.client_secret is not None
    assert connection.client_secret.get_secret_value() == SECRET
    assert connection.client_secret_ref == SECRET_VAR


def test_import_export_import_is_equal() -> None:
    first = read_account(LOCAL_EXAMPLE)
    text = dump_account(first)
    second = load_account(text)
    assert second == first
    assert dump_account(second) == text


def test_export_has_the_shape_of_the_example() -> None:
    expected: dict[str, Any] = yaml.safe_load(EXAMPLE_TEXT)
    connection = expected["connections"][0]
    connection["service_url"] = "https://123-abc-456.mktorest.com/"
    del connection["force_update"]
    assert export_data(read_account(LOCAL_EXAMPLE)) == expected
    assert list(yaml.safe_load(dump_account(read_account(LOCAL_EXAMPLE)))) == [
        "account",
        "tags",
        "assignments",
        "connections",
        "mappings",
        "flows",
    ]


def test_export_omits_defaults_but_keeps_mode_active_and_target() -> None:
    account = Account(account="A", flows=[Flow(id="f", name="F")])
    data = export_data(account)
    assert data == {
        "account": "A",
        "flows": [{"id": "f", "name": "F", "mode": "test", "active": False}],
    }
    text = dump_account(read_account(LOCAL_EXAMPLE))
    for default in ("rate_share", "max_in_flight", "lookup_field", "auth_type", "grant_type"):
        assert default not in text
    assert "target: marketo" in text


def test_secret_never_in_repr_str_dump_or_export() -> None:
    account = read_account(LOCAL_EXAMPLE)
    for text in (
        repr(account),
        str(account),
        repr(account.connections[0]),
        account.model_dump_json(),
        str(account.model_dump()),
        dump_account(account),
        str(export_data(account)),
    ):
        assert SECRET not in text
    assert "${MARKETO_CLIENT_SECRET}" in dump_account(account)


def test_unset_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_VAR)
    loaded = load_text(EXAMPLE_TEXT)
    assert not loaded.ok
    assert [str(p) for p in loaded.problems] == [
        "connections[0].client_secret: environment variable MARKETO_CLIENT_SECRET is not set "
        "(from ${MARKETO_CLIENT_SECRET})"
    ]
    with pytest.raises(ConfigError, match="MARKETO_CLIENT_SECRET") as caught:
        load_account(EXAMPLE_TEXT)
    assert caught.value.problems[0].path == "connections[0].client_secret"


def test_empty_variable_counts_as_unset() -> None:
    loaded = load_text(EXAMPLE_TEXT, env={SECRET_VAR: ""})
    assert "MARKETO_CLIENT_SECRET is not set" in str(loaded.problems[0])


def test_unset_variable_tolerated_keeps_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_VAR)
    account = load_account(EXAMPLE_TEXT, require_env=False)
    assert account.connections[0].client_secret is None
    assert account.connections[0].client_secret_ref == SECRET_VAR
    assert "client_secret: ${MARKETO_CLIENT_SECRET}" in dump_account(account)


def test_explicit_env_mapping_wins_over_process_env() -> None:
    account = load_account(EXAMPLE_TEXT, env={SECRET_VAR: "other"})
    secret = account.connections[0].client_secret
    assert secret is not None and secret.get_secret_value() == "other"


def test_literal_secret_is_used_but_never_exported() -> None:
    text = EXAMPLE_TEXT.replace("${MARKETO_CLIENT_SECRET}", "literal-pass-123")
    loaded = load_text(text)
    assert loaded.ok and loaded.account is not None
    secret = loaded.account.connections[0].client_secret
    assert secret is not None and secret.get_secret_value() == "literal-pass-123"
    assert loaded.literal_secrets == ["connections[0].client_secret"]
    exported = dump_account(loaded.account)
    assert "literal-pass-123" not in exported
    assert "client_secret" not in exported


def test_reference_key_form_is_accepted() -> None:
    text = EXAMPLE_TEXT.replace(
        "client_secret: ${MARKETO_CLIENT_SECRET}", "client_secret_ref: MARKETO_CLIENT_SECRET"
    )
    assert load_account(text) == load_account(EXAMPLE_TEXT)


def test_resolve_secrets_leaves_the_input_alone() -> None:
    raw = parse_yaml(EXAMPLE_TEXT)
    before = copy.deepcopy(raw)
    resolve_secrets(raw, {SECRET_VAR: "x"})
    assert raw == before


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("account: A\nflows:\n  - id: [x\n", 4, 1),
        ("account: A\n  tags: 1\n", 2, 7),
        ("account: 'open\n", 2, 1),
        ("a: 1\n\tb: 2\n", 2, 1),
    ],
)
def test_yaml_syntax_error_has_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_text(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert str(caught.value).startswith(f"line {line}, column {column}: ")


def test_write_account_is_atomic_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data" / "account.yaml"
    account = read_account(LOCAL_EXAMPLE)
    write_account(account, target)
    write_account(account, target)
    assert [p.name for p in target.parent.iterdir()] == ["account.yaml"]
    assert load_account(target.read_text(encoding="utf-8")) == account


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12).filter(
    lambda s: s[0].isalnum()
)
labels = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s.strip() != "")


@settings(max_examples=examples(40), deadline=None)
@given(
    flows=st.lists(
        st.builds(
            Flow,
            id=names,
            name=labels,
            mode=st.sampled_from(Mode),
            active=st.booleans(),
        ),
        max_size=4,
        unique_by=lambda f: f.id,
    )
)
def test_any_flow_list_round_trips(flows: list[Flow]) -> None:
    account = read_account(LOCAL_EXAMPLE, env={SECRET_VAR: SECRET})
    account.flows = flows
    assert load_account(dump_account(account), env={SECRET_VAR: SECRET}) == account


def test_a_repeated_key_is_a_syntax_error_not_a_silent_overwrite() -> None:
    text = "account: A\nflows: []\nmappings: []\nflows: []\n"
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml(text)
    assert (caught.value.line, caught.value.column) == (4, 1)
    assert "duplicate key 'flows' (first at line 2, column 1)" in str(caught.value)

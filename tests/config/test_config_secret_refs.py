"""`${VAR}` secret references resolve only for names on the allow-list (issue 11, item 2), and the
identity URL a secret is bound to is the one the Marketo client sends it to (item 1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from config.models import Connection
from config.secret_refs import (
    DEFAULT_ALLOWLIST,
    EnvAllowList,
    destination_hosts,
    identity_url,
    secret_binding,
)
from config.settings import Settings
from config.yamlio import load_raw, load_text
from simulators.certain.demo_account import SECRET_ENV, demo_account
from stream.cli import main
from stream.marketo.settings import MarketoSettings
from tests.config.config_helpers import LOCAL_EXAMPLE, SECRET, SHARED_EXAMPLE


@pytest.mark.parametrize(
    "name",
    ["MARKETO_CLIENT_SECRET", "MARKETO_X", "SIGNAL_SECRET_PROD", SECRET_ENV],
)
def test_the_default_allow_list_covers_the_examples_and_the_demo(name: str) -> None:
    assert DEFAULT_ALLOWLIST.allows(name)


@pytest.mark.parametrize(
    "name", ["HOME", "PATH", "SIGNAL_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "marketo_x", "XMARKETO_"]
)
def test_the_default_allow_list_refuses_everything_else(name: str) -> None:
    assert not DEFAULT_ALLOWLIST.allows(name)


def test_allow_list_parsing() -> None:
    allow = EnvAllowList.parse(" APP_*, DB_PASS?\nOTHER ")
    assert allow.patterns == ("APP_*", "DB_PASS?", "OTHER")
    assert allow.allows("APP_ONE") and allow.allows("DB_PASS1") and allow.allows("OTHER")
    assert not allow.allows("DB_PASS12") and not allow.allows("OTHER2")
    assert not EnvAllowList.parse("").allows("MARKETO_X")
    with pytest.raises(ValueError, match=r"'\$\{HOME\}'"):
        EnvAllowList.parse("MARKETO_*, ${HOME}")


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().env_allowlist == DEFAULT_ALLOWLIST
    monkeypatch.setenv("SIGNAL_SECRET_ENV_ALLOWLIST", "APP_*,MARKETO_*")
    assert Settings().env_allowlist.patterns == ("APP_*", "MARKETO_*")
    monkeypatch.setenv("SIGNAL_SECRET_ENV_ALLOWLIST", "a[b]")
    with pytest.raises(ValidationError, match="SIGNAL_SECRET_ENV_ALLOWLIST"):
        Settings()


def test_the_examples_and_the_demo_still_load() -> None:
    examples = [LOCAL_EXAMPLE] + ([SHARED_EXAMPLE] if SHARED_EXAMPLE.exists() else [])
    for path in examples:
        loaded = load_text(path.read_text(encoding="utf-8"), {"MARKETO_CLIENT_SECRET": SECRET})
        assert loaded.ok, loaded.problems
    demo = load_raw(demo_account("http://127.0.0.1:9"), {SECRET_ENV: "demo-s"})
    assert demo.ok and demo.account is not None
    secret = demo.account.connections[0].client_secret
    assert secret is not None and secret.get_secret_value() == "demo-s"


def test_a_reference_outside_the_list_is_a_problem_that_reveals_nothing() -> None:
    text = LOCAL_EXAMPLE.read_text(encoding="utf-8").replace("MARKETO_CLIENT_SECRET", "HOME")
    set_ = load_text(text, {"HOME": "/root"}, require_env=False)
    unset = load_text(text, {}, require_env=False)
    for loaded in (set_, unset):
        assert not loaded.ok
        [problem] = loaded.problems
        assert problem.path == "connections[0].client_secret"
        assert "HOME" in problem.message and "MARKETO_*, SIGNAL_SECRET_*" in problem.message
        assert "/root" not in str(loaded.account)
    assert set_.problems == unset.problems


def test_config_check_names_the_variable_and_the_allow_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME_DB_PASSWORD", "hunter2")
    text = LOCAL_EXAMPLE.read_text(encoding="utf-8").replace(
        "MARKETO_CLIENT_SECRET", "HOME_DB_PASSWORD"
    )
    path = tmp_path / "account.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["config", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "connections[0].client_secret: environment variable HOME_DB_PASSWORD" in out
    assert "SIGNAL_SECRET_ENV_ALLOWLIST" in out and "hunter2" not in out
    monkeypatch.setenv("SIGNAL_SECRET_ENV_ALLOWLIST", "HOME_DB_*")
    assert main(["config", "check", str(path)]) == 0, capsys.readouterr().out


@pytest.mark.parametrize(
    ("service_url", "access_token_url"),
    [
        ("https://1-2-3.mktorest.com", None),
        ("https://1-2-3.mktorest.com/", None),
        ("https://1-2-3.mktorest.com/rest", None),
        ("https://1-2-3.mktorest.com/rest/", None),
        ("https://1-2-3.mktorest.com", "https://1-2-3.mktoidentity.com/identity/oauth/token/"),
        ("http://127.0.0.1:8080/base/rest", "http://127.0.0.1:9/token"),
    ],
)
def test_the_bound_identity_url_is_where_the_client_sends_the_secret(
    service_url: str, access_token_url: str | None
) -> None:
    connection = Connection.model_validate(
        {
            "id": "c",
            "name": "C",
            "service_url": service_url,
            "client_id": "cid",
            "access_token_url": access_token_url,
        }
    )
    settings = MarketoSettings(
        base_url=connection.base_url,
        client_id="cid",
        client_secret=SecretStr("x"),
        identity_url=str(connection.access_token_url) if connection.access_token_url else None,
    )
    assert identity_url(connection) == settings.token_url
    assert secret_binding(connection).client_id == "cid"


# --- destinations: NAME_PATTERN@HOST_PATTERN -----------------------------------------------------

BOUND = EnvAllowList.parse("MARKETO_*@*.mktorest.com, SIGNAL_SECRET_LOCAL@127.0.0.1, OPEN_*")


def test_bound_entries_parse_and_match_hosts_case_insensitively() -> None:
    assert BOUND.patterns == ("MARKETO_*@*.mktorest.com", "SIGNAL_SECRET_LOCAL@127.0.0.1", "OPEN_*")
    assert BOUND.allows("MARKETO_X") and BOUND.allows("OPEN_ANY")
    assert BOUND.allows_for("MARKETO_X", ["123-ABC-456.MKTOREST.com"])
    assert not BOUND.allows_for("MARKETO_X", ["evil.example", "1-2-3.mktorest.com"])
    assert not BOUND.allows_for("MARKETO_X", ["mktorest.com.evil.example"])
    assert BOUND.allows_for("SIGNAL_SECRET_LOCAL", ["127.0.0.1"])
    assert not BOUND.allows_for("SIGNAL_SECRET_LOCAL", ["localhost"])
    assert BOUND.allows_for("OPEN_ANY", ["anywhere.example"])  # unbound: any host
    assert not BOUND.allows_for("HOME", ["1-2-3.mktorest.com"])
    # The default list is unbound, as before: compatible with every existing account.
    assert DEFAULT_ALLOWLIST.allows_for("MARKETO_X", ["anywhere.example"])


@pytest.mark.parametrize(
    "text", ["MARKETO_*@", "MARKETO_*@evil/path", "MARKETO_*@host@host", "@*.mktorest.com"]
)
def test_a_bad_host_pattern_is_refused_naming_the_entry(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        EnvAllowList.parse(text)


def test_the_setting_takes_bound_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL_SECRET_ENV_ALLOWLIST", "MARKETO_*@*.mktorest.com")
    allow = Settings().env_allowlist
    assert allow.allows_for("MARKETO_S", ["9-9-9.mktorest.com"])
    assert not allow.allows_for("MARKETO_S", ["127.0.0.1"])


def test_lookup_gives_the_value_only_for_an_allowed_destination() -> None:
    env = {"MARKETO_S": "v4lue", "SIGNAL_SECRET_LOCAL": "l0cal"}
    assert BOUND.lookup(env, "MARKETO_S", ("1-2-3.mktorest.com",)) == "v4lue"
    assert BOUND.lookup(env, "MARKETO_S", ("127.0.0.1",)) is None
    assert BOUND.lookup(env, "SIGNAL_SECRET_LOCAL", ("127.0.0.1",)) == "l0cal"


def test_destination_hosts_are_the_identity_and_service_hosts() -> None:
    plain = Connection(id="c", name="c", service_url="https://1-2-3.MKTOREST.com/rest")
    assert destination_hosts(plain) == ("1-2-3.mktorest.com",)
    split = Connection(
        id="c",
        name="c",
        service_url="https://1-2-3.mktorest.com",
        access_token_url="http://127.0.0.1:9/identity/oauth/token",
    )
    assert destination_hosts(split) == ("127.0.0.1", "1-2-3.mktorest.com")


def test_a_refused_destination_is_a_problem_naming_the_host() -> None:
    text = LOCAL_EXAMPLE.read_text(encoding="utf-8")
    ok = load_text(text, {"MARKETO_CLIENT_SECRET": SECRET}, allow=BOUND)
    assert ok.ok, ok.problems
    moved = text.replace("mktorest.com", "mktorest.com.evil.example")
    for env in ({"MARKETO_CLIENT_SECRET": SECRET}, {}):
        loaded = load_text(moved, env, require_env=False, allow=BOUND)
        [problem] = loaded.problems
        assert problem.path == "connections[0].client_secret"
        assert "MARKETO_CLIENT_SECRET may not be sent to host" in problem.message
        assert ".mktorest.com.evil.example" in problem.message
        assert "binds it to *.mktorest.com" in problem.message
        assert SECRET not in str(loaded.account)

"""Fuzzing account configuration import: YAML-ish text (the reference account mutated, random
documents with the account's keys, YAML's sharp edges — anchors, aliases, tags, merge keys,
deep nesting, control characters, lone surrogates, invalid UTF-8). `csignal config check` and the
loader under it only ever name problems (exit 1) or a syntax error, and `PUT /api/v1/config` on
a real control process answers 200, 400, 413 or 422 — never anything else, never 500."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from config.yamlio import Loaded, YamlSyntaxError, load_text
from stream.cli import main
from tests.fuzz.fuzz_support import call, fuzz
from tests.support.accounts import EXAMPLE_ACCOUNT
from tests.support.processes import ControlProcess

pytestmark = pytest.mark.integration

REFERENCE = EXAMPLE_ACCOUNT.read_text(encoding="utf-8")
KEYS = [
    "account", "tags", "assignments", "connections", "mappings", "flows", "id", "name",
    "target", "service_url", "client_id", "client_secret", "fields", "sources", "transforms",
    "mode", "active", "source", "activate_for", "filters", "field", "op", "value",
    "destination", "connection", "action", "mapping", "campaign", "objects", "label",
]  # fmt: skip
SHARP = [
    "&a ", "*a", "<<: *a\n", "!!python/object/apply:os.system ['true']", "!!binary AAAA",
    "!!set {a}", "? ", ": ", "- ", "{", "}", "[", "]", ",", "|\n", ">-\n", "%YAML 1.1\n",
    "%TAG ! tag:x,2026:\n", "---\n", "...\n", "\t", "#", "'", '"', "\\", "\x00", "\x1b[31m",
    "\ud800", "\ufeff", "\u2028", "~", "null", "1e400", "0x1F", "2026-11-28", "${HOME}",
    "${MARKETO_X}", "[" * 60, "{a: " * 60, "- " * 60,
]  # fmt: skip

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(KEYS)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def mutated_reference(draw: st.DrawFn) -> str:
    lines = REFERENCE.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["drop", "repeat", "insert", "cut"]))
        if edit == "drop":
            del lines[at]
        elif edit == "repeat":
            lines.insert(at, lines[at])
        elif edit == "insert":
            fragment = draw(st.sampled_from(SHARP) | st.text(max_size=10))
            column = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:column] + fragment + lines[at][column:]
        else:
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))] + "\n"
    return "".join(lines)


yamlish = st.one_of(
    mutated_reference(),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.lists(st.sampled_from(SHARP) | st.sampled_from(KEYS) | st.text(max_size=8), max_size=30).map(
        "".join
    ),
)


def _problems_only(text: str) -> None:
    try:
        loaded = load_text(text, env={}, require_env=False)
    except YamlSyntaxError as error:
        assert str(error)
        return
    assert isinstance(loaded, Loaded)
    assert all(problem.message for problem in loaded.problems)
    assert loaded.account is not None or loaded.problems


def _as_read(text: str) -> str:
    """The text as a reader of UTF-8 gets it: a lone surrogate cannot survive decoding."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@fuzz
@given(text=yamlish.map(_as_read))
def test_loading_yamlish_text_only_names_problems(text: str) -> None:
    _problems_only(text)


@fuzz
@given(text=yamlish)
def test_config_check_exits_valid_or_invalid(tmp_path: Path, text: str) -> None:
    path = tmp_path / "account.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["config", "check", str(path)])
    assert code in (0, 1), (code, out.getvalue(), err.getvalue())
    assert out.getvalue() or err.getvalue()


@fuzz
@given(text=yamlish, as_json=st.booleans())
def test_put_config_answers_with_problems_never_500(
    fuzz_control: ControlProcess, text: str, as_json: bool
) -> None:
    body: Any = text.encode("utf-8", "surrogatepass")
    content_type = "application/json" if as_json else "application/yaml"
    answer = call(fuzz_control, "PUT", "/api/v1/config", body, content_type)
    assert answer.status in (200, 400, 413, 422), answer.body[:500]
    if answer.status != 200:
        assert answer.json()["errors"]


# Found by the fuzz above: a scalar YAML resolves to a date or an int but that does not convert
# escapes parse_yaml's error handling as a plain ValueError (a traceback from `config check`,
# a 500 from the API). The YAML loader's bounds are being hardened in config/yamlio.py; until
# then these cases are kept out of the generators above and tracked here.
UNCONVERTIBLE = ["a: 2026-13-45\n", "a: 2026-02-30\n", "a: !!int x\n", "a: !!float y\n"]
"""Scalars PyYAML cannot convert (impossible dates, `!!int`/`!!float` of text): once a
`ValueError` that escaped as a 500 and a traceback; now a syntax error at their position."""


@pytest.mark.parametrize("text", UNCONVERTIBLE)
def test_unconvertible_scalars_are_syntax_errors(text: str) -> None:
    with pytest.raises(YamlSyntaxError, match="line 1, column 4"):
        load_text(text, env={}, require_env=False)
    _problems_only(text)


@pytest.mark.parametrize("text", UNCONVERTIBLE)
def test_unconvertible_scalars_are_not_a_500(fuzz_control: ControlProcess, text: str) -> None:
    answer = call(fuzz_control, "PUT", "/api/v1/config", text.encode(), "application/yaml")
    assert answer.status in (400, 422), answer.body[:500]

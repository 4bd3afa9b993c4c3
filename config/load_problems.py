"""What keeps a raw configuration from loading as an `Account`, in the configuration's terms.

Pydantic's errors name union tags, model internals and the input's repr; these problems name the
path as the operator wrote it (`flows[1].destination.mapping`), say what was expected, suggest
the key that was probably meant, and never quote a secret. `check_raw` runs this layer and
`config.validation`'s together, so one wrong `mode:` does not hide an unknown mapping elsewhere.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from copy import deepcopy
from difflib import get_close_matches
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic import Tag as UnionTag

from config.models import FILTER_TAG_ATTENDEE_TYPE, FILTER_TAG_FIELD, Account
from config.problems import Problem, format_path, show_value
from config.validation import validate_account

__all__ = ["check_raw", "load_problems", "problems_from"]

_UNION_TAGS = {FILTER_TAG_FIELD, FILTER_TAG_ATTENDEE_TYPE}
_SECRET_KEYS = {"client_secret", "password"}
_IDENTIFIER_HINT = (
    "an id of letters, digits, '_', '.' or '-', starting with a letter or digit, "
    "at most 100 characters"
)


def load_problems(raw: object) -> list[Problem]:
    """Everything that keeps `raw` from loading as an `Account`, or [] when it loads."""
    if raw is None:
        return [Problem("", "the file is empty; expected a mapping with 'account', 'flows' …")]
    if not isinstance(raw, Mapping):
        return [Problem("", f"expected a mapping with 'account', 'flows' …, got {show_value(raw)}")]
    try:
        Account.model_validate(raw)
    except ValidationError as error:
        return problems_from(error)
    return []


def check_raw(raw: object) -> tuple[Account | None, list[Problem]]:
    """Load and validate in one go: the account (None unless it loads) and every problem.

    When loading fails, the checks of `validate_account` still run on a copy with the
    offending optional keys removed, so one wrong `mode:` does not hide an unknown mapping
    elsewhere. Nothing is reported from that copy when a required value is broken, since a
    guess there could invent problems.
    """
    problems = load_problems(raw)
    if not problems:
        account = Account.model_validate(raw)
        return account, validate_account(account)
    if not isinstance(raw, Mapping):
        return None, problems
    salvaged = _without_bad_keys(dict(raw))
    if salvaged is not None:
        reported = {p.path for p in problems}
        problems += [p for p in validate_account(salvaged) if p.path not in reported]
    return None, problems


def _without_bad_keys(raw: dict[str, Any]) -> Account | None:
    data = deepcopy(raw)
    try:
        Account.model_validate(data)
    except ValidationError as error:
        for detail in error.errors(include_url=False):
            if not _drop_optional(data, detail["loc"]):
                return None
    try:
        return Account.model_validate(data)
    except ValidationError:
        return None


def _drop_optional(data: dict[str, Any], loc: tuple[str | int, ...]) -> bool:
    """Remove the innermost key on `loc` that a model may go without (never a whole section)."""
    for depth in range(len(loc), 0, -1):
        parent_loc, key = loc[: depth - 1], loc[depth - 1]
        model = _model_at(list(parent_loc))
        if model is None or not isinstance(key, str):
            continue
        field = model.model_fields.get(key)
        if field is not None and field.is_required():
            return False
        if field is not None and model is Account:
            continue
        parent = _get(data, _strip_union_tags(parent_loc))
        if isinstance(parent, dict):
            parent.pop(key, None)
            return True
        return False
    return False


def _get(data: Any, loc: list[str | int]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def problems_from(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        loc = _strip_union_tags(detail["loc"])
        problem = Problem(format_path(loc), _message(detail, loc, detail["loc"]))
        if problem not in problems:
            problems.append(problem)
    return problems


def _strip_union_tags(loc: tuple[str | int, ...]) -> list[str | int]:
    out: list[str | int] = []
    for part in loc:
        if (
            part in _UNION_TAGS
            and len(out) >= 2
            and isinstance(out[-1], int)
            and out[-2] == "filters"
        ):
            continue
        out.append(part)
    return out


def _message(detail: Any, loc: list[str | int], raw_loc: tuple[str | int, ...]) -> str:
    kind: str = detail["type"]
    msg: str = detail["msg"]
    value = detail.get("input")
    secret = bool(loc) and loc[-1] in _SECRET_KEYS
    got = "" if secret else f", got {show_value(value)}"
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return _unknown_key(list(raw_loc))
    if kind == "string_pattern_mismatch":
        return f"expected {_IDENTIFIER_HINT}{got}"
    if kind in {"url_parsing", "url_scheme", "url_syntax_violation", "url_type"}:
        reason = detail.get("ctx", {}).get("error")
        why = f" ({reason})" if reason else ""
        return f"expected an http(s) URL such as https://123-ABC-456.mktorest.com{why}{got}"
    if kind == "string_too_short":
        return f"expected a non-empty value{got}"
    if kind == "string_too_long":
        limit = detail.get("ctx", {}).get("max_length")
        return f"expected at most {limit} characters, got {len(str(value))}"
    if kind == "too_short":
        minimum = detail.get("ctx", {}).get("min_length", 1)
        return f"expected at least {minimum} item(s), got none"
    if kind == "model_type" or kind == "dict_type":
        return f"expected a mapping (key: value){got}"
    if kind == "value_error":
        return str(detail.get("ctx", {}).get("error", msg))
    if msg.startswith("Input should be "):
        expected = msg.removeprefix("Input should be ").replace("a valid ", "a ", 1)
        return f"expected {expected}{got}"
    return f"{msg[:1].lower()}{msg[1:]}{got}"


def _unknown_key(loc: list[str | int]) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    known = list(model.model_fields)
    close = get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(known)}"
    return f"unknown key {key!r} ({hint})"


def _model_at(loc: list[str | int]) -> type[BaseModel] | None:
    """The model class whose instance sits at `loc` inside an Account, if any."""
    current: Any = Account
    for part in loc:
        current = _unwrap(current)
        members = _tagged_members(current)
        if part in members:
            current = members[part]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif get_origin(current) is list and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional (a tagged union stays: its member is named in the loc)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _tagged_members(annotation: Any) -> dict[str | int, Any]:
    if get_origin(annotation) is not Union and get_origin(annotation) is not types.UnionType:
        return {}
    tags = {_union_tag(member): member for member in get_args(annotation)}
    return {tag: member for tag, member in tags.items() if tag is not None}


def _union_tag(member: Any) -> str | None:
    if get_origin(member) is Annotated:
        for meta in get_args(member)[1:]:
            if isinstance(meta, UnionTag):
                return meta.tag
    return None

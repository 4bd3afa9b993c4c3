"""Reading change events from untrusted input without ever raising.

Bad input is never dropped silently (DESIGN 4.2): each bad item becomes a `Rejection` that names
its position, the field at fault and what was expected versus found, and keeps the raw item so an
operator can inspect or resubmit it. Good items in the same batch are accepted regardless.

Positions are 0-based: the index in a list or JSON array, the line number (counting blank lines)
in NDJSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from config.models import Source
from stream.certain.events import ChangeEvent

_MAX_SHOWN = 60
_PLAIN_WORDS = [
    (re.compile(r"a valid dictionary or instance of \w+"), "a JSON object"),
    (re.compile(r"a valid dictionary"), "a JSON object"),
    (re.compile(r"a valid list"), "a JSON array"),
    (re.compile(r"a valid string"), "a string"),
    (re.compile(r"a valid boolean"), "true or false"),
]
"""Pydantic's wording, in the terms of the JSON a producer wrote."""


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Rejection:
    """One bad item. `path`/`reason` are the first problem; `problems` lists them all."""

    index: int | None
    path: str
    reason: str
    raw: Any
    problems: tuple[Problem, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "path": self.path,
            "reason": self.reason,
            "problems": [p.to_dict() for p in self.problems],
            "raw": self.raw,
        }


def parse_change(obj: Any, index: int | None = None) -> ChangeEvent | Rejection:
    """One decoded JSON value → a change, or the reasons it is not one."""
    if not isinstance(obj, dict):
        return _reject(index, obj, [Problem("", f"expected a JSON object, found {_describe(obj)}")])
    type_problem = _check_type(obj)
    if type_problem is not None:
        return _reject(index, obj, [type_problem])
    try:
        return ChangeEvent.model_validate(obj)
    except ValidationError as error:
        return _reject(
            index, obj, [_problem(e) for e in error.errors()] or [Problem("", "invalid")]
        )
    except (RecursionError, ValueError, TypeError) as error:
        return _reject(index, obj, [Problem("", f"unreadable item ({type(error).__name__})")])


def parse_changes(
    items: Sequence[Any] | str | bytes,
) -> tuple[list[ChangeEvent], list[Rejection]]:
    """A batch (list of decoded values, JSON array text, or NDJSON text) → accepted, rejected."""
    accepted: list[ChangeEvent] = []
    rejected: list[Rejection] = []
    for index, item in _items(items):
        result = item if isinstance(item, Rejection) else parse_change(item, index)
        if isinstance(result, Rejection):
            rejected.append(result)
        else:
            accepted.append(result)
    return accepted, rejected


def _items(items: Sequence[Any] | str | bytes) -> list[tuple[int | None, Any]]:
    if isinstance(items, bytes | bytearray):
        data = bytes(items)
        try:
            items = data.decode("utf-8")
        except UnicodeDecodeError as error:
            reason = f"expected UTF-8 text, found an invalid byte at offset {error.start}"
            raw = data.decode("utf-8", errors="replace")
            return [(None, _reject(None, raw, [Problem("", reason)]))]
    if not isinstance(items, str):
        return list(enumerate(items))
    text = items.lstrip("\ufeff")
    if text.lstrip().startswith("["):
        try:
            decoded = json.loads(text)
        except ValueError as error:
            return [(None, _reject(None, text, [Problem("", f"invalid JSON array: {error}")]))]
        return list(enumerate(decoded))
    result: list[tuple[int | None, Any]] = []
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            result.append((number, json.loads(line)))
        except ValueError as error:
            result.append((number, _reject(number, line, [Problem("", f"invalid JSON: {error}")])))
    return result


def _check_type(obj: dict[str, Any]) -> Problem | None:
    """An unknown type is named with the four valid ones, before any per-type checks run."""
    if "type" not in obj:
        return None
    value = obj["type"]
    valid = [s.value for s in Source]
    if isinstance(value, str) and value in valid:
        return None
    return Problem("type", f"expected one of {', '.join(valid)}, found {_describe(value)}")


def _problem(error: ErrorDetails) -> Problem:
    ctx = error.get("ctx") or {}
    if error["type"] in {"part_missing", "event_code_mismatch"}:
        return Problem(str(ctx.get("path", "")), error["msg"])
    path = _format_loc(error["loc"])
    if error["type"] == "missing":
        return Problem(path, "required field is missing")
    if error["type"] == "timezone_aware":
        return Problem(
            path,
            "expected a timezone-aware timestamp (e.g. 2026-11-28T12:00:00Z), "
            f"found {_describe(error.get('input'))} without a timezone",
        )
    if error["type"].startswith(("datetime_", "date_")):
        return Problem(
            path,
            "expected an ISO 8601 timestamp with a timezone (e.g. 2026-11-28T12:00:00Z), "
            f"found {_describe(error.get('input'))}",
        )
    message = error["msg"]
    message = message[0].lower() + message[1:] if message else "invalid value"
    message = message.replace("input should be", "expected")
    for pattern, plain in _PLAIN_WORDS:
        message = pattern.sub(plain, message)
    return Problem(path, f"{message}; found {_describe(error.get('input'))}")


def _format_loc(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _describe(value: Any) -> str:
    kind = {
        type(None): "null",
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
    try:
        shown = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, TypeError):
        shown = repr(value)
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 1] + "…"
    return f"{kind} {shown}"


def _reject(index: int | None, raw: Any, problems: list[Problem]) -> Rejection:
    first = problems[0]
    return Rejection(index, first.path, first.reason, raw, tuple(problems))

"""Reading change events from untrusted input without ever raising.

Bad input is never dropped silently (DESIGN 4.2): each bad item becomes a `Rejection` that names
its position, the field at fault and what was expected versus found, and keeps the raw item so an
operator can inspect or resubmit it. Good items in the same batch are accepted regardless.

Positions are 0-based: the index in a list or JSON array, the line number (counting blank lines)
in NDJSON text.

One poisoned item never takes its batch down: an item nested deeper than `MAX_DEPTH` levels, or
holding a lone UTF-16 surrogate (`"\\udc80"` in the JSON text; no database or UTF-8 encoder takes
it), is a rejection like any other. A JSON array that does not parse as a whole is split into
its items by its brackets, so an unreadable item is rejected on its own; only an array whose
items cannot be told apart (an unterminated string, a stray bracket) is one rejection for the
whole text, naming the line and column.
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
MAX_DEPTH = 64
"""Nesting levels an item may have (a change event has about 6): deeper is a rejection, so no
reader of a change (pydantic, json, DuckDB) ever recurses without bound."""
MAX_VALUES = 50_000
"""Values (objects, arrays, scalars) an item may hold (a registration has a few hundred, an event
with its sessions some thousands): more is a rejection before validation, so one item never
makes the validator build an error per element of a list of a million."""
MAX_PROBLEMS = 20
"""Problems kept per rejection; the rest are counted in one more problem, so an answer and a
`rejected_changes` row stay small whatever the item."""
MAX_CHANGE_BYTES = 1_000_000
"""The largest change (key and JSON value) produced to `certain-changes`: under the broker's
1 MiB message limit with room for the record's own overhead. A bigger change could never be
published, so every way in (ingest, a Certain source) rejects it rather than accept it."""


def more_problems(total: int, kept: int) -> str | None:
    """The line counting the problems a rejection leaves out, or None when it keeps them all."""
    more = total - kept
    return f"and {more:,} more problems (the first {kept} shown)" if more > 0 else None


def oversize_reason(key: str, payload: str) -> str | None:
    """Why a change published as `payload` under `key` is too big for `certain-changes`, or
    None when it fits."""
    return oversize_record_reason(len(payload.encode()) + len(key.encode()))


def oversize_record_reason(size: int) -> str | None:
    """`oversize_reason` for a record already encoded, of `size` bytes (key and value)."""
    if size <= MAX_CHANGE_BYTES:
        return None
    return (
        f"the change is {size:,} bytes as published; the broker takes at most "
        f"{MAX_CHANGE_BYTES:,} bytes per change"
    )


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
    shape_problem = _check_shape(obj)
    if shape_problem is not None:
        return _reject(index, obj, [shape_problem])
    type_problem = _check_type(obj)
    if type_problem is not None:
        return _reject(index, obj, [type_problem])
    try:
        return ChangeEvent.model_validate(obj)
    except ValidationError as error:
        problems = [_problem(e) for e in error.errors(include_url=False)[:MAX_PROBLEMS]]
        more = more_problems(error.error_count(), len(problems))
        if more is not None:
            problems.append(Problem("", more))
        return _reject(index, obj, problems or [Problem("", "invalid")])
    except (RecursionError, ValueError, TypeError) as error:
        return _reject(index, obj, [Problem("", f"unreadable item ({type(error).__name__})")])


def parse_changes(
    items: Sequence[Any] | str | bytes,
) -> tuple[list[ChangeEvent], list[Rejection]]:
    """A batch (list of decoded values, JSON array text, or NDJSON text) → accepted, rejected."""
    accepted: list[ChangeEvent] = []
    rejected: list[Rejection] = []
    for _, result in parse_items(items):
        if isinstance(result, Rejection):
            rejected.append(result)
        else:
            accepted.append(result)
    return accepted, rejected


def parse_items(
    items: Sequence[Any] | str | bytes,
) -> list[tuple[int | None, ChangeEvent | Rejection]]:
    """`parse_changes` in the batch's order, each result with its position.

    Text is a JSON array, a single JSON object (pretty-printed or not) or NDJSON."""
    return [
        (index, item if isinstance(item, Rejection) else parse_change(item, index))
        for index, item in _items(items)
    ]


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
    start = text.lstrip()[:1]
    if start == "[" and not _array_then_more_lines(text):
        return _array_items(text)
    if start == "{":
        single = _single_object(text)
        if single is not None:
            return [single]
    return _ndjson_items(text)


def _array_items(text: str) -> list[tuple[int | None, Any]]:
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        pass
    else:
        if isinstance(decoded, list):
            return list(enumerate(decoded))
    try:
        pieces, rest = _split_array(text)
    except _Unsplittable as error:
        where = _position(text, error.offset)
        reason = f"invalid JSON array: {error.reason} at {where}; its items cannot be told apart"
        return [(None, _reject(None, text, [Problem("", reason)]))]
    result: list[tuple[int | None, Any]] = [
        (index, _decode(piece.strip(), index)) for index, piece in enumerate(pieces)
    ]
    if rest.strip():
        reason = "unexpected text after the JSON array"
        result.append((None, _reject(None, rest.strip(), [Problem("", reason)])))
    return result


def _array_then_more_lines(text: str) -> bool:
    """NDJSON whose first line is an array: that line holds a whole value and more follows."""
    body = text.lstrip()
    newline = body.find("\n")
    if newline < 0 or not body[newline:].strip():
        return False
    first = body[:newline]
    try:
        _commas, end = _scan(first, 0)
    except _Unsplittable:
        return False
    return not first[end:].strip()


def _single_object(text: str) -> tuple[int | None, Any] | None:
    """A body that is one JSON object, possibly over many lines: (0, the object), or None when
    the text is something else (NDJSON)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    except RecursionError:
        try:
            _commas, end = _scan(text, len(text) - len(text.lstrip()))
        except _Unsplittable:
            return None
        if text[end:].strip():
            return None
        return 0, _too_deep(0, text)
    return (0, value) if isinstance(value, dict) else None


def _ndjson_items(text: str) -> list[tuple[int | None, Any]]:
    # Only "\n" ends a line: JSON strings may hold U+2028 and the other breaks splitlines knows.
    return [
        (number, _decode(line, number))
        for number, line in enumerate(text.split("\n"))
        if line.strip()
    ]


def _decode(text: str, index: int) -> Any:
    """One item's JSON text → its value, or a Rejection keeping the text."""
    if not text.strip():
        return _reject(index, text, [Problem("", "invalid JSON: an empty item (a stray comma?)")])
    try:
        return json.loads(text)
    except RecursionError:
        return _too_deep(index, text)
    except ValueError as error:
        return _reject(index, text, [Problem("", f"invalid JSON: {error}")])


def _too_deep(index: int, text: str) -> Rejection:
    return _reject(index, text, [Problem("", f"nested deeper than {MAX_DEPTH} levels")])


class _Unsplittable(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+|,|[^"\[\]{},]+|"', re.DOTALL)
"""JSON text as strings, runs of opening or closing brackets, commas and the runs between them;
a lone `"` is a string that never ends."""
_CLOSER = str.maketrans("[{", "]}")


def _scan(text: str, start: int) -> tuple[list[int], int]:
    """Bounds inside the JSON object or array that opens at `start`: the offsets of its own
    commas (between its items) and the offset just past its closing bracket. Only strings and
    brackets must be well formed; what lies between them is left to the items' own parsing."""
    commas: list[int] = []
    expected: list[str] = []  # the closing bracket each open one needs, innermost last
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        head = token[0]
        if head == '"':
            if len(token) == 1:
                raise _Unsplittable("a string that never ends", match.start())
        elif head in "[{":
            expected.extend(token.translate(_CLOSER))
        elif head in "]}":
            count = min(len(token), len(expected))
            wanted = "".join(reversed(expected[len(expected) - count :]))
            if token[:count] != wanted or not expected:
                at = next(
                    (i for i, (a, b) in enumerate(zip(token, wanted, strict=False)) if a != b), 0
                )
                raise _Unsplittable(f"an unexpected '{token[at]}'", match.start() + at)
            del expected[len(expected) - count :]
            if not expected:
                return commas, match.start() + count
        elif head == "," and len(expected) == 1:
            commas.append(match.start())
    raise _Unsplittable("it never ends", len(text))


def _split_array(text: str) -> tuple[list[str], str]:
    """A JSON array's text → its items' texts and whatever follows the array."""
    start = text.index("[")
    commas, end = _scan(text, start)
    bounds = [start, *commas, end - 1]
    pieces = [text[bounds[i] + 1 : bounds[i + 1]] for i in range(len(bounds) - 1)]
    if pieces == [] or (len(pieces) == 1 and not pieces[0].strip()):
        pieces = []
    return pieces, text[end:]


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line} column {column} (character {offset})"


def _check_shape(obj: Any) -> Problem | None:
    """Nesting past `MAX_DEPTH`, a lone surrogate in any key or string, or more than
    `MAX_VALUES` values, without recursion; the place of the first one found is only worked
    out when there is one."""
    if _shape_ok(obj):
        return None
    stack: list[tuple[Any, str, int]] = [(obj, "", 0)]
    values = 1  # the values seen or waiting on the stack
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _has_surrogate(value):
                return Problem(
                    path,
                    f"a lone UTF-16 surrogate in {escaped(value)[:_MAX_SHOWN]}; "
                    "expected text that is valid Unicode",
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            return Problem(path, f"nested deeper than {MAX_DEPTH} levels")
        values += len(value)
        if values > MAX_VALUES:
            return Problem(
                "", f"more than {MAX_VALUES:,} values in one item; expected one change event"
            )
        entries = list(value.items() if isinstance(value, dict) else enumerate(value))
        for key, _child in entries:
            if isinstance(key, str) and _has_surrogate(key):
                return Problem(
                    _join(path, key), f"a lone UTF-16 surrogate in the key {escaped(key)}"
                )
        stack.extend((child, _join(path, key), depth + 1) for key, child in reversed(entries))
    return Problem("", "unreadable item")


def _shape_ok(obj: Any) -> bool:
    """The common case, fast: no container deeper than `MAX_DEPTH`, no lone surrogate, at most
    `MAX_VALUES` values."""
    level: list[Any] = [obj]
    depth = 0
    values = 0
    while level:
        values += len(level)
        if values > MAX_VALUES:
            return False
        below: list[Any] = []
        for value in level:
            if isinstance(value, str):
                if not value.isascii() and _has_surrogate(value):
                    return False
            elif isinstance(value, dict):
                if depth >= MAX_DEPTH:
                    return False
                for key in value:
                    if isinstance(key, str) and not key.isascii() and _has_surrogate(key):
                        return False
                below.extend(value.values())
            elif isinstance(value, list):
                if depth >= MAX_DEPTH:
                    return False
                below.extend(value)
        level = below
        depth += 1
    return True


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def escaped(text: str) -> str:
    """`text` with lone surrogates written as `\\udXXX` (valid UTF-8 everywhere it goes)."""
    if not _has_surrogate(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _join(path: str, key: int | str) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    name = escaped(key)
    return f"{path}.{name}" if path else name


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

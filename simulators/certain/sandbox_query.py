"""Query parameters of the Certain collection endpoints and the collection envelope.

Reference/certain-data.md §3: paging with `max_results` + `start_index`, filters
`dateModified_after|before` and `dateCreated_after|before` in `yyyy-MM-ddTHH:mm:ss` (UTC) or the
older `yyyy/MM/dd HH:mm:ss`, equality filters such as `isActive=`, sorting with
`orderBy=<field>_asc|_desc`, the envelope `{"size", "completeCollectionSize", "maxResults",
<plural>: […]}`, 404 when nothing matches and 400 with a readable message for bad input.

Choices where the reference is silent ([INFERRED], each one place to change):
- `start_index` is a 0-based record offset (`START_INDEX_BASE`); whether Certain counts records
  or 1-based pages is unconfirmed.
- `_after` and `_before` are strict (a record stamped exactly at the bound is not returned).
- `max_results` defaults to `DEFAULT_MAX_RESULTS` and is capped at `MAX_RESULTS_CAP` (one client
  pages by 5000); the envelope's `maxResults` says what was used.
- Unknown parameters are ignored, as most REST back ends do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_CAP = 5000
START_INDEX_BASE = 0
TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S")
TIMESTAMP_HINT = "yyyy-MM-ddTHH:mm:ss or yyyy/MM/dd HH:mm:ss (UTC)"


class QueryError(Exception):
    """A request Certain answers with an error status and a readable message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_ts(name: str, value: str) -> int:
    """A filter timestamp in either of Certain's formats, as epoch seconds (UTC)."""
    for fmt in TIMESTAMP_FORMATS:
        try:
            moment = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return int(moment.replace(tzinfo=UTC).timestamp())
    raise QueryError(400, f"Invalid value '{value}' for {name}: expected {TIMESTAMP_HINT}")


def _int(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise QueryError(
            400, f"Invalid value '{value}' for {name}: expected an integer >= {minimum}"
        )
    return number


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise QueryError(400, f"Invalid value '{value}' for {name}: expected true or false")
    return lowered == "true"


@dataclass(frozen=True)
class Collection:
    """How one collection endpoint filters and sorts: its plural key and, per field name, how
    to read that field from a record (`sort_keys`), and which equality filters it accepts."""

    plural: str
    sort_keys: Mapping[str, Callable[[Any], Any]]
    equality: Mapping[str, Callable[[Any], Any]]
    date_modified: Callable[[Any], int]
    date_created: Callable[[Any], int] | None = None


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int
    max_results: int


def include_list(query: Mapping[str, str]) -> frozenset[str]:
    """`includeList` (or `include_list`, §2.4): comma-separated names."""
    raw = ",".join(v for k, v in query.items() if k in ("includeList", "include_list"))
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def select(records: Sequence[Any], query: Mapping[str, str], spec: Collection, what: str) -> Page:
    """Filter, sort and page `records` by the query; raises QueryError (400 or 404)."""
    max_results = DEFAULT_MAX_RESULTS
    if "max_results" in query:
        max_results = min(_int("max_results", query["max_results"], 1), MAX_RESULTS_CAP)
    start = START_INDEX_BASE
    if "start_index" in query:
        start = _int("start_index", query["start_index"], START_INDEX_BASE)
    bounds: list[tuple[Callable[[Any], int], str, int]] = []
    for field_name, getter in (
        ("dateModified", spec.date_modified),
        ("dateCreated", spec.date_created),
    ):
        for side in ("after", "before"):
            name = f"{field_name}_{side}"
            if name in query:
                if getter is None:
                    raise QueryError(400, f"{name} is not supported for {what}")
                bounds.append((getter, side, parse_ts(name, query[name])))
    equals: list[tuple[Callable[[Any], Any], Any]] = []
    for name, getter in spec.equality.items():
        if name in query:
            value: Any = query[name]
            if name.startswith("is"):
                value = _bool(name, value)
            equals.append((getter, value))
    order = query.get("orderBy")
    key: Callable[[Any], Any] | None = None
    descending = False
    if order is not None:
        field_name, _, direction = order.rpartition("_")
        if field_name not in spec.sort_keys or direction not in ("asc", "desc"):
            expected = ", ".join(f"{f}_asc|_desc" for f in spec.sort_keys)
            raise QueryError(
                400, f"Invalid value '{order}' for orderBy: expected one of {expected}"
            )
        key = spec.sort_keys[field_name]
        descending = direction == "desc"

    def keep(record: Any) -> bool:
        for getter, side, bound in bounds:
            stamp = getter(record)
            if (side == "after" and stamp <= bound) or (side == "before" and stamp >= bound):
                return False
        return all(getter(record) == value for getter, value in equals)

    matched = [r for r in records if keep(r)]
    if key is not None:
        sort_key = key
        matched.sort(key=lambda r: sort_key(r), reverse=descending)
    offset = start - START_INDEX_BASE
    items = matched[offset : offset + max_results]
    if not items:
        raise QueryError(404, f"No {what} found")
    return Page(items, len(matched), max_results)


def envelope(page: Page, plural: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "size": len(items),
        "completeCollectionSize": page.total,
        "maxResults": page.max_results,
        plural: items,
    }

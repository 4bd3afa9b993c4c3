"""Marketo's activity log, read to learn whether a call whose answer was lost did run.

A campaign request or a form submit that may have reached Marketo without its answer reaching
Signal (a worker killed mid-call, a timeout) cannot simply be sent again: Marketo has no
idempotency key, and a second request runs the campaign twice. Marketo logs a Request Campaign
(or Fill Out Form) activity for each lead it ran, with the campaign (form) id as
`primaryAttributeValueId`, so the log answers the question.

Reading it takes a date token (`activities/pagingtoken.json?sinceDatetime=`) and then pages of
`activities.json` with `nextPageToken`, `activityTypeIds` and up to 30 `leadIds`, `batchSize` up
to 300, while `moreResult` is true. Type ids differ between instances, so a type is found by its
name in `activities/types.json` (read once per client).

The parsers are plain functions of an envelope or of the answer's bytes; `ActivityLog` only
chains the reads. A malformed answer raises `ActivityError`: a reader that cannot tell whether a
call ran must say so, never report "not run".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream.marketo.errors import MarketoError
from stream.marketo.protocol import parse_envelope

__all__ = [
    "ACTIVITIES_PATH",
    "FILL_OUT_FORM",
    "MAX_BATCH",
    "MAX_LEAD_IDS",
    "PAGING_TOKEN_PATH",
    "REQUEST_CAMPAIGN",
    "TYPES_PATH",
    "Activity",
    "ActivityError",
    "ActivityLog",
    "ActivityPage",
    "lead_groups",
    "parse_page",
    "parse_token",
    "parse_types",
    "since_param",
    "type_id",
]

TYPES_PATH = "/rest/v1/activities/types.json"
PAGING_TOKEN_PATH = "/rest/v1/activities/pagingtoken.json"
ACTIVITIES_PATH = "/rest/v1/activities.json"
MAX_LEAD_IDS = 30
"""Marketo's limit of `leadIds` per Get Lead Activities call."""
MAX_BATCH = 300
REQUEST_CAMPAIGN = "Request Campaign"
FILL_OUT_FORM = "Fill Out Form"
MAX_PAGES = 20
"""Pages read per group of leads before giving up: a busy instance can log many activities of a
type in the window, and a verification must stay bounded."""

Answer = Mapping[str, Any] | bytes
Read = Callable[[str, Mapping[str, str], int], Awaitable[Mapping[str, Any]]]
"""`read(path, params, batch_size)`: the envelope of a successful GET (raises MarketoError)."""


class ActivityError(ValueError):
    """An activity answer that cannot be read, or a type the instance does not have."""


@dataclass(frozen=True, slots=True)
class Activity:
    id: int
    lead_id: int
    type_id: int
    at: datetime
    primary_id: int | None


@dataclass(frozen=True, slots=True)
class ActivityPage:
    activities: tuple[Activity, ...]
    next_token: str | None
    more: bool


def _envelope(answer: Answer, path: str) -> Mapping[str, Any]:
    if isinstance(answer, bytes):
        envelope, failure, _ = parse_envelope(200, answer, path)
        if failure is not None:
            raise MarketoError(failure)
        assert envelope is not None
        return envelope
    return answer


def _int(item: Mapping[str, Any], name: str, where: str) -> int:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ActivityError(f"{where}: {name} is {value!r}, expected an integer")
    try:
        return int(value)
    except ValueError:
        raise ActivityError(f"{where}: {name} is {value!r}, expected an integer") from None


def parse_types(answer: Answer) -> dict[str, int]:
    """Activity type name -> id, from `activities/types.json`."""
    envelope = _envelope(answer, TYPES_PATH)
    result = envelope.get("result") or []
    if not isinstance(result, list):
        raise ActivityError(f"activity types: result is {type(result).__name__}, expected a list")
    types: dict[str, int] = {}
    for n, item in enumerate(result):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ActivityError(f"activity type {n}: expected an object with a name")
        types[item["name"]] = _int(item, "id", f"activity type {item['name']!r}")
    return types


def type_id(types: Mapping[str, int], name: str) -> int:
    if name not in types:
        known = ", ".join(sorted(types)) or "none"
        raise ActivityError(f"activity type {name!r} not found in this instance (types: {known})")
    return types[name]


def parse_token(answer: Answer) -> str:
    """The `nextPageToken` of `activities/pagingtoken.json`."""
    token = _envelope(answer, PAGING_TOKEN_PATH).get("nextPageToken")
    if not isinstance(token, str) or not token:
        raise ActivityError(f"paging token: nextPageToken is {token!r}, expected a string")
    return token


def _date(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise ActivityError(f"{where}: activityDate is {value!r}, expected an ISO date-time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ActivityError(
            f"{where}: activityDate is {value!r}, expected an ISO date-time"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_page(answer: Answer) -> ActivityPage:
    """One page of `activities.json`: its activities, the token after it, whether more follow.

    `result` is absent on an empty page, as Marketo sends it."""
    envelope = _envelope(answer, ACTIVITIES_PATH)
    result = envelope.get("result") or []
    if not isinstance(result, list):
        raise ActivityError(f"activities: result is {type(result).__name__}, expected a list")
    activities = []
    for n, item in enumerate(result):
        where = f"activity {n}"
        if not isinstance(item, Mapping):
            raise ActivityError(f"{where}: expected an object, got {type(item).__name__}")
        has_primary = item.get("primaryAttributeValueId") is not None
        activities.append(
            Activity(
                id=_int(item, "id", where),
                lead_id=_int(item, "leadId", where),
                type_id=_int(item, "activityTypeId", where),
                at=_date(item.get("activityDate"), where),
                primary_id=_int(item, "primaryAttributeValueId", where) if has_primary else None,
            )
        )
    token = envelope.get("nextPageToken")
    more = envelope.get("moreResult") is True
    if more and (not isinstance(token, str) or not token):
        raise ActivityError("activities: moreResult without a nextPageToken")
    return ActivityPage(tuple(activities), token if isinstance(token, str) else None, more)


def since_param(when: datetime) -> str:
    """`sinceDatetime` for `when`, in UTC and floored to the second (activity dates are)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lead_groups(lead_ids: Sequence[int]) -> list[list[int]]:
    """Distinct lead ids in groups Marketo accepts in one call."""
    unique = list(dict.fromkeys(lead_ids))
    return [unique[i : i + MAX_LEAD_IDS] for i in range(0, len(unique), MAX_LEAD_IDS)]


class ActivityLog:
    """Reads one instance's activity log through `read` (the client's transport)."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._types: dict[str, int] | None = None
        self._lock = asyncio.Lock()

    async def type_id(self, name: str) -> int:
        """The id of the activity type `name` (types read once, then cached)."""
        async with self._lock:
            if self._types is None:
                self._types = parse_types(await self._read(TYPES_PATH, {}, 0))
            return type_id(self._types, name)

    async def activities(
        self,
        type_name: str,
        lead_ids: Sequence[int],
        since: datetime,
        *,
        max_pages: int = MAX_PAGES,
    ) -> list[Activity]:
        """Activities of `type_name` logged for `lead_ids` at or after `since`, every page read
        (groups of 30 leads one after the other: verification is rare and must not crowd the
        instance's rate limit). Raises MarketoError or ActivityError when it cannot tell."""
        wanted = await self.type_id(type_name)
        dated = await self._read(PAGING_TOKEN_PATH, {"sinceDatetime": since_param(since)}, 0)
        token = parse_token(dated)
        found: list[Activity] = []
        for group in lead_groups(lead_ids):
            params = {
                "nextPageToken": token,
                "activityTypeIds": str(wanted),
                "leadIds": ",".join(str(i) for i in group),
                "batchSize": str(MAX_BATCH),
            }
            for _ in range(max_pages):
                page = parse_page(await self._read(ACTIVITIES_PATH, params, len(group)))
                found.extend(a for a in page.activities if a.type_id == wanted)
                if not page.more:
                    break
                assert page.next_token is not None
                params = {**params, "nextPageToken": page.next_token}
            else:
                raise ActivityError(
                    f"more than {max_pages} pages of {type_name!r} activities for "
                    f"{len(group)} leads since {since_param(since)}"
                )
        return found

"""Activity log endpoints: activity types, date paging tokens, Get Lead Activities.

The sandbox logs an activity for what its endpoints do to a lead (`SandboxState.log_activity`):
New Lead, Change Data Value, Fill Out Form, Request Campaign (the campaign id as
`primaryAttributeValueId`) and Change Status in Progression. They are read the way Marketo serves
them: a token for a date (`pagingtoken.json?sinceDatetime=`), then pages of `activities.json`
filtered by up to 10 activity type ids and up to 30 lead ids, `batchSize` up to 300, with
`nextPageToken` on every page and `moreResult` while activities remain after it.

The type ids are Marketo's usual ones, but a client must find a type by name
(`GET activities/types.json`): instances differ. How Marketo answers a malformed token or too
many ids is unconfirmed; the sandbox answers 1003 naming the parameter.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime
from typing import Any

from simulators.marketo.routes import Call, Route, route
from simulators.marketo.state import (
    CHANGE_DATA_VALUE,
    CHANGE_PROGRAM_STATUS,
    FILL_OUT_FORM,
    NEW_LEAD,
    REQUEST_CAMPAIGN,
)
from simulators.marketo.wire import (
    SandboxError,
    batch_size,
    blank,
    ints,
    lead_envelope,
    page_offset,
    page_token,
)

MAX_TYPE_IDS = 10
MAX_LEAD_IDS = 30
DATE_TOKEN = "activities"
"""Kind of a date token (`page_token`): epoch seconds of `sinceDatetime`."""
POSITION_TOKEN = "activityPos"
"""Kind of a page token: the id of the first activity not read yet."""


def _type(
    type_id: int, name: str, description: str, primary: tuple[str, str] | None, *attrs: str
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": type_id, "name": name, "description": description}
    if primary is not None:
        item["primaryAttribute"] = {"name": primary[0], "dataType": primary[1]}
    item["attributes"] = [{"name": a, "dataType": "string"} for a in attrs]
    return item


ACTIVITY_TYPES: list[dict[str, Any]] = [
    _type(1, "Visit Webpage", "User visits a web page", ("Webpage ID", "integer"), "Query"),
    _type(
        FILL_OUT_FORM,
        "Fill Out Form",
        "User fills out and submits form on web page",
        ("Webform ID", "integer"),
        "Client IP Address",
        "Form Fields",
        "Webpage ID",
    ),
    _type(6, "Send Email", "Send Marketo Email to a person", ("Mailing ID", "integer")),
    _type(7, "Email Delivered", "Marketo Email is delivered", ("Mailing ID", "integer")),
    _type(
        NEW_LEAD,
        "New Lead",
        "New person/record is added to the lead database",
        None,
        "Source Type",
        "Form Name",
    ),
    _type(
        CHANGE_DATA_VALUE,
        "Change Data Value",
        "Changed attribute value for a person",
        ("Attribute Name", "integer"),
        "New Value",
        "Old Value",
        "Reason",
        "Source",
    ),
    _type(24, "Add to List", "Person is added to a list", ("List ID", "integer")),
    _type(
        REQUEST_CAMPAIGN,
        "Request Campaign",
        "Request a Campaign",
        ("Campaign ID", "integer"),
        "Source",
    ),
    _type(
        CHANGE_PROGRAM_STATUS,
        "Change Status in Progression",
        "Change a person's Program Status",
        ("Program ID", "integer"),
        "New Status ID",
        "Old Status ID",
        "Reason",
        "Success",
    ),
]
TYPE_IDS = frozenset(t["id"] for t in ACTIVITY_TYPES)


def activity_types(call: Call) -> dict[str, Any]:
    return lead_envelope(call.request_id, [dict(t) for t in ACTIVITY_TYPES])


def _since(raw: str) -> float:
    try:
        stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SandboxError("1001", f"Invalid value '{raw}'. Required of type 'datetime'") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def paging_token(call: Call) -> dict[str, Any]:
    """A date token; reading `activities.json` with it starts at the first activity at or after
    `sinceDatetime`."""
    since = call.params.get("sinceDatetime")
    if not since:
        raise blank("sinceDatetime")
    return {
        "requestId": call.request_id,
        "success": True,
        "nextPageToken": page_token(DATE_TOKEN, int(_since(since))),
    }


def _start(call: Call, token: str) -> int:
    """Index in the activity log of the first activity a token has not read."""
    log = call.state.activities
    try:
        since = page_offset(DATE_TOKEN, token)
    except SandboxError:
        position = page_offset(POSITION_TOKEN, token)
        first = log[0]["id"] if log else call.state.next_activity_id
        return max(0, position - first)
    return bisect.bisect_left(log, since, key=lambda a: a["at"])


def _id_filter(call: Call, name: str, limit: int, required: bool) -> set[int]:
    values = call.params.list(name)
    if not values:
        if required:
            raise blank(name)
        return set()
    if len(values) > limit:
        raise SandboxError("1003", f"Max {limit} {name} allowed, got {len(values)}")
    return set(ints(values, name))


def lead_activities(call: Call) -> dict[str, Any]:
    """Get Lead Activities: one page after the token, matching the type and lead filters."""
    token = call.params.get("nextPageToken")
    if not token:
        raise blank("nextPageToken")
    types = _id_filter(call, "activityTypeIds", MAX_TYPE_IDS, required=True)
    unknown = sorted(types - TYPE_IDS)
    if unknown:
        raise SandboxError("1003", f"Invalid activityTypeIds {unknown}")
    leads = _id_filter(call, "leadIds", MAX_LEAD_IDS, required=False)
    call.batch_size = len(leads) or None
    size = batch_size(call.params, call.config.lead_batch_max)
    log = call.state.activities
    index = _start(call, token)
    page: list[dict[str, Any]] = []
    while index < len(log) and len(page) < size:
        activity = log[index]
        index += 1
        if activity["activityTypeId"] in types and (not leads or activity["leadId"] in leads):
            page.append({k: v for k, v in activity.items() if k != "at"})
    after = log[index]["id"] if index < len(log) else call.state.next_activity_id
    return lead_envelope(
        call.request_id,
        page or None,  # Marketo leaves `result` out of an empty page
        nextPageToken=page_token(POSITION_TOKEN, after),
        moreResult=index < len(log),
    )


ROUTES: list[Route] = [
    route("activities.types", "GET", "/rest/v1/activities/types.json", activity_types),
    route("activities.pagingToken", "GET", "/rest/v1/activities/pagingtoken.json", paging_token),
    route("activities.list", "GET", "/rest/v1/activities.json", lead_activities),
]

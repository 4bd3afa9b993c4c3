"""Driving the Certain sandbox with simulated traffic: what registrants and staff do in Certain,
made through the sandbox's `/_sandbox/` admin routes instead of posted as change events.

The traffic simulator (`simulators.certain.traffic`) describes each step as the change event
Signal should end up with. Against the sandbox, Signal must *find* those changes itself by
polling, so each step becomes the action in Certain that causes it: a new registration is
created, a status moves, a session check-in is recorded, a registration is soft-deleted, an
event's details change, and a mass action moves many registrations with one `dateModified`.
What has no counterpart in Certain becomes what Certain can do instead: a repeated change is
nothing (Certain does not record the same edit twice), and an item a producer gets wrong becomes
one malformed record the sandbox serves (the poller must reject it with its reason).

`plan` is pure (the same items give the same operations); `drive_paced` performs them as they
fall due, like `send_paced` does for the ingest API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from simulators.certain.pacing import due_batches
from simulators.certain.traffic import (
    DUPLICATE,
    EVENT_CREATE,
    INACTIVE,
    INVALID,
    MASS_ACTION,
    REG_CREATE,
    REG_STATUS,
    SESSION_STATUS,
    SimChange,
)

_REGISTRATION_FIELDS = (
    "registrationStatusLabel",
    "attendeeTypeCode",
    "isTest",
    "isActive",
    "profile",
    "properties",
    "registrationQuestions",
)
"""What a registration step sets in the sandbox. `properties` (Complete, Badge printed, Invoice
generated, custom properties) is among them: flows select registrations by them (the demo's
`complete-form` on Complete or the tagged custom property), and a sandbox record without them
never activates such a flow."""
_EVENT_FIELDS = (
    "eventName",
    "eventStatus",
    "isTest",
    "startDate",
    "endDate",
    "timezone",
    "eventType",
    "eventQuestions",
)


@dataclass(frozen=True, slots=True)
class SandboxOp:
    """One admin call; `items` is how many simulated steps it stands for (a mass action is one
    call for many)."""

    method: str
    path: str
    body: dict[str, Any] | None
    items: int = 1


@dataclass
class DriveResult:
    """What the sandbox did with the traffic: operations applied or refused (with its message),
    duplicates that needed no action, malformed records queued."""

    items: int = 0
    applied: int = 0
    calls: int = 0
    duplicates: int = 0
    malformed: int = 0
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    """(method and path, HTTP status, the sandbox's message) for each refused call."""

    def merge(self, other: DriveResult) -> None:
        self.items += other.items
        self.applied += other.applied
        self.calls += other.calls
        self.duplicates += other.duplicates
        self.malformed += other.malformed
        self.refused.extend(other.refused)


@dataclass
class SandboxPlanner:
    """Turns traffic into admin operations. It remembers which registrations it created, so the
    first step for a registration creates it and later steps change it."""

    account: str
    created: set[tuple[str, str]] = field(default_factory=set)

    def plan(self, items: Sequence[SimChange]) -> tuple[list[SandboxOp], DriveResult]:
        """The operations for one due batch; consecutive mass-action steps that set the same
        status in the same event become one mass call."""
        ops: list[SandboxOp] = []
        skipped = DriveResult(items=len(items))
        mass: list[SimChange] = []
        for item in items:
            if MASS_ACTION in item.kinds and _is_known_status_change(item, self.created):
                if mass and not _same_mass(mass[0], item):
                    ops.extend(self._mass(mass))
                    mass = []
                mass.append(item)
                continue
            if mass:
                ops.extend(self._mass(mass))
                mass = []
            if DUPLICATE in item.kinds:
                skipped.duplicates += 1
            elif INVALID in item.kinds or not isinstance(item.body, dict):
                skipped.malformed += 1
                ops.append(SandboxOp("POST", "/_sandbox/faults", {"malformed": 1}))
            else:
                ops.extend(self._one(item.body, item.kinds))
        if mass:
            ops.extend(self._mass(mass))
        return ops, skipped

    def _one(self, body: dict[str, Any], kinds: frozenset[str]) -> Iterator[SandboxOp]:
        kind = body.get("type")
        event_code = str(body.get("eventCode"))
        if kind == EVENT_CREATE:
            yield self._event(body.get("event") or {}, event_code)
            return
        registration = body.get("registration") or {}
        code = str(registration.get("registrationCode"))
        fields = {k: registration[k] for k in _REGISTRATION_FIELDS if k in registration}
        known = (event_code, code) in self.created
        if not known:
            self.created.add((event_code, code))
            create = {"eventCode": event_code, "registrationCode": code, **fields}
            if INACTIVE in kinds:
                create["isActive"] = True  # soft-deleted below, as Certain staff would
            yield SandboxOp("POST", "/_sandbox/registrations", self._with_account(create))
        path = f"/_sandbox/registrations/{self.account}/{event_code}/{code}"
        if INACTIVE in kinds:
            yield SandboxOp("DELETE", path, None, items=0 if not known else 1)
        elif kind == SESSION_STATUS:
            session = body.get("session") or {}
            yield SandboxOp(
                "POST",
                "/_sandbox/session-registrations",
                self._with_account(
                    {
                        "eventCode": event_code,
                        "registrationCode": code,
                        "sessionCode": session.get("sessionCode"),
                        "regSessionStatus": session.get("regSessionStatus"),
                    }
                ),
                items=0 if not known else 1,
            )
        elif known:
            change = fields if kind == REG_CREATE else _status_only(fields)
            yield SandboxOp("PATCH", path, change)

    def _event(self, event: dict[str, Any], event_code: str) -> SandboxOp:
        body: dict[str, Any] = {"eventCode": event_code}
        body.update({k: event[k] for k in _EVENT_FIELDS if k in event})
        event_tags = (event.get("setup") or {}).get("eventTags")
        if isinstance(event_tags, list):
            body["tags"] = event_tags
        return SandboxOp("POST", "/_sandbox/events", self._with_account(body))

    def _mass(self, items: list[SimChange]) -> Iterator[SandboxOp]:
        first = items[0].body
        registration = first["registration"]
        yield SandboxOp(
            "POST",
            "/_sandbox/registrations/mass",
            self._with_account(
                {
                    "eventCode": first["eventCode"],
                    "set": {"registrationStatusLabel": registration["registrationStatusLabel"]},
                    "codes": [item.body["registration"]["registrationCode"] for item in items],
                }
            ),
            items=len(items),
        )

    def _with_account(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"accountCode": self.account, **body}


def _status_only(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k == "registrationStatusLabel"}


def _is_known_status_change(item: SimChange, created: set[tuple[str, str]]) -> bool:
    body = item.body
    if not isinstance(body, dict) or body.get("type") != REG_STATUS:
        return False
    registration = body.get("registration") or {}
    return (str(body.get("eventCode")), str(registration.get("registrationCode"))) in created


def _same_mass(first: SimChange, item: SimChange) -> bool:
    a, b = first.body, item.body
    return bool(
        a["eventCode"] == b["eventCode"]
        and a["registration"]["registrationStatusLabel"]
        == b["registration"]["registrationStatusLabel"]
    )


async def perform(
    session: aiohttp.ClientSession, base_url: str, ops: Iterable[SandboxOp]
) -> DriveResult:
    """Each operation in order; a refusal is recorded with the sandbox's message and the rest go
    on (a session move Certain would not allow is refused by the sandbox, as by Certain)."""
    result = DriveResult()
    for op in ops:
        result.calls += 1
        async with session.request(op.method, base_url.rstrip("/") + op.path, json=op.body) as rsp:
            if rsp.status < 300:
                result.applied += op.items
                continue
            try:
                message = str((await rsp.json()).get("message", ""))
            except (aiohttp.ContentTypeError, ValueError):
                message = (await rsp.text())[:200]
            result.refused.append((f"{op.method} {op.path}", rsp.status, message))
    return result


ProgressHook = Callable[[DriveResult], None]


async def drive_paced(
    items: Sequence[SimChange],
    base_url: str,
    *,
    account: str,
    session: aiohttp.ClientSession | None = None,
    stop: asyncio.Event | None = None,
    on_batch: ProgressHook | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DriveResult:
    """Perform the traffic in the sandbox as it falls due; a slow sandbox delays later steps
    rather than dropping them."""
    planner = SandboxPlanner(account)
    total = DriveResult()
    own = session is None
    http = session if session is not None else aiohttp.ClientSession()
    try:
        async for batch in due_batches(items, stop=stop, clock=clock):
            ops, skipped = planner.plan(batch)
            total.merge(skipped)
            total.merge(await perform(http, base_url, ops))
            if on_batch is not None:
                on_batch(total)
    finally:
        if own:
            await http.close()
    return total

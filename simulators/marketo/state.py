"""The sandbox's in-memory Marketo instance: lead database, campaigns, forms, programs with their
members, and what happened.

Tests read this directly (`Sandbox.state`); the admin routes serve the same data as JSON.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from simulators.marketo.config import (
    SandboxSeed,
    SeedCampaign,
    SeedChannel,
    SeedForm,
    SeedProgram,
    SeedProgressionStatus,
)
from simulators.marketo.program_seed import DEFAULT_CHANNELS, DEFAULT_PROGRAMS
from simulators.marketo.schema import (
    DEFAULT_CAMPAIGNS,
    DEFAULT_FORMS,
    SandboxField,
    build_schema,
    merge_by_id,
)
from simulators.marketo.wire import iso

FILL_OUT_FORM = 2
NEW_LEAD = 12
CHANGE_DATA_VALUE = 13
REQUEST_CAMPAIGN = 47
CHANGE_PROGRAM_STATUS = 104
"""Ids of the activity types the sandbox logs (served with names by `activities.py`)."""

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
DEFAULT_PARTITION = {"id": 1, "name": "Default", "description": "Initial system lead partition"}


class InvalidValue(ValueError):
    pass


def coerce(fld: SandboxField, value: Any) -> Any:
    """Validate and normalise one value for a field, as Marketo's type checks do."""
    if value is None:
        return None
    dtype = fld.dataType
    if dtype in ("string", "text", "phone", "url", "email"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidValue
        text = str(value)
        if fld.length is not None and len(text) > fld.length:
            raise InvalidValue
        if dtype == "email" and text and (not text.isascii() or not EMAIL_RE.match(text)):
            raise InvalidValue
        return text
    if dtype in ("integer", "reference"):
        if isinstance(value, bool):
            raise InvalidValue
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        raise InvalidValue
    if dtype in ("float", "currency"):
        if isinstance(value, bool):
            raise InvalidValue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise InvalidValue from None
        raise InvalidValue
    if dtype == "boolean":
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in (
            "true",
            "false",
            "1",
            "0",
            "yes",
            "no",
        ):
            return value.strip().lower() in ("true", "1", "yes")
        raise InvalidValue
    if dtype == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise InvalidValue from None
    if dtype == "datetime":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidValue from None
        return str(value)
    return value


def norm(fld_name: str, value: Any) -> str:
    """Index key: filter values arrive as strings; emails match case-insensitively."""
    text = str(value).strip()
    return text.lower() if fld_name == "email" else text


@dataclass
class SandboxCall:
    endpoint: str
    method: str
    path: str
    time: str
    at: float
    httpStatus: int
    success: bool | None
    code: str | None
    batchSize: int | None
    requestId: str | None
    durationMs: float
    clientId: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SandboxState:
    schema: dict[str, SandboxField]
    campaigns: dict[int, SeedCampaign]
    forms: dict[int, SeedForm]
    channels: dict[int, SeedChannel] = field(default_factory=dict)
    programs: dict[int, SeedProgram] = field(default_factory=dict)
    members: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    """program id -> lead id -> membership (status, step, success, dates)."""
    status_changes: list[dict[str, Any]] = field(default_factory=list)
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)
    campaign_runs: list[dict[str, Any]] = field(default_factory=list)
    form_fills: list[dict[str, Any]] = field(default_factory=list)
    calls: list[SandboxCall] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    """The activity log, oldest first (`log_activity`; served by `activities.py`)."""
    next_activity_id: int = 1
    activity_log_max: int = 200_000
    partitions: list[dict[str, Any]] = field(default_factory=lambda: [dict(DEFAULT_PARTITION)])
    next_id: int = 1
    _index: dict[str, dict[Any, set[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )
    _once: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def from_seed(cls, seed: SandboxSeed | None, now: float) -> SandboxState:
        seed = seed or SandboxSeed()
        state = cls(
            schema=build_schema(seed.fields),
            campaigns={
                c.id: c for c in merge_by_id(DEFAULT_CAMPAIGNS, seed.campaigns, seed.defaults)
            },
            forms={f.id: f for f in merge_by_id(DEFAULT_FORMS, seed.forms, seed.defaults)},
            channels={c.id: c for c in merge_by_id(DEFAULT_CHANNELS, seed.channels, seed.defaults)},
            programs={p.id: p for p in merge_by_id(DEFAULT_PROGRAMS, seed.programs, seed.defaults)},
        )
        channel_names = {c.name for c in state.channels.values()}
        for program in state.programs.values():
            if program.channel not in channel_names:
                raise ValueError(
                    f"seed program {program.id}: channel '{program.channel}' not found"
                    f" (channels: {', '.join(sorted(channel_names))})"
                )
        for n, lead in enumerate(seed.leads):
            state.insert(state.validated_seed_lead(n, lead), now)
        return state

    def validated_seed_lead(self, n: int, lead: dict[str, Any]) -> dict[str, Any]:
        """Seed leads pass the same type checks as synced ones, so a bad seed fails at start."""
        values: dict[str, Any] = {}
        for name, value in lead.items():
            fld = self.schema.get(name)
            if fld is None:
                raise ValueError(f"seed lead {n}: field '{name}' not found")
            try:
                values[name] = value if name == "id" else coerce(fld, value)
            except InvalidValue:
                raise ValueError(f"seed lead {n}: invalid value for field '{name}'") from None
        return values

    def replace_with(self, other: SandboxState) -> None:
        """Take over another state's contents, so references held by tests stay valid."""
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))

    def trim_calls(self, keep: int) -> None:
        """Bound the call log; trims a tenth at a time so steady load does not pay per call."""
        if len(self.calls) > keep:
            del self.calls[: len(self.calls) - keep + keep // 10]

    # -- lead database ------------------------------------------------------------------------

    def searchable(self, name: str) -> bool:
        fld = self.schema.get(name)
        return fld is not None and fld.searchable

    def find(self, name: str, value: Any) -> list[int]:
        if name == "id":
            try:
                lead_id = int(value)
            except (TypeError, ValueError):
                return []
            return [lead_id] if lead_id in self.leads else []
        return sorted(self._index[name].get(norm(name, value), set()))

    def _reindex(self, lead_id: int, old: dict[str, Any], new: dict[str, Any]) -> None:
        for name, fld in self.schema.items():
            if not fld.searchable or name == "id":
                continue
            if old.get(name) is not None:
                self._index[name][norm(name, old[name])].discard(lead_id)
            if new.get(name) is not None:
                self._index[name][norm(name, new[name])].add(lead_id)

    def insert(self, values: dict[str, Any], now: float, partition_id: int = 1) -> int:
        """Create a lead from already-validated REST-named values."""
        lead_id = int(values.pop("id", 0) or 0) or self.next_id
        self.next_id = max(self.next_id, lead_id + 1)
        lead = {k: v for k, v in values.items() if k in self.schema}
        lead.update(
            id=lead_id, createdAt=iso(now), updatedAt=iso(now), leadPartitionId=partition_id
        )
        lead["mktoName"] = self._full_name(lead)
        self.leads[lead_id] = lead
        self._reindex(lead_id, {}, lead)
        self.log_activity(
            NEW_LEAD, lead_id, now, primary_value=lead["mktoName"], Source_Type="Web service API"
        )
        return lead_id

    def update(self, lead_id: int, values: dict[str, Any], now: float) -> None:
        old = self.leads[lead_id]
        new = dict(old)
        new.update(values)
        new["updatedAt"] = iso(now)
        new["mktoName"] = self._full_name(new)
        self.leads[lead_id] = new
        self._reindex(lead_id, old, new)
        for name, value in values.items():
            if old.get(name) != value and name in self.schema:
                self.log_activity(
                    CHANGE_DATA_VALUE,
                    lead_id,
                    now,
                    primary_value=self.schema[name].displayName or name,
                    New_Value=value,
                    Old_Value=old.get(name),
                    Source="Web service API",
                )

    def delete(self, lead_id: int) -> bool:
        old = self.leads.pop(lead_id, None)
        if old is None:
            return False
        self._reindex(lead_id, old, {})
        return True

    @staticmethod
    def _full_name(lead: dict[str, Any]) -> str | None:
        parts = [p for p in (lead.get("firstName"), lead.get("lastName")) if p]
        return " ".join(str(p) for p in parts) or None

    def render(self, lead: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        """A lead as Marketo returns it: `id` always, nulls as null, unset booleans false."""
        out: dict[str, Any] = {"id": lead["id"]}
        for name in fields:
            if name == "id":
                continue
            value = lead.get(name)
            if value is None and self.schema[name].dataType == "boolean":
                value = False
            out[name] = value
        return out

    # -- activities ---------------------------------------------------------------------------

    def log_activity(
        self,
        type_id: int,
        lead_id: int,
        now: float,
        *,
        primary_id: int | None = None,
        primary_value: Any = None,
        campaign_id: int | None = None,
        **attributes: Any,
    ) -> None:
        """Append one activity as Get Lead Activities returns it (`at` kept for paging by date;
        attribute names with `_` for spaces). The log keeps `activity_log_max` entries, trimming
        a tenth at a time."""
        activity_id = self.next_activity_id
        self.next_activity_id += 1
        item: dict[str, Any] = {
            "id": activity_id,
            "marketoGUID": str(activity_id),
            "leadId": lead_id,
            "activityDate": iso(now),
            "activityTypeId": type_id,
        }
        if campaign_id is not None:
            item["campaignId"] = campaign_id
        if primary_id is not None:
            item["primaryAttributeValueId"] = primary_id
        if primary_value is not None:
            item["primaryAttributeValue"] = str(primary_value)
        item["attributes"] = [
            {"name": name.replace("_", " "), "value": value}
            for name, value in attributes.items()
            if value is not None
        ]
        item["at"] = now
        if len(self.activities) >= self.activity_log_max:
            del self.activities[: max(1, self.activity_log_max // 10)]
        self.activities.append(item)

    # -- campaigns ----------------------------------------------------------------------------

    def already_ran(self, campaign_id: int, lead_id: int) -> bool:
        return lead_id in self._once[campaign_id]

    def mark_ran(self, campaign_id: int, lead_id: int) -> None:
        self._once[campaign_id].add(lead_id)

    # -- programs -----------------------------------------------------------------------------

    def channel_of(self, program: SeedProgram) -> SeedChannel:
        return next(c for c in self.channels.values() if c.name == program.channel)

    def program_status(self, program: SeedProgram, name: str) -> SeedProgressionStatus | None:
        """The channel's status with that name (case-insensitive, as Marketo matches it)."""
        wanted = name.strip().lower()
        for status in self.channel_of(program).statuses:
            if status.name.lower() == wanted:
                return status
        return None

    def membership(self, program_id: int, lead_id: int) -> dict[str, Any] | None:
        return self.members.get(program_id, {}).get(lead_id)

    def set_member_status(
        self,
        program: SeedProgram,
        lead_id: int,
        status: SeedProgressionStatus,
        now: float,
        request_id: str,
    ) -> str:
        """Move a lead to `status`: "created" (new member), "updated", or "behind" when the lead
        already is in that status or past its step (Marketo moves members forward only)."""
        current = self.membership(program.id, lead_id)
        if current is not None and (
            current["statusName"] == status.name or current["step"] > status.step
        ):
            return "behind"
        if current is None and status.step == 0:
            return "behind"
        stamp = iso(now)
        record = {
            "leadId": lead_id,
            "programId": program.id,
            "statusName": status.name,
            "step": status.step,
            "reachedSuccess": bool(status.success or (current or {}).get("reachedSuccess")),
            "membershipDate": (current or {}).get("membershipDate", stamp),
            "updatedAt": stamp,
        }
        self.members.setdefault(program.id, {})[lead_id] = record
        self.log_activity(
            CHANGE_PROGRAM_STATUS,
            lead_id,
            now,
            primary_id=program.id,
            primary_value=program.name,
            New_Status=status.name,
            Old_Status=None if current is None else current["statusName"],
            Reason="Changed by Web service API",
            Success=str(record["reachedSuccess"]).lower(),
        )
        self.status_changes.append(
            {
                "programId": program.id,
                "leadId": lead_id,
                "from": None if current is None else current["statusName"],
                "to": status.name,
                "time": stamp,
                "at": now,
                "requestId": request_id,
            }
        )
        return "created" if current is None else "updated"

    # -- soap <-> rest -------------------------------------------------------------------------

    def rest_name_of_soap(self, soap: str) -> str | None:
        for fld in self.schema.values():
            if fld.soapName == soap:
                return fld.name
        return None

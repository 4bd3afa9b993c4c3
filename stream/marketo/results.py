"""Typed values the client hands back.

Record-level outcomes are values, never exceptions: one bad record in a batch of 300 must not hide
what happened to the other 299, and callers persist every outcome before acknowledging input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream.marketo.errors import FailureClass, MarketoFailure


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What became of the input at `index`.

    `status` is Marketo's own word (created, updated, skipped …) when Marketo answered for the
    record; None when the call carrying it failed as a whole.
    """

    index: int
    status: str | None
    lead_id: int | None = None
    failure: MarketoFailure | None = None
    request_id: str | None = None
    detail: str | None = None
    """Marketo's words for a record it answered but left as it was (`not_changed`)."""

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def failure_class(self) -> FailureClass | None:
        return None if self.failure is None else self.failure.kind


@dataclass(frozen=True, slots=True)
class LeadField:
    name: str
    display_name: str
    data_type: str
    length: int | None
    read_only: bool
    field_id: int | None = None

    @classmethod
    def from_describe(cls, item: Mapping[str, Any]) -> LeadField | None:
        rest = item.get("rest")
        if not isinstance(rest, Mapping) or not rest.get("name"):
            return None  # not usable over REST
        length = item.get("length")
        fid = item.get("id")
        return cls(
            name=str(rest["name"]),
            display_name=str(item.get("displayName") or rest["name"]),
            data_type=str(item.get("dataType") or "string"),
            length=int(length) if isinstance(length, int) else None,
            read_only=bool(rest.get("readOnly", False)),
            field_id=int(fid) if isinstance(fid, int) else None,
        )


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    type: str
    active: bool
    program_name: str | None = None
    program_id: int | None = None
    workspace_name: str | None = None
    description: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Campaign:
        pid = item.get("programId")
        return cls(
            id=int(item["id"]),
            name=str(item.get("name", "")),
            type=str(item.get("type", "")),
            active=bool(item.get("active", False)),
            program_name=item.get("programName"),
            program_id=int(pid) if isinstance(pid, int) else None,
            workspace_name=item.get("workspaceName"),
            description=item.get("description"),
        )


@dataclass(frozen=True, slots=True)
class Form:
    id: int
    name: str
    status: str | None = None
    url: str | None = None
    folder: Mapping[str, Any] | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Form:
        folder = item.get("folder")
        return cls(
            id=int(item["id"]),
            name=str(item.get("name", "")),
            status=item.get("status"),
            url=item.get("url"),
            folder=dict(folder) if isinstance(folder, Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class FormField:
    """A field on a form. `id` is the form's own (SOAP-style) name, e.g. `FirstName`."""

    id: str
    label: str | None
    data_type: str
    required: bool
    max_length: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rest_name(self) -> str:
        """The name Submit Form expects (REST style): `FirstName` → `firstName`."""
        return self.id[:1].lower() + self.id[1:] if self.id else self.id

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> FormField:
        ml = item.get("maxLength")
        return cls(
            id=str(item.get("id", "")),
            label=item.get("label"),
            data_type=str(item.get("dataType", "")),
            required=bool(item.get("required", False)),
            max_length=int(ml) if isinstance(ml, int) else None,
            raw=dict(item),
        )


@dataclass(frozen=True, slots=True)
class ProgressionStatus:
    """One status of a program's channel: members move only to a higher step."""

    name: str
    step: int
    success: bool = False
    hidden: bool = False

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ProgressionStatus:
        step = item.get("step")
        return cls(
            name=str(item.get("name", "")),
            step=int(step) if isinstance(step, int) and not isinstance(step, bool) else 0,
            success=bool(item.get("success", False)),
            hidden=bool(item.get("hidden", False)),
        )


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    statuses: tuple[ProgressionStatus, ...]
    id: int | None = None
    program_type: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Channel:
        raw = item.get("progressionStatuses")
        statuses = raw if isinstance(raw, list) else []
        cid = item.get("id")
        kind = item.get("applicableProgramType")
        return cls(
            name=str(item.get("name", "")),
            statuses=tuple(
                ProgressionStatus.from_api(s) for s in statuses if isinstance(s, Mapping)
            ),
            id=cid if isinstance(cid, int) else None,
            program_type=kind if isinstance(kind, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Program:
    id: int
    name: str
    type: str | None = None
    channel: str | None = None
    workspace: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Program:
        def text(key: str) -> str | None:
            value = item.get(key)
            return value if isinstance(value, str) else None

        return cls(
            id=int(item["id"]),
            name=str(item.get("name", "")),
            type=text("type"),
            channel=text("channel"),
            workspace=text("workspace"),
        )


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP call to Marketo, as `api_calls` records it. Never carries a secret."""

    connection_id: str
    endpoint: str
    method: str
    started_at: datetime
    duration_ms: float
    http_status: int | None
    marketo_error: str | None
    batch_size: int
    request_id: str | None
    failure_class: FailureClass | None = None
    attempt: int = 1

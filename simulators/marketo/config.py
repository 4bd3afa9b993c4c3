"""Start-up configuration of the Marketo sandbox: credentials, limits, clock and seed data.

Everything a test, demo or benchmark may want to vary lives here so the server itself has no
hidden knobs. The clock is injectable so token expiry, the rolling rate window, the daily quota
reset at US-Central midnight and outage windows can be exercised without waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr

Clock = Callable[[], float]
"""Returns the current time as POSIX seconds (like `time.time`)."""


class ManualClock:
    """A clock that only moves when told to; callable like `time.time`."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, now: float) -> None:
        self.now = now


DataType = Literal[
    "string",
    "text",
    "email",
    "phone",
    "url",
    "integer",
    "float",
    "currency",
    "boolean",
    "date",
    "datetime",
    "reference",
]


class SeedField(BaseModel):
    """An extra lead field (custom field) added to the default schema."""

    model_config = ConfigDict(extra="forbid")

    name: str
    displayName: str | None = None
    dataType: DataType = "string"
    length: int | None = 255
    readOnly: bool = False
    searchable: bool = False
    soapName: str | None = None


class SeedCampaign(BaseModel):
    """A smart campaign. `requestable` = has a "Campaign is Requested" / Web Service API trigger."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    type: Literal["trigger", "batch"] = "trigger"
    active: bool = True
    requestable: bool = True
    description: str = ""
    programName: str = "Signal Demo Program"
    programId: int = 1044
    workspaceName: str = "Default"
    qualificationRuleType: Literal["once", "any", "interval"] = "any"


class SeedFormField(BaseModel):
    """A form field, identified by its SOAP-style id (`FirstName`, `Email`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    label: str = ""
    dataType: str = "text"
    required: bool = False
    maxLength: int | None = 255
    values: list[dict[str, Any]] | None = None


class SeedForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    status: Literal["approved", "approved with draft", "draft"] = "approved"
    folderId: int = 12
    folderName: str = "Forms"
    programId: int | None = 1044
    description: str = ""
    fields: list[SeedFormField] = Field(default_factory=list)


class SeedProgressionStatus(BaseModel):
    """One status of a channel's progression. Members only move to a higher step (or to another
    status of the same step); `success` marks the statuses that count as program success."""

    model_config = ConfigDict(extra="forbid")

    name: str
    step: int
    success: bool = False
    hidden: bool = False
    description: str = ""


class SeedChannel(BaseModel):
    """A program channel (Webinar, Live Event …) and its progression statuses."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    applicableProgramType: str = "event"
    statuses: list[SeedProgressionStatus] = Field(default_factory=list)


class SeedProgram(BaseModel):
    """A program; its statuses are those of its channel (named by `channel`)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str
    type: str = "Event"
    channel: str = "Webinar"
    description: str = ""
    workspace: str = "Default"
    folderId: int = 15
    folderName: str = "Events"


class SandboxSeed(BaseModel):
    """Seed data; campaigns, forms, channels and programs merge over the defaults by id unless
    `defaults` is off."""

    model_config = ConfigDict(extra="forbid")

    defaults: bool = True
    fields: list[SeedField] = Field(default_factory=list)
    leads: list[dict[str, Any]] = Field(default_factory=list)
    campaigns: list[SeedCampaign] = Field(default_factory=list)
    forms: list[SeedForm] = Field(default_factory=list)
    channels: list[SeedChannel] = Field(default_factory=list)
    programs: list[SeedProgram] = Field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> SandboxSeed:
        """Read a seed from a JSON or YAML file (YAML is a superset, so one parser serves both)."""
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        return cls.model_validate(data or {})


class SandboxConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    instance_id: str = "123-ABC-456"
    client_id: str = "sandbox-client"
    client_secret: SecretStr = SecretStr("sandbox-secret")
    extra_clients: dict[str, SecretStr] = Field(default_factory=dict)
    scope: str = "apis@sandbox.example.com"
    token_lifetime_s: int = 3600
    rate_limit_calls: int = 100
    rate_limit_window_s: float = 20.0
    max_concurrent: int = 10
    daily_quota: int = 50000
    quota_timezone: str = "America/Chicago"
    latency_ms: float = 0
    max_body_bytes: int = 1_048_576
    max_uri_bytes: int = 8192
    max_filter_matches: int = 1000
    lead_batch_max: int = 300
    campaign_leads_max: int = 100
    campaign_tokens_max: int = 100
    call_log_max: int = 100_000
    seed: SandboxSeed | None = None
    clock: Clock = Field(default=time.time, exclude=True)

    def clients(self) -> dict[str, str]:
        """client_id -> secret for every accepted API user."""
        out = {cid: s.get_secret_value() for cid, s in self.extra_clients.items()}
        out[self.client_id] = self.client_secret.get_secret_value()
        return out

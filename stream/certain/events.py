"""Change events: the input contract between Certain and Signal (DESIGN 4.2).

The wire format is Certain's: JSON with camelCase keys. Attributes are snake_case in Python and
every model validates and serialises by its camelCase alias only, so a snake_case key in the JSON
is not mistaken for a field (it is kept as an unknown extra instead).

Certain adds fields over time, so unknown keys are tolerated everywhere and kept: they survive a
round trip through `ChangeEvent.to_json_dict()` and are visible to mappings by their dotted path.

Custom registration properties travel in `registration.properties.custom` as
`{property name: bool}`, the name being the one used in the event setup's `customProperties`.
A property counts as *set* when its value is `true`. Other unknown keys inside `properties` are
kept but carry no meaning for activation.

Session and event dates are open strings: Certain sends event dates in the event's own timezone
(given separately in `timezone`) and session dates in more than one format, and Signal only
passes them on. `occurredAt` is different: it orders changes, so it must be timezone-aware.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from config.models import Source

ChangeType = Source
"""The four change types are exactly the four flow sources."""


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "expected a non-empty code")
    return value


Code = Annotated[
    str,
    AfterValidator(_not_blank),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": "\\S"}),
]
"""Certain business keys (change id, event, registration, session codes): never blank."""

QuestionValue = str | int | float | bool | None


def _timestamp_only(value: Any) -> Any:
    """Numbers would otherwise be read as epoch seconds; Certain sends ISO 8601 text."""
    if isinstance(value, bool | int | float):
        raise PydanticCustomError(
            "timestamp_type",
            "expected an ISO 8601 timestamp with a timezone (e.g. 2026-11-28T12:00:00Z)",
        )
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_only)]


class CertainModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="allow",
        frozen=True,
    )


# --- registration ------------------------------------------------------------------------------


class Address(CertainModel):
    line1: str | None = None
    line2: str | None = None
    line3: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None


class Profile(CertainModel):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    organization: str | None = None
    position: str | None = None
    phone: str | None = None
    address: Address | None = None


class RegistrationProperties(CertainModel):
    """Standard properties (automatic tags of the same name) plus the event's custom ones."""

    complete: StrictBool = False
    badge_printed: StrictBool = False
    on_to_do_list: StrictBool = False
    invoice_generated: StrictBool = False
    custom: dict[str, StrictBool] = Field(default_factory=dict)


class QuestionAnswer(CertainModel):
    question_code: Code
    answers: list[str] = Field(default_factory=list)


class Registration(CertainModel):
    registration_code: Code
    attendee_type_code: str | None = None
    registration_status_label: str | None = None
    previous_status_label: str | None = None
    is_test: StrictBool = False
    is_active: StrictBool = True
    properties: RegistrationProperties = Field(default_factory=RegistrationProperties)
    profile: Profile = Field(default_factory=Profile)
    registration_questions: list[QuestionAnswer] = Field(default_factory=list)


# --- session -----------------------------------------------------------------------------------


class Session(CertainModel):
    session_code: Code
    session_name: str | None = None
    instance_id: str | int | None = None
    reg_session_status: str | None = None
    previous_reg_session_status: str | None = None
    start_date: str | None = None
    end_date: str | None = None


# --- event -------------------------------------------------------------------------------------


class StatusSetup(CertainModel):
    """A registration status as the event defines it (standard or custom) and its tags."""

    label: Code
    classification: str | None = None
    tags: list[str] = Field(default_factory=list)


class CustomPropertySetup(CertainModel):
    name: Code
    tags: list[str] = Field(default_factory=list)


class AttendeeTypeSetup(CertainModel):
    code: Code
    tags: list[str] = Field(default_factory=list)


class QuestionSetup(CertainModel):
    code: Code
    tags: list[str] = Field(default_factory=list)


class EventSetup(CertainModel):
    """Event-level tag assignments (Plan > Event Setup in Certain)."""

    statuses: list[StatusSetup] = Field(default_factory=list)
    custom_properties: list[CustomPropertySetup] = Field(default_factory=list)
    attendee_types: list[AttendeeTypeSetup] = Field(default_factory=list)
    registration_questions: list[QuestionSetup] = Field(default_factory=list)
    event_tags: list[str] = Field(default_factory=list)


class Event(CertainModel):
    event_code: Code | None = None
    event_name: str | None = None
    event_status: str | None = None
    is_test: StrictBool = False
    start_date: str | None = None
    end_date: str | None = None
    timezone: str | None = None
    event_type: str | None = None
    event_questions: dict[str, QuestionValue] = Field(default_factory=dict)
    setup: EventSetup = Field(default_factory=EventSetup)


# --- the envelope ------------------------------------------------------------------------------


REQUIRED_PARTS: dict[Source, tuple[str, ...]] = {
    Source.REGISTRATION_CREATE_UPDATE: ("registration",),
    Source.REGISTRATION_STATUS_CHANGE: ("registration", "registration.registrationStatusLabel"),
    Source.SESSION_REGISTRATION_STATUS_CHANGE: (
        "registration",
        "session",
        "session.regSessionStatus",
    ),
    Source.EVENT_CREATE_UPDATE: ("event",),
}
"""What each change type must carry, by JSON path: a status change without its new status, or a
session change without the session, cannot be matched against any flow."""


class ChangeEvent(CertainModel):
    change_id: Code = Field(description="Idempotency key: the same change twice is processed once.")
    type: ChangeType
    account_code: Code
    event_code: Code
    occurred_at: Timestamp
    registration: Registration | None = None
    session: Session | None = None
    event: Event | None = None

    @model_validator(mode="after")
    def _parts_for_type(self) -> ChangeEvent:
        for path in REQUIRED_PARTS[self.type]:
            if _lookup_attr(self, path) is None:
                raise PydanticCustomError(
                    "part_missing",
                    "{path} is required for {type} changes",
                    {"path": path, "type": self.type.value},
                )
        if (
            self.event is not None
            and self.event.event_code is not None
            and self.event.event_code != self.event_code
        ):
            raise PydanticCustomError(
                "event_code_mismatch",
                "event.eventCode '{inner}' differs from the envelope eventCode '{outer}'",
                {
                    "path": "event.eventCode",
                    "inner": self.event.event_code,
                    "outer": self.event_code,
                },
            )
        return self

    @property
    def registration_code(self) -> str | None:
        return self.registration.registration_code if self.registration else None

    @property
    def is_registration_change(self) -> bool:
        return self.type is not Source.EVENT_CREATE_UPDATE

    def to_json_dict(self) -> dict[str, Any]:
        """The change as JSON-ready data, camelCase, unknown fields included."""
        return self.model_dump(mode="json", by_alias=True)


def _lookup_attr(model: BaseModel, path: str) -> Any:
    """Follow a camelCase JSON path through models (used for the per-type required parts)."""
    value: Any = model
    for key in path.split("."):
        if value is None:
            return None
        value = getattr(value, _snake(key), None)
    return value


@lru_cache(maxsize=256)
def _snake(name: str) -> str:
    """`name` in snake_case; cached, as every change of a type looks up the same few parts."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)

"""The account configuration: tags, assignments, connections, mappings, flows and the Certain
accounts polled for changes (DESIGN 4.5).

These models describe *shape* only. Whether references resolve (a flow's mapping exists, a tag may
be applied to that object kind …) is checked in `config.validation`, and whether a flow is ready to
run in `config.completeness`: the guide lets an operator save a flow half-built, so an incomplete
flow must still load, round-trip and show its reasons.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic import Tag as UnionTag

Identifier = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][\w.\-]*$"
    ),
]
"""Ids and tag names: stable keys used in references and URLs, so no spaces or punctuation."""

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Strict(BaseModel):
    """Unknown keys are mistakes (a typo such as `mapings:` would otherwise vanish silently)."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class ObjectKind(StrEnum):
    """What a tag may be applied to (Account Settings > Management > Tags)."""

    REGISTRATION_STATUS = "registration_status"
    CUSTOM_REGISTRATION_PROPERTY = "custom_registration_property"
    ATTENDEE_TYPE = "attendee_type"
    EVENT = "event"
    REGISTRATION_QUESTION = "registration_question"
    SESSION_REGISTRATION_STATUS = "session_registration_status"
    EVENT_STATUS = "event_status"


class StandardProperty(StrEnum):
    """Standard registration properties; each carries an automatic tag of the same name."""

    COMPLETE = "Complete"
    BADGE_PRINTED = "Badge Printed"
    ON_TO_DO_LIST = "On To Do List"
    INVOICE_GENERATED = "Invoice Generated"
    TEST = "Test"


class Source(StrEnum):
    """What a flow watches for (the change types of DESIGN 4.2)."""

    REGISTRATION_CREATE_UPDATE = "registration.create_update"
    REGISTRATION_STATUS_CHANGE = "registration.status_change"
    SESSION_REGISTRATION_STATUS_CHANGE = "session_registration.status_change"
    EVENT_CREATE_UPDATE = "event.create_update"


class Mode(StrEnum):
    LIVE = "live"
    TEST = "test"


class Action(StrEnum):
    TRIGGER_CAMPAIGN = "trigger_campaign"
    CREATE_UPDATE_LEAD = "create_update_lead"
    FORM_POST = "form_post"
    UPDATE_PROGRAM_STATUS = "update_program_status"


CAMPAIGN_ACTIONS = frozenset({Action.TRIGGER_CAMPAIGN, Action.CREATE_UPDATE_LEAD})
"""Actions that need a campaign id (guide: "Campaign ID")."""


class Transform(StrEnum):
    LOWER = "lower"
    PROPER = "proper"
    UPPER = "upper"
    TRIM = "trim"


class FilterOp(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    IN = "in"
    IS_EMPTY = "is_empty"
    IS_NOT_EMPTY = "is_not_empty"


# --- tags --------------------------------------------------------------------------------------


class Tag(Strict):
    name: Identifier
    label: NonEmpty
    objects: list[ObjectKind] = Field(min_length=1)


class Assignments(Strict):
    """Account-level tag assignments: item label → tag names.

    Event-level assignments (custom statuses, attendee types, questions …) arrive with each
    event's setup in `event.create_update` changes and live in the catalog, not here.
    """

    registration_statuses: dict[str, list[Identifier]] = Field(default_factory=dict)
    session_registration_statuses: dict[str, list[Identifier]] = Field(default_factory=dict)
    event_statuses: dict[str, list[Identifier]] = Field(default_factory=dict)

    @staticmethod
    def kind_of(field_name: str) -> ObjectKind:
        return _ASSIGNMENT_KINDS[field_name]


_ASSIGNMENT_KINDS = {
    "registration_statuses": ObjectKind.REGISTRATION_STATUS,
    "session_registration_statuses": ObjectKind.SESSION_REGISTRATION_STATUS,
    "event_statuses": ObjectKind.EVENT_STATUS,
}


# --- connections -------------------------------------------------------------------------------


class Connection(Strict):
    """How to reach one Marketo instance (guide: "Setting up a Connection")."""

    id: Identifier
    name: NonEmpty
    target: Literal["marketo"] = "marketo"
    service_url: AnyHttpUrl
    auth_type: Literal["oauth2"] = "oauth2"
    grant_type: Literal["client_credentials"] = "client_credentials"
    client_id: NonEmpty | None = None
    client_secret: SecretStr | None = Field(default=None, exclude=True)
    client_secret_ref: str | None = Field(
        default=None,
        description="Environment variable the secret came from; exported instead of it.",
    )
    access_token_url: AnyHttpUrl | None = None
    refresh_token_url: AnyHttpUrl | None = None
    test_connection_url: AnyHttpUrl | None = None
    scope: str | None = None
    force_update: bool = False
    primary: bool = False
    rate_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Share of the instance's 100 calls / 20 s this connection may use.",
    )
    max_in_flight: int = Field(default=10, ge=1, le=10)

    @property
    def base_url(self) -> str:
        return str(self.service_url).rstrip("/")

    @property
    def token_url(self) -> str:
        if self.access_token_url is not None:
            return str(self.access_token_url)
        return f"{self.base_url}/identity/oauth/token"


# --- Certain sources ---------------------------------------------------------------------------

POLL_INTERVAL_BOUNDS_S = (1.0, 3600.0)
"""How often a Certain source may poll: from every second (demos, tests) to hourly."""
REQUEST_BUDGET_BOUNDS = (1, 6000)
"""Requests per minute a Certain source may make: Certain's limits are per account."""


class EventsByTag(Strict):
    """The account's active events that carry this event tag (Certain's event tags)."""

    tag: NonEmpty


def _one_events_value(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One clear error instead of one per union member ('all', a list, {tag: …})."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(
            "expected 'all' (every active event), a list of event codes, or {tag: NAME} "
            f"(the active events carrying that event tag), got {value!r}"
        ) from None


CertainEvents = Annotated[
    Literal["all"] | Annotated[list[NonEmpty], Field(min_length=1)] | EventsByTag,
    WrapValidator(_one_events_value),
]


def _one_start_value(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(
            "expected 'now' or an ISO 8601 timestamp with a timezone "
            f"(e.g. 2026-11-28T12:00:00Z), got {value!r}"
        ) from None


StartPoint = Annotated[Literal["now"] | AwareDatetime, WrapValidator(_one_start_value)]


class CertainSource(Strict):
    """A Certain account Signal polls for registration changes (reference/certain-data.md §3).

    `host` is the account's Certain URL (`https://app.certain.com`, `https://appeu.certain.com`
    or any other); the REST base `certainExternal/service/v1` is added to it. The password is a
    secret with the rules of a connection's client secret: `${VAR}` from an allow-listed
    variable (`password_ref` keeps the name), or given literally and kept outside the database;
    never exported, never logged, bound to the host and username it was entered for.
    """

    id: Identifier
    name: NonEmpty
    host: AnyHttpUrl
    account_code: Identifier
    username: NonEmpty
    password: SecretStr | None = Field(default=None, exclude=True)
    password_ref: str | None = Field(
        default=None,
        description="Environment variable the password came from; exported instead of it.",
    )
    events: CertainEvents = "all"
    poll_interval_s: float = Field(
        default=30.0, ge=POLL_INTERVAL_BOUNDS_S[0], le=POLL_INTERVAL_BOUNDS_S[1]
    )
    start: StartPoint = Field(
        default="now",
        description="Where a new source starts: 'now', or changes modified after a timestamp.",
    )
    request_budget_per_minute: int = Field(
        default=60, ge=REQUEST_BUDGET_BOUNDS[0], le=REQUEST_BUDGET_BOUNDS[1]
    )
    active: bool = True

    @property
    def base_url(self) -> str:
        """The REST base every call of this source starts with."""
        return f"{str(self.host).rstrip('/')}/certainExternal/service/v1"


# --- mappings ----------------------------------------------------------------------------------

DEFAULT_REQUIRED_TARGETS = frozenset({"email", "firstName", "lastName"})
"""Guide: "By default, only First Name, Last Name, and Email are mandatory"."""


class FieldMapping(Strict):
    target: NonEmpty
    sources: list[NonEmpty] = Field(default_factory=list)
    separator: str = " "
    transforms: list[Transform] = Field(default_factory=list)
    required: bool | None = Field(
        default=None,
        description="Unset means the default: required for email, firstName, lastName.",
    )

    @property
    def is_required(self) -> bool:
        if self.required is not None:
            return self.required
        return self.target in DEFAULT_REQUIRED_TARGETS


class Mapping(Strict):
    id: Identifier
    name: NonEmpty
    fields: list[FieldMapping] = Field(default_factory=list)


# --- flows -------------------------------------------------------------------------------------


class ActivateFor(Strict):
    """Tags per object kind that make a flow act on a change (DESIGN 5, "Activate for")."""

    registration_statuses: list[Identifier] = Field(default_factory=list)
    custom_registration_properties: list[Identifier] = Field(default_factory=list)
    standard_properties: list[StandardProperty] = Field(default_factory=list)
    session_registration_statuses: list[Identifier] = Field(default_factory=list)
    event_statuses: list[Identifier] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)


ACTIVATE_FOR_KINDS: dict[str, ObjectKind | None] = {
    "registration_statuses": ObjectKind.REGISTRATION_STATUS,
    "custom_registration_properties": ObjectKind.CUSTOM_REGISTRATION_PROPERTY,
    "standard_properties": None,
    "session_registration_statuses": ObjectKind.SESSION_REGISTRATION_STATUS,
    "event_statuses": ObjectKind.EVENT_STATUS,
}
"""The tag kind each activate-for list draws from (standard properties carry automatic tags)."""


def _one_filter_value(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One clear error instead of one per union member (str, int, float, bool, list)."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(
            f"expected a string, number, boolean or list of strings, got {value!r}"
        ) from None


FilterValue = Annotated[
    str | int | float | bool | list[str] | None, WrapValidator(_one_filter_value)
]


class FieldFilter(Strict):
    """A rule on an event or profile field, by dotted path into the change (e.g. `event.tags`)."""

    field: NonEmpty
    op: FilterOp
    value: FilterValue = None


class AttendeeTypeFilter(Strict):
    """Holds when the registration's attendee type carries any of these tags."""

    attendee_type_tags: list[Identifier] = Field(min_length=1)


def _filter_kind(value: Any) -> str:
    """Pick the filter shape by its keys, so a mistake is reported against one shape only."""
    if isinstance(value, AttendeeTypeFilter):
        return FILTER_TAG_ATTENDEE_TYPE
    if isinstance(value, dict) and "attendee_type_tags" in value:
        return FILTER_TAG_ATTENDEE_TYPE
    return FILTER_TAG_FIELD


FILTER_TAG_FIELD = "field_filter"
FILTER_TAG_ATTENDEE_TYPE = "attendee_type_filter"

Filter = Annotated[
    Annotated[FieldFilter, UnionTag(FILTER_TAG_FIELD)]
    | Annotated[AttendeeTypeFilter, UnionTag(FILTER_TAG_ATTENDEE_TYPE)],
    Discriminator(_filter_kind),
]


class CampaignRule(Strict):
    """Event question wins when the event has a value for it; else the flow's campaign id."""

    event_question: NonEmpty | None = None
    campaign_id: int | None = Field(default=None, gt=0)


class FormRule(Strict):
    form_id: int = Field(gt=0)
    form_url: AnyHttpUrl | None = None
    program_id: int | None = Field(default=None, gt=0)


class ProgramRule(Strict):
    """The Marketo program a registration's status goes to, and which status.

    Like the campaign id, the event question wins when the event has a value for it; otherwise
    the flow's program id. `statuses` maps the change's status tags (registration status tags,
    or session registration status tags for session flows) to the program's status names."""

    event_question: NonEmpty | None = None
    program_id: int | None = Field(default=None, gt=0)
    statuses: dict[Identifier, NonEmpty] = Field(
        default_factory=dict,
        description="Status tag → the program's status name (e.g. att → Attended).",
    )


class Destination(Strict):
    name: NonEmpty | None = None
    connection: Identifier | None = None
    action: Action | None = None
    mapping: Identifier | None = None
    campaign: CampaignRule | None = None
    form: FormRule | None = None
    program: ProgramRule | None = None
    tokens: dict[NonEmpty, NonEmpty] = Field(
        default_factory=dict, description="Marketo program token ({{my.x}}) → source path."
    )
    lookup_field: NonEmpty = "email"


class Flow(Strict):
    id: Identifier
    name: NonEmpty
    mode: Mode = Mode.TEST
    active: bool = False
    source: Source | None = None
    activate_for: ActivateFor = Field(default_factory=ActivateFor)
    filters: list[Filter] = Field(default_factory=list)
    destination: Destination = Field(default_factory=Destination)


# --- the account -------------------------------------------------------------------------------


class Account(Strict):
    account: NonEmpty
    tags: list[Tag] = Field(default_factory=list)
    assignments: Assignments = Field(default_factory=Assignments)
    connections: list[Connection] = Field(default_factory=list)
    mappings: list[Mapping] = Field(default_factory=list)
    flows: list[Flow] = Field(default_factory=list)
    certain_sources: list[CertainSource] = Field(default_factory=list)

    def tag(self, name: str) -> Tag | None:
        return next((t for t in self.tags if t.name == name), None)

    def connection(self, connection_id: str) -> Connection | None:
        return next((c for c in self.connections if c.id == connection_id), None)

    def certain_source(self, source_id: str) -> CertainSource | None:
        return next((s for s in self.certain_sources if s.id == source_id), None)

    def mapping(self, mapping_id: str) -> Mapping | None:
        return next((m for m in self.mappings if m.id == mapping_id), None)

    def flow(self, flow_id: str) -> Flow | None:
        return next((f for f in self.flows if f.id == flow_id), None)


ACCOUNT_ADAPTER: TypeAdapter[Account] = TypeAdapter(Account)

"""What became of one (change, flow) pair before anything is sent (DESIGN 1, "outcome").

Exactly one of four values, each carrying what an operator needs to understand it: why a flow did
not act, which filter rule stopped it, what would be sent, or which field made the data unusable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from config.models import Action, AttendeeTypeFilter, Filter


class NotActivatedCode(StrEnum):
    """Why a flow did not act. An item with no tag at all is not here: it is a `DataFailure`
    (DESIGN 5), held for the operator to tag and resubmit."""

    SOURCE = "source"
    ACCOUNT = "account"
    MODE = "mode"
    INACTIVE_REGISTRATION = "inactive_registration"
    UNKNOWN_EVENT = "unknown_event"
    NO_MATCHING_TAG = "no_matching_tag"


@dataclass(frozen=True)
class NotActivated:
    reason: str
    code: NotActivatedCode
    tags_found: tuple[str, ...] = ()
    status: ClassVar[str] = "not_activated"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code.value,
            "reason": self.reason,
            "tags_found": list(self.tags_found),
        }


@dataclass(frozen=True)
class FilteredOut:
    rule_index: int
    rule: Filter
    actual_value: Any
    status: ClassVar[str] = "filtered_out"

    @property
    def reason(self) -> str:
        return f"filter {self.rule_index + 1} does not hold: {describe_rule(self.rule)} " + (
            f"(found {self.actual_value!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "rule_index": self.rule_index,
            "rule": self.rule.model_dump(mode="json"),
            "actual_value": self.actual_value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Mapped:
    """A change ready to deliver: the Marketo fields, tokens and where they go."""

    payload: dict[str, str]
    campaign_id: int | None
    form_id: int | None
    tokens: dict[str, str]
    lookup_field: str
    action: Action
    connection_id: str
    program_id: int | None = None
    program_status: str | None = None
    """update_program_status: the program and the status name this change sets."""
    status: ClassVar[str] = "mapped"

    @property
    def reason(self) -> str:
        target = (
            f"program {self.program_id}: {self.program_status}"
            if self.program_id is not None and self.program_status is not None
            else f"campaign {self.campaign_id}"
            if self.campaign_id is not None
            else f"form {self.form_id}"
            if self.form_id is not None
            else self.connection_id
        )
        return f"{self.action.value} → {target}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "payload": dict(self.payload),
            "campaign_id": self.campaign_id,
            "form_id": self.form_id,
            "tokens": dict(self.tokens),
            "lookup_field": self.lookup_field,
            "action": self.action.value,
            "connection_id": self.connection_id,
            "program_id": self.program_id,
            "program_status": self.program_status,
        }


@dataclass(frozen=True)
class DataFailure:
    """The data (or the flow's setup) cannot produce a delivery; never retried automatically."""

    field: str
    reason: str
    status: ClassVar[str] = "data_failure"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "field": self.field, "reason": self.reason}


Evaluation = NotActivated | FilteredOut | Mapped | DataFailure


def describe_rule(rule: Filter) -> str:
    if isinstance(rule, AttendeeTypeFilter):
        return f"attendee type tagged {' or '.join(rule.attendee_type_tags)}"
    op = rule.op.value.replace("_", " ")
    if rule.value is None:
        return f"{rule.field} {op}"
    return f"{rule.field} {op} {rule.value!r}"

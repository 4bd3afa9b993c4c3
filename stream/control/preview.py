"""Preview Mapping: what a flow would send to Marketo for real registrations, field by field.

For each change (the N most recent archived changes the flow watches, or one pasted by the
operator) the preview shows the flow's decision with the current configuration and catalog
(not activated and why, filtered out, data failure, or the payload it would send) and, for every
target field of the flow's mapping, its sources, their raw values, the transforms and the value
that results, flagging a required field that came out empty. Nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.models import Account, Flow
from stream.certain.events import ChangeEvent
from stream.control.redrive import parse_archived
from stream.core.catalog import EventCatalog
from stream.core.context import build_context
from stream.core.evaluate import evaluate_in
from stream.core.mapping import field_value
from stream.core.results import DataFailure, Evaluation, Mapped
from stream.store import ChangeRow, Store

MAX_LIMIT = 100


@dataclass
class FieldPreview:
    target: str
    sources: list[dict[str, str]]
    separator: str
    transforms: list[str]
    value: str
    required: bool
    failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "sources": self.sources,
            "separator": self.separator,
            "transforms": self.transforms,
            "value": self.value,
            "required": self.required,
            "failure": self.failure,
        }


@dataclass
class ChangePreview:
    change_id: str
    registration_code: str | None
    event_code: str | None
    occurred_at: str
    outcome: dict[str, Any]
    fields: list[FieldPreview] = field(default_factory=list)
    payload: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "registration_code": self.registration_code,
            "event_code": self.event_code,
            "occurred_at": self.occurred_at,
            "outcome": self.outcome,
            "payload": self.payload,
            "fields": [f.to_dict() for f in self.fields],
        }


def outcome_dict(evaluation: Evaluation) -> dict[str, Any]:
    data = evaluation.to_dict()
    if isinstance(evaluation, Mapped):
        data["status"] = "would_send"
    elif isinstance(evaluation, DataFailure):
        data["status"] = "data_failure"
    data["reason"] = evaluation.reason
    return data


def preview_change(
    change: ChangeEvent, flow: Flow, account: Account, catalog: EventCatalog
) -> ChangePreview:
    """The flow's decision for one change and the mapped value of each of its target fields."""
    ctx = build_context(change, account, catalog)
    evaluation = evaluate_in(ctx, flow)
    preview = ChangePreview(
        change_id=change.change_id,
        registration_code=change.registration_code,
        event_code=change.event_code,
        occurred_at=change.occurred_at.isoformat(),
        outcome=outcome_dict(evaluation),
        payload=dict(evaluation.payload) if isinstance(evaluation, Mapped) else None,
    )
    mapping_id = flow.destination.mapping
    mapping = account.mapping(mapping_id) if mapping_id else None
    if mapping is None:
        return preview
    for target in mapping.fields:
        value = field_value(target, ctx)
        empty = not value.strip()
        failure = None
        if empty and target.is_required:
            sources = ", ".join(target.sources) or "no source fields"
            failure = f"required field {target.target!r} is empty (from {sources})"
        preview.fields.append(
            FieldPreview(
                target=target.target,
                sources=[{"path": p, "value": ctx.text(p)} for p in target.sources],
                separator=target.separator,
                transforms=[str(getattr(t, "value", t)) for t in target.transforms],
                value="" if empty else value,
                required=target.is_required,
                failure=failure,
            )
        )
    return preview


async def recent_changes(store: Store, change_type: str, limit: int) -> list[ChangeRow]:
    """The `limit` most recently occurred archived changes of one type, newest first."""
    limit = max(1, min(limit, MAX_LIMIT))
    sql = (
        "SELECT change_id FROM change_log WHERE type = ? "
        "ORDER BY occurred_at DESC, received_at DESC, change_id DESC LIMIT ?"
    )
    rows = await store.read(lambda con: con.execute(sql, [change_type, limit]).fetchall())
    ids = [str(r[0]) for r in rows]
    found = await store.get_changes(ids)
    return [found[i] for i in ids if i in found]


async def preview_recent(
    store: Store, flow: Flow, account: Account, catalog: EventCatalog, limit: int
) -> tuple[list[ChangePreview], list[str]]:
    """Previews of the flow's most recent archived changes, and the changes that no longer
    parse (named, not dropped)."""
    if flow.source is None:
        return [], ["the flow has no source, so no archived change applies to it"]
    previews: list[ChangePreview] = []
    problems: list[str] = []
    for row in await recent_changes(store, flow.source.value, limit):
        parsed = parse_archived(row)
        if isinstance(parsed, str):
            problems.append(f"{row.change_id}: {parsed}")
        else:
            previews.append(preview_change(parsed, flow, account, catalog))
    return previews, problems

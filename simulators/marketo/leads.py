"""Lead-database endpoints: sync, push, filter search, get by id, describe, delete, partitions.

Record-level outcomes come back one per input, in input order; a skipped record carries
`reasons` and no `id`, which is how Marketo lets a client map results by position.
"""

from __future__ import annotations

from typing import Any

from simulators.marketo.routes import Call, Route, route
from simulators.marketo.schema import DEFAULT_LEAD_FIELDS
from simulators.marketo.state import InvalidValue, SandboxState, coerce
from simulators.marketo.wire import (
    SandboxError,
    batch_size,
    blank,
    lead_envelope,
    page_offset,
    page_token,
    skipped,
)

ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")


def _inputs(call: Call, data: dict[str, Any]) -> list[Any]:
    inputs = data.get("input")
    if inputs is None or inputs == []:
        raise blank("input")
    if not isinstance(inputs, list):
        raise SandboxError("1003", "Invalid value for 'input'")
    call.batch_size = len(inputs)
    limit = call.config.lead_batch_max
    if len(inputs) > limit:
        raise SandboxError("1003", f"Max batch size is {limit}, input has {len(inputs)} records")
    return inputs


def _lookup_field(state: SandboxState, name: str) -> str:
    if name not in state.schema:
        raise SandboxError("1006", f"Field '{name}' not found")
    if not state.searchable(name):
        raise SandboxError("1011", f"Field '{name}' not supported")
    return name


def validate_values(
    state: SandboxState, record: dict[str, Any], allow_id: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(values coerced to their field types, None), or ({}, a `skipped` result naming the fault)."""
    values: dict[str, Any] = {}
    for name, value in record.items():
        fld = state.schema.get(name)
        if fld is None:
            return {}, skipped("1006", f"Field '{name}' not found")
        if name == "id":
            if not allow_id:
                return {}, skipped("1003", "Invalid data: 'id' is only allowed with updateOnly")
            continue
        if fld.readOnly:
            return {}, skipped("1003", f"Field '{name}' is not updateable")
        try:
            values[name] = coerce(fld, value)
        except InvalidValue:
            return {}, skipped("1003", f"Invalid value for field '{name}'")
    return values, None


def _partition_id(state: SandboxState, name: str | None) -> int | None:
    if not name:
        return 1
    for partition in state.partitions:
        if partition["name"] == name:
            return int(partition["id"])
    return None


def upsert(
    call: Call, record: Any, action: str, lookup: str, partition: str | None
) -> dict[str, Any]:
    state = call.state
    if not isinstance(record, dict):
        return skipped("1003", "Invalid data")
    values, problem = validate_values(state, record, allow_id=action == "updateOnly")
    if problem is not None:
        return problem
    partition_id = _partition_id(state, partition)

    def create() -> dict[str, Any]:
        if partition_id is None:
            return skipped("1008", f"Access denied to partition '{partition}'")
        return {"id": state.insert(dict(values), call.now, partition_id), "status": "created"}

    if action == "createDuplicate":
        return create()
    key = record.get(lookup)
    if key is None or key == "":
        return skipped("1002", f"Missing value for the required parameter '{lookup}'")
    matches = state.find(lookup, key)
    if action == "createOnly":
        return skipped("1005") if matches else create()
    if len(matches) > 1:
        return skipped("1007")
    if not matches:
        return skipped("1004") if action == "updateOnly" else create()
    state.update(matches[0], values, call.now)
    return {"id": matches[0], "status": "updated"}


def sync_leads(call: Call) -> dict[str, Any]:
    data = call.json_object()
    inputs = _inputs(call, data)
    action = data.get("action") or "createOrUpdate"
    if action not in ACTIONS:
        raise SandboxError("1003", f"Invalid action '{action}'")
    lookup = _lookup_field(call.state, data.get("lookupField") or "email")
    partition = data.get("partitionName")
    results = [upsert(call, rec, action, lookup, partition) for rec in inputs]
    return lead_envelope(call.request_id, results)


def push_leads(call: Call) -> dict[str, Any]:
    data = call.json_object()
    program = data.get("programName")
    if not program:
        raise blank("programName")
    if program not in {c.programName for c in call.state.campaigns.values()}:
        raise SandboxError("1013", f"Program '{program}' not found")
    inputs = _inputs(call, data)
    lookup = _lookup_field(call.state, data.get("lookupField") or "email")
    partition = data.get("partitionName")
    results = [upsert(call, rec, "createOrUpdate", lookup, partition) for rec in inputs]
    return lead_envelope(call.request_id, results)


def _fields(call: Call) -> list[str]:
    fields = call.params.list("fields") or list(DEFAULT_LEAD_FIELDS)
    for name in fields:
        if name not in call.state.schema:
            raise SandboxError("1006", f"Field '{name}' not found")
    return fields


def filter_leads(call: Call) -> dict[str, Any]:
    state, params = call.state, call.params
    filter_type = params.get("filterType")
    if not filter_type:
        raise blank("filterType")
    values = params.list("filterValues")
    if not values:
        raise blank("filterValues")
    call.batch_size = len(values)
    if filter_type != "id" and not state.searchable(filter_type):
        raise SandboxError("1011", f"Field '{filter_type}' not supported")
    limit = call.config.lead_batch_max
    if len(values) > limit:
        raise SandboxError("1003", f"Max {limit} filterValues allowed, got {len(values)}")
    fields = _fields(call)
    size = batch_size(params, limit)
    offset = page_offset("leads", params.get("nextPageToken"))
    ids: list[int] = []
    seen: set[int] = set()
    for value in values:
        for lead_id in state.find(filter_type, value):
            if lead_id not in seen:
                seen.add(lead_id)
                ids.append(lead_id)
    if len(ids) > call.config.max_filter_matches:
        raise SandboxError(
            "1003", f"Filter matches {len(ids)} leads, more than {call.config.max_filter_matches}"
        )
    page = [state.render(state.leads[i], fields) for i in ids[offset : offset + size]]
    if offset + size < len(ids):
        return lead_envelope(
            call.request_id, page, moreResult=True, nextPageToken=page_token("leads", offset + size)
        )
    return lead_envelope(call.request_id, page)


def get_lead(call: Call) -> dict[str, Any]:
    try:
        lead_id = int(call.match["id"])
    except ValueError:
        raise SandboxError(
            "1001", f"Invalid value '{call.match['id']}'. Required of type 'integer'"
        ) from None
    fields = _fields(call)
    lead = call.state.leads.get(lead_id)
    return lead_envelope(call.request_id, [] if lead is None else [call.state.render(lead, fields)])


def describe(call: Call) -> dict[str, Any]:
    return lead_envelope(call.request_id, [f.describe() for f in call.state.schema.values()])


def describe2(call: Call) -> dict[str, Any]:
    schema = call.state.schema.values()
    return lead_envelope(
        call.request_id,
        [
            {
                "name": "API Lead",
                "searchableFields": [[f.name] for f in schema if f.searchable],
                "fields": [f.describe2() for f in schema],
            }
        ],
    )


def delete_leads(call: Call) -> dict[str, Any]:
    inputs: list[Any]
    if not call.body.strip() and call.params.list("id"):
        inputs = [{"id": v} for v in call.params.list("id")]
        call.batch_size = len(inputs)
    else:
        inputs = _inputs(call, call.json_object())
    results: list[dict[str, Any]] = []
    for item in inputs:
        raw = item.get("id") if isinstance(item, dict) else None
        try:
            lead_id = int(raw) if raw is not None and not isinstance(raw, bool) else None
        except (TypeError, ValueError):
            lead_id = None
        if lead_id is None:
            results.append(skipped("1003", "Invalid data"))
        elif call.state.delete(lead_id):
            results.append({"id": lead_id, "status": "deleted"})
        else:
            results.append(skipped("1004"))
    return lead_envelope(call.request_id, results)


def partitions(call: Call) -> dict[str, Any]:
    return lead_envelope(call.request_id, [dict(p) for p in call.state.partitions])


ROUTES: list[Route] = [
    route("leads.sync", "POST", "/rest/v1/leads.json", sync_leads),
    route("leads.filter", "GET", "/rest/v1/leads.json", filter_leads),
    route("leads.delete", "DELETE", "/rest/v1/leads.json", delete_leads),
    route("leads.delete", "POST", "/rest/v1/leads/delete.json", delete_leads),
    route("leads.push", "POST", "/rest/v1/leads/push.json", push_leads),
    route("leads.describe", "GET", "/rest/v1/leads/describe.json", describe),
    route("leads.describe2", "GET", "/rest/v1/leads/describe2.json", describe2),
    route("leads.partitions", "GET", "/rest/v1/leads/partitions.json", partitions),
    route("leads.get", "GET", "/rest/v1/lead/{id}.json", get_lead),
]

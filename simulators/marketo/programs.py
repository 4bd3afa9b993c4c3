"""Programs: channels and their progression statuses, program lists, and member status changes.

Two endpoints change a member's status, both for up to 300 leads in one program and status:

- `POST /rest/v1/leads/programs/{programId}/status.json` `{"status":…,"input":[{"id":…}]}`
  (Change Lead Program Status; results `{"id","status"}` in input order);
- `POST /rest/v1/programs/{programId}/members/status.json` `{"statusName":…,"input":
  [{"leadId":…}]}` (Sync Program Member Status; results `{"seq","leadId","status"}`).

A lead that is not a member joins the program with that status (`created` on the members
endpoint, `updated` on the lead endpoint). Marketo moves members forward only: a lead already in
the status, or at a higher step, is `skipped` with 1037 and keeps its status; another status of
the same step is a move. An unknown program is 1013, a status the program's channel lacks is
1025, both for the whole request; an unknown lead is skipped with 1004 and a lead repeated in
one request with 1036.
"""

from __future__ import annotations

from typing import Any

from simulators.marketo.config import SeedChannel, SeedProgram, SeedProgressionStatus
from simulators.marketo.routes import Call, Route, route
from simulators.marketo.wire import (
    SandboxError,
    asset_envelope,
    asset_iso,
    blank,
    lead_envelope,
    reason,
)

ASSET_CREATED = 1_705_312_800.0  # 2024-01-15T10:00:00Z
URL_PREFIX = {"Event": "EV", "Default": "PG", "Email": "EM", "Engagement": "NP"}


def channel_item(channel: SeedChannel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "name": channel.name,
        "applicableProgramType": channel.applicableProgramType,
        "createdAt": asset_iso(ASSET_CREATED),
        "updatedAt": asset_iso(ASSET_CREATED),
        "progressionStatuses": [
            {
                "name": s.name,
                "step": s.step,
                "success": s.success,
                "hidden": s.hidden,
                "description": s.description,
            }
            for s in channel.statuses
        ],
    }


def program_item(program: SeedProgram) -> dict[str, Any]:
    prefix = URL_PREFIX.get(program.type, "PG")
    return {
        "id": program.id,
        "name": program.name,
        "description": program.description,
        "createdAt": asset_iso(ASSET_CREATED),
        "updatedAt": asset_iso(ASSET_CREATED),
        "url": f"https://app-sj01.marketo.com/#{prefix}{program.id}A1",
        "type": program.type,
        "channel": program.channel,
        "folder": {"type": "Folder", "value": program.folderId, "folderName": program.folderName},
        "status": "",
        "workspace": program.workspace,
        "tags": [],
        "costs": None,
    }


def _asset_page(call: Call, default_max: int) -> tuple[int, int]:
    max_return = call.params.int("maxReturn", default_max)
    offset = call.params.int("offset", 0)
    assert max_return is not None and offset is not None
    if not 1 <= max_return <= 200:
        raise SandboxError("1003", "maxReturn must be between 1 and 200")
    if offset < 0:
        raise SandboxError("1003", "offset must not be negative")
    return max_return, offset


def list_programs(call: Call) -> dict[str, Any]:
    """Browse Programs: offset paging; `filterType` id|programId|workspace with `filterValues`."""
    max_return, offset = _asset_page(call, 20)
    filter_type = call.params.get("filterType")
    values = set(call.params.list("filterValues"))
    rows = sorted(call.state.programs.values(), key=lambda p: p.id)
    if filter_type:
        if not values:
            raise SandboxError("1003", "filterValues is required with filterType")
        if filter_type in ("id", "programId"):
            rows = [p for p in rows if str(p.id) in values]
        elif filter_type == "workspace":
            rows = [p for p in rows if p.workspace in values]
        else:
            raise SandboxError(
                "1003", f"Invalid filterType '{filter_type}', expected id, programId or workspace"
            )
    page = rows[offset : offset + max_return]
    return asset_envelope(call.request_id, [program_item(p) for p in page])


def get_program(call: Call) -> dict[str, Any]:
    try:
        program = call.state.programs.get(int(call.match["id"]))
    except ValueError:
        program = None
    return asset_envelope(call.request_id, [program_item(program)] if program else [])


def program_by_name(call: Call) -> dict[str, Any]:
    name = call.params.get("name")
    if not name:
        raise blank("name")
    found = [p for p in call.state.programs.values() if p.name == name]
    return asset_envelope(call.request_id, [program_item(p) for p in found])


def list_channels(call: Call) -> dict[str, Any]:
    max_return, offset = _asset_page(call, 20)
    rows = sorted(call.state.channels.values(), key=lambda c: c.id)
    return asset_envelope(
        call.request_id, [channel_item(c) for c in rows[offset : offset + max_return]]
    )


def channel_by_name(call: Call) -> dict[str, Any]:
    name = call.params.get("name")
    if not name:
        raise blank("name")
    found = [c for c in call.state.channels.values() if c.name == name]
    return asset_envelope(call.request_id, [channel_item(c) for c in found])


def _program(call: Call) -> SeedProgram:
    raw = call.match["programId"]
    try:
        program_id = int(raw)
    except ValueError:
        raise SandboxError("1001", f"Invalid value '{raw}'. Required of type 'integer'") from None
    program = call.state.programs.get(program_id)
    if program is None:
        raise SandboxError("1013", f"Program '{program_id}' not found")
    return program


def _status(call: Call, program: SeedProgram, name: Any, field: str) -> SeedProgressionStatus:
    if not isinstance(name, str) or not name.strip():
        raise blank(field)
    status = call.state.program_status(program, name)
    if status is None:
        names = ", ".join(s.name for s in call.state.channel_of(program).statuses)
        raise SandboxError(
            "1025",
            f"Program status '{name}' not found for channel '{program.channel}' ({names})",
        )
    return status


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


def _lead_id(item: Any, key: str) -> int | None:
    value = item.get(key) if isinstance(item, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _change(
    call: Call, program: SeedProgram, status: SeedProgressionStatus, lead_id: int | None, key: str
) -> tuple[str, list[dict[str, str]]]:
    """(result status, reasons) for one input item."""
    if lead_id is None:
        return "skipped", [reason("1003", f"Invalid value for '{key}'")]
    if lead_id not in call.state.leads:
        return "skipped", [reason("1004", f"Lead '{lead_id}' not found")]
    outcome = call.state.set_member_status(program, lead_id, status, call.now, call.request_id)
    if outcome == "behind":
        current = call.state.membership(program.id, lead_id)
        now_in = current["statusName"] if current else "Not in Program"
        return "skipped", [
            reason(
                "1037",
                f"Lead already in or past status '{status.name}' (current status '{now_in}')",
            )
        ]
    return outcome, []


def change_lead_program_status(call: Call) -> dict[str, Any]:
    program = _program(call)
    data = call.json_object()
    inputs = _inputs(call, data)
    status = _status(call, program, data.get("status"), "status")
    seen: set[int] = set()
    results: list[dict[str, Any]] = []
    for item in inputs:
        lead_id = _lead_id(item, "id")
        if lead_id is not None and lead_id in seen:
            outcome, reasons = "skipped", [reason("1036", f"Duplicate lead '{lead_id}' in input")]
        else:
            outcome, reasons = _change(call, program, status, lead_id, "id")
        if lead_id is not None:
            seen.add(lead_id)
        result: dict[str, Any] = {"id": lead_id} if lead_id is not None else {}
        result["status"] = "updated" if outcome == "created" else outcome
        if reasons:
            result["reasons"] = reasons
        results.append(result)
    return lead_envelope(call.request_id, results)


def sync_program_member_status(call: Call) -> dict[str, Any]:
    program = _program(call)
    data = call.json_object()
    inputs = _inputs(call, data)
    status = _status(call, program, data.get("statusName"), "statusName")
    seen: set[int] = set()
    results: list[dict[str, Any]] = []
    for seq, item in enumerate(inputs):
        lead_id = _lead_id(item, "leadId")
        if lead_id is not None and lead_id in seen:
            outcome, reasons = "skipped", [reason("1036", f"Duplicate lead '{lead_id}' in input")]
        else:
            outcome, reasons = _change(call, program, status, lead_id, "leadId")
        if lead_id is not None:
            seen.add(lead_id)
        result: dict[str, Any] = {"seq": seq}
        if lead_id is not None:
            result["leadId"] = lead_id
        result["status"] = outcome
        if reasons:
            result["reasons"] = reasons
        results.append(result)
    return lead_envelope(call.request_id, results)


ROUTES: list[Route] = [
    route("programs.list", "GET", "/rest/asset/v1/programs.json", list_programs, asset=True),
    route(
        "programs.byName", "GET", "/rest/asset/v1/program/byName.json", program_by_name, asset=True
    ),
    route("programs.get", "GET", "/rest/asset/v1/program/{id}.json", get_program, asset=True),
    route("channels.list", "GET", "/rest/asset/v1/channels.json", list_channels, asset=True),
    route(
        "channels.byName", "GET", "/rest/asset/v1/channel/byName.json", channel_by_name, asset=True
    ),
    route(
        "leads.programStatus",
        "POST",
        "/rest/v1/leads/programs/{programId}/status.json",
        change_lead_program_status,
    ),
    route(
        "programs.memberStatus",
        "POST",
        "/rest/v1/programs/{programId}/members/status.json",
        sync_program_member_status,
    ),
]

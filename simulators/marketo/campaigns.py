"""Smart-campaign endpoints: list, get by id, Request Campaign (trigger).

A request is accepted only for an active trigger campaign whose smart list has "Campaign is
Requested" with source Web Service API. Marketo documents 1003 for a batch campaign and for a
missing Web-Service-API trigger; the sandbox answers 1003 for an inactive campaign as well, since
it fails the same precondition (Marketo's exact reply there is unconfirmed). Success means
*accepted*: lead ids that do not exist and leads suppressed by a "once" qualification rule are
accepted silently, as Marketo gives no per-lead outcome, and are listed in the run record. Each
accepted lead gets a Request Campaign activity (`activities.py`).
"""

from __future__ import annotations

import re
from typing import Any

from simulators.marketo.config import SeedCampaign
from simulators.marketo.routes import Call, Route, route
from simulators.marketo.state import REQUEST_CAMPAIGN
from simulators.marketo.wire import (
    SandboxError,
    asset_envelope,
    asset_iso,
    batch_size,
    blank,
    ints,
    iso,
    lead_envelope,
    page_offset,
    page_token,
)

TOKEN_NAME = re.compile(r"^\{\{my\.[^{}]+\}\}$")
CREATED_AT = "2024-01-15T10:00:00Z"
UPDATED_AT = "2025-06-02T14:30:00Z"


def campaign_item(c: SeedCampaign) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "type": c.type,
        "programName": c.programName,
        "programId": c.programId,
        "workspaceName": c.workspaceName,
        "createdAt": CREATED_AT,
        "updatedAt": UPDATED_AT,
        "active": c.active,
    }


def triggerable(c: SeedCampaign) -> bool:
    return c.type == "trigger" and c.active and c.requestable


def list_campaigns(call: Call) -> dict[str, Any]:
    params = call.params
    ids = set(ints(params.list("id"), "id"))
    names = set(params.list("name"))
    programs = set(params.list("programName"))
    workspaces = set(params.list("workspaceName"))
    only_triggerable = (params.get("isTriggerable") or "").lower() == "true"
    size = batch_size(params, call.config.lead_batch_max)
    offset = page_offset("campaigns", params.get("nextPageToken"))
    rows = [
        c
        for c in sorted(call.state.campaigns.values(), key=lambda c: c.id)
        if (not ids or c.id in ids)
        and (not names or c.name in names)
        and (not programs or c.programName in programs)
        and (not workspaces or c.workspaceName in workspaces)
        and (not only_triggerable or triggerable(c))
    ]
    call.batch_size = len(ids) or None
    page = [campaign_item(c) for c in rows[offset : offset + size]]
    if offset + size < len(rows):
        return lead_envelope(
            call.request_id,
            page,
            moreResult=True,
            nextPageToken=page_token("campaigns", offset + size),
        )
    return lead_envelope(call.request_id, page)


def _campaign(call: Call) -> SeedCampaign:
    try:
        campaign_id = int(call.match["id"])
    except ValueError:
        raise SandboxError(
            "1001", f"Invalid value '{call.match['id']}'. Required of type 'integer'"
        ) from None
    campaign = call.state.campaigns.get(campaign_id)
    if campaign is None:
        raise SandboxError("1013", f"Campaign '{campaign_id}' not found")
    return campaign


def get_campaign(call: Call) -> dict[str, Any]:
    return lead_envelope(call.request_id, [campaign_item(_campaign(call))])


def _lead_ids(raw: Any, limit: int) -> list[int]:
    if not raw:
        raise blank("leads")
    if not isinstance(raw, list):
        raise SandboxError("1003", "Invalid value for 'leads'")
    if len(raw) > limit:
        raise SandboxError("1003", f"Max {limit} leads allowed per request, got {len(raw)}")
    out: list[int] = []
    for item in raw:
        value = item.get("id") if isinstance(item, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise SandboxError("1003", f"Invalid lead id '{value}'")
        try:
            out.append(int(value))
        except ValueError:
            raise SandboxError("1003", f"Invalid lead id '{value}'") from None
    return out


def _tokens(raw: Any, limit: int) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SandboxError("1003", "Invalid value for 'tokens'")
    if len(raw) > limit:
        raise SandboxError("1003", f"Max {limit} tokens allowed per request, got {len(raw)}")
    out: list[dict[str, Any]] = []
    for item in raw:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not TOKEN_NAME.match(name):
            raise SandboxError("1003", f"Invalid token name '{name}', expected '{{{{my.<name>}}}}'")
        value = item.get("value") if isinstance(item, dict) else None
        out.append({"name": name, "value": value})
    return out


def trigger_campaign(call: Call) -> dict[str, Any]:
    campaign = _campaign(call)
    data = call.json_object()
    body_input = data.get("input")
    if not isinstance(body_input, dict):
        raise blank("input")
    leads = body_input.get("leads")
    call.batch_size = len(leads) if isinstance(leads, list) else None
    if campaign.type != "trigger":
        raise SandboxError(
            "1003", f"Campaign '{campaign.name}' is a batch campaign, not a trigger campaign"
        )
    if not campaign.active:
        raise SandboxError("1003", f"Trigger campaign '{campaign.name}' is not active")
    if not campaign.requestable:
        raise SandboxError(
            "1003",
            f"Campaign '{campaign.name}' has no 'Campaign is Requested' trigger"
            " with source Web Service API",
        )
    lead_ids = _lead_ids(leads, call.config.campaign_leads_max)
    tokens = _tokens(body_input.get("tokens"), call.config.campaign_tokens_max)
    state = call.state
    accepted: list[int] = []
    unknown: list[int] = []
    suppressed: list[int] = []
    for lead_id in dict.fromkeys(lead_ids):
        if lead_id not in state.leads:
            unknown.append(lead_id)
        elif campaign.qualificationRuleType == "once" and state.already_ran(campaign.id, lead_id):
            suppressed.append(lead_id)
        else:
            accepted.append(lead_id)
            state.mark_ran(campaign.id, lead_id)
            state.log_activity(
                REQUEST_CAMPAIGN,
                lead_id,
                call.now,
                primary_id=campaign.id,
                primary_value=campaign.name,
                campaign_id=campaign.id,
                Source="Web Service API",
            )
    state.campaign_runs.append(
        {
            "campaignId": campaign.id,
            "campaignName": campaign.name,
            "leadIds": accepted,
            "unknownLeadIds": unknown,
            "suppressedLeadIds": suppressed,
            "tokens": tokens,
            "time": iso(call.now),
            "at": call.now,
            "requestId": call.request_id,
        }
    )
    return lead_envelope(call.request_id, [{"id": campaign.id}])


def smart_campaign_item(c: SeedCampaign) -> dict[str, Any]:
    """The asset-API view of a campaign, with `isRequestable` and the qualification rule."""
    status = {"batch": "Never Run"}.get(c.type, "Active" if c.active else "Inactive")
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "createdAt": asset_iso(1_705_312_800.0),
        "updatedAt": asset_iso(1_748_874_600.0),
        "status": status,
        "type": c.type,
        "isSystem": False,
        "isActive": c.active,
        "isRequestable": c.type == "trigger" and c.requestable,
        "isCommunicationLimitEnabled": False,
        "recurrence": {"weekdayOnly": False},
        "qualificationRuleType": c.qualificationRuleType,
        "workspace": c.workspaceName,
        "smartListId": 4000 + c.id % 1000,
        "flowId": 5000 + c.id % 1000,
        "parentProgramId": c.programId,
        "folder": {"id": c.programId, "type": "Program"},
        "computedUrl": f"https://app-sj01.marketo.com/#SC{c.id}A1",
    }


def list_smart_campaigns(call: Call) -> dict[str, Any]:
    params = call.params
    max_return = params.int("maxReturn", 200)
    offset = params.int("offset", 0)
    assert max_return is not None and offset is not None
    if not 1 <= max_return <= 200:
        raise SandboxError("1003", "maxReturn must be between 1 and 200")
    if offset < 0:
        raise SandboxError("1003", "offset must not be negative")
    active = (params.get("isActive") or "").lower()
    rows = [
        c
        for c in sorted(call.state.campaigns.values(), key=lambda c: c.id)
        if active not in ("true", "false") or c.active == (active == "true")
    ]
    page = rows[offset : offset + max_return]
    return asset_envelope(call.request_id, [smart_campaign_item(c) for c in page])


def get_smart_campaign(call: Call) -> dict[str, Any]:
    try:
        campaign = call.state.campaigns.get(int(call.match["id"]))
    except ValueError:
        campaign = None
    return asset_envelope(call.request_id, [smart_campaign_item(campaign)] if campaign else [])


ROUTES: list[Route] = [
    route("campaigns.list", "GET", "/rest/v1/campaigns.json", list_campaigns),
    route("campaigns.get", "GET", "/rest/v1/campaigns/{id}.json", get_campaign),
    route("campaigns.trigger", "POST", "/rest/v1/campaigns/{id}/trigger.json", trigger_campaign),
    route(
        "smartCampaigns.list",
        "GET",
        "/rest/asset/v1/smartCampaigns.json",
        list_smart_campaigns,
        asset=True,
    ),
    route(
        "smartCampaigns.get",
        "GET",
        "/rest/asset/v1/smartCampaign/{id}.json",
        get_smart_campaign,
        asset=True,
    ),
]

"""Forms: the asset-API list / get / fields endpoints and Submit Form on the lead database.

Asset lists page by `offset` + `maxReturn` and signal the end with a short page or the "No assets
found" warning; a client that steps `offset` until then must terminate. Form field ids are
SOAP-style (`FirstName`) while Submit Form takes REST names (`firstName`) — the schema maps one
to the other, as in Marketo.
"""

from __future__ import annotations

import json
import re
from typing import Any

from simulators.marketo.config import SeedForm
from simulators.marketo.routes import Call, Route, route
from simulators.marketo.state import FILL_OUT_FORM, InvalidValue, coerce
from simulators.marketo.wire import (
    SandboxError,
    asset_envelope,
    asset_iso,
    blank,
    iso,
    lead_envelope,
    skipped,
)

ASSET_CREATED = 1_705_312_800.0  # 2024-01-15T10:00:00Z
FOLDER_ID = re.compile(r"""['"]?id['"]?\s*[:=]\s*['"]?(\d+)""")


def form_item(form: SeedForm) -> dict[str, Any]:
    return {
        "id": form.id,
        "name": form.name,
        "description": form.description,
        "createdAt": asset_iso(ASSET_CREATED),
        "updatedAt": asset_iso(ASSET_CREATED),
        "url": f"https://app-sj01.marketo.com/#FO{form.id}A1",
        "status": form.status,
        "folder": {"type": "Folder", "value": form.folderId, "folderName": form.folderName},
        "thankYouList": [{"followupType": "none", "followupValue": None, "default": True}],
        "knownVisitor": {"type": "form", "template": None},
        "theme": "simple",
        "language": "English",
        "locale": "en_US",
        "progressiveProfiling": {"isEnabled": False, "templateFields": None},
        "labelPosition": "left",
        "fontFamily": "Helvetica",
        "fontSize": "13px",
        "buttonLocation": 120,
        "buttonLabel": "Submit",
        "waitingLabel": "Please Wait",
        "workSpaceId": 1,
    }


def folder_id(raw: str | None) -> int | None:
    """The folder id from `{"id":12,"type":"Folder"}`, tolerating malformed variants
    (single quotes, unquoted type) that widely used clients send; None when there is none."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        if isinstance(data, dict) and isinstance(data.get("id"), int | str):
            return int(data["id"])
    except (ValueError, TypeError):
        pass
    m = FOLDER_ID.search(raw)
    return int(m.group(1)) if m else None


def _asset_int(call: Call, name: str, default: int) -> int:
    value = call.params.int(name, default)
    assert value is not None
    return value


def list_forms(call: Call) -> dict[str, Any]:
    status = call.params.get("status")
    folder = folder_id(call.params.get("folder"))
    max_return = _asset_int(call, "maxReturn", 20)
    offset = _asset_int(call, "offset", 0)
    if not 1 <= max_return <= 200:
        raise SandboxError("1003", "maxReturn must be between 1 and 200")
    if offset < 0:
        raise SandboxError("1003", "offset must not be negative")
    rows = [
        f
        for f in sorted(call.state.forms.values(), key=lambda f: f.id)
        if (not status or f.status == status) and (folder is None or f.folderId == folder)
    ]
    return asset_envelope(
        call.request_id, [form_item(f) for f in rows[offset : offset + max_return]]
    )


def _form(call: Call) -> SeedForm | None:
    try:
        return call.state.forms.get(int(call.match["id"]))
    except ValueError:
        return None


def get_form(call: Call) -> dict[str, Any]:
    form = _form(call)
    return asset_envelope(call.request_id, [] if form is None else [form_item(form)])


def form_fields(call: Call) -> dict[str, Any]:
    form = _form(call)
    if form is None:
        return asset_envelope(call.request_id, [])
    items: list[dict[str, Any]] = []
    for row, fld in enumerate(form.fields):
        item: dict[str, Any] = {
            "id": fld.id,
            "label": fld.label,
            "dataType": fld.dataType,
            "rowNumber": row,
            "columnNumber": 0,
            "required": fld.required,
            "formPrefill": True,
            "visibilityRules": {"ruleType": "alwaysShow"},
        }
        if fld.maxLength is not None and fld.dataType not in ("select", "checkbox", "hidden"):
            item["maxLength"] = fld.maxLength
        if fld.values is not None:
            item["fieldMetaData"] = {"values": fld.values}
        items.append(item)
    return asset_envelope(call.request_id, items)


def submit_form(call: Call) -> dict[str, Any]:
    data = call.json_object()
    raw_id = data.get("formId")
    if raw_id is None or raw_id == "":
        raise blank("formId")
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or not str(raw_id).isdigit():
        raise SandboxError("1001", f"Invalid value '{raw_id}'. Required of type 'integer'")
    form = call.state.forms.get(int(raw_id))
    if form is None:
        raise SandboxError("1013", f"Form '{raw_id}' not found")
    inputs = data.get("input")
    if not inputs:
        raise blank("input")
    if not isinstance(inputs, list) or len(inputs) != 1:
        count = len(inputs) if isinstance(inputs, list) else "?"
        raise SandboxError("1003", f"Exactly one input record is allowed, got {count}")
    call.batch_size = 1
    result = _fill(call, form, inputs[0], data.get("programId"))
    return lead_envelope(call.request_id, [result])


def _fill(call: Call, form: SeedForm, item: Any, program_id: Any) -> dict[str, Any]:
    state = call.state
    fields = item.get("leadFormFields") if isinstance(item, dict) else None
    if not isinstance(fields, dict):
        return skipped("1002", "Missing value for the required parameter 'leadFormFields'")
    on_form = {state.rest_name_of_soap(f.id) for f in form.fields}
    values: dict[str, Any] = {}
    for name, value in fields.items():
        fld = state.schema.get(name)
        if fld is None:
            return skipped("1006", f"Field '{name}' not found")
        if name not in on_form:
            return skipped("1003", f"Field '{name}' is not on form {form.id}")
        try:
            values[name] = coerce(fld, value)
        except InvalidValue:
            return skipped("1003", f"Invalid value for field '{name}'")
    if not values.get("email"):
        return skipped("1002", "Missing value for the required parameter 'email'")
    matches = state.find("email", values["email"])
    if matches:
        lead_id = max(matches, key=lambda i: (state.leads[i]["updatedAt"], i))
        state.update(lead_id, values, call.now)
        status = "updated"
    else:
        lead_id = state.insert(dict(values), call.now)
        status = "created"
    state.log_activity(
        FILL_OUT_FORM,
        lead_id,
        call.now,
        primary_id=form.id,
        primary_value=form.name,
        Form_Fields=json.dumps(fields, sort_keys=True, default=str),
    )
    state.form_fills.append(
        {
            "formId": form.id,
            "programId": program_id,
            "leadId": lead_id,
            "status": status,
            "fields": dict(fields),
            "visitorData": item.get("visitorData"),
            "cookie": item.get("cookie"),
            "time": iso(call.now),
            "at": call.now,
            "requestId": call.request_id,
        }
    )
    return {"id": lead_id, "status": status}


ROUTES: list[Route] = [
    route("forms.list", "GET", "/rest/asset/v1/forms.json", list_forms, asset=True),
    route("forms.get", "GET", "/rest/asset/v1/form/{id}.json", get_form, asset=True),
    route("forms.fields", "GET", "/rest/asset/v1/form/{id}/fields.json", form_fields, asset=True),
    route("leads.submitForm", "POST", "/rest/v1/leads/submitForm.json", submit_form),
]

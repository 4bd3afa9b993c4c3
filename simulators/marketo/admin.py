"""`/_sandbox/` admin routes: inspect leads, campaign runs, form fills, program memberships and
calls; inject faults.

`GET /_sandbox/programs` lists each program with its channel's statuses and its members
(`?programId=N` for one); `GET /_sandbox/program-status-changes` every status change made.

Not part of Marketo's API and unauthenticated (the sandbox binds loopback). Plain JSON, no
envelope. Faults:

- `POST /_sandbox/faults` `{"code":"606","count":3,"endpoint":"leads.sync","message":…}` or
  `{"status":503,"count":2}` — the next N matching calls fail with that Marketo code (inside
  HTTP 200) or bare HTTP status. Without `endpoint` a fault applies to REST calls only; use
  `"endpoint":"identity"` to fail token requests. `DELETE /_sandbox/faults` clears every fault.
- `POST /_sandbox/latency` `{"ms":250}` — extra latency on every call.
- `POST /_sandbox/outage` `{"seconds":30,"mode":"503"|"drop"}` — for that long (sandbox clock)
  every call gets HTTP 503, or with "drop" its connection is aborted without a response.
  A refused connection would need the listener closed, which would lose the port; not offered.
- `POST /_sandbox/tokens/revoke` (→ 601) · `POST /_sandbox/tokens/expire` (→ 602)
- `POST /_sandbox/quota/exhaust` (→ 607 until the next US-Central midnight) · `POST /_sandbox/reset`
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from simulators.marketo.sandbox import Sandbox


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


def _int(data: dict[str, Any], name: str, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise web.HTTPBadRequest(text=f"'{name}' must be an integer")
    try:
        return int(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"'{name}' must be an integer") from None


def _float(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise web.HTTPBadRequest(text=f"'{name}' must be a number")
    try:
        return float(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"'{name}' must be a number") from None


def register(app: web.Application, sb: Sandbox) -> None:
    async def leads(request: web.Request) -> web.Response:
        return _json({"leads": [dict(v) for _, v in sorted(sb.state.leads.items())]})

    async def campaign_runs(request: web.Request) -> web.Response:
        return _json({"campaignRuns": sb.state.campaign_runs})

    async def form_fills(request: web.Request) -> web.Response:
        return _json({"formFills": sb.state.form_fills})

    async def programs(request: web.Request) -> web.Response:
        wanted = request.query.get("programId")
        out = []
        for program_id, program in sorted(sb.state.programs.items()):
            if wanted is not None and wanted != str(program_id):
                continue
            channel = sb.state.channel_of(program)
            members = sb.state.members.get(program_id, {})
            out.append(
                {
                    "id": program_id,
                    "name": program.name,
                    "type": program.type,
                    "channel": program.channel,
                    "statuses": [s.model_dump() for s in channel.statuses],
                    "members": [dict(m) for _, m in sorted(members.items())],
                }
            )
        return _json({"programs": out})

    async def status_changes(request: web.Request) -> web.Response:
        return _json({"statusChanges": sb.state.status_changes})

    async def calls(request: web.Request) -> web.Response:
        endpoint = request.query.get("endpoint")
        return _json({"calls": [c.as_dict() for c in sb.calls(endpoint)]})

    async def status(request: web.Request) -> web.Response:
        now = sb.now()
        return _json(
            {
                "instanceId": sb.config.instance_id,
                "clientId": sb.config.client_id,
                "leads": len(sb.state.leads),
                "programMembers": {
                    str(pid): len(m) for pid, m in sorted(sb.state.members.items()) if m
                },
                "rateWindowUsed": sb.rate.used(now),
                "quotaUsed": sb.quota.used(now),
                "inFlight": sb.in_flight,
                "faults": sb.faults.as_dict(),
            }
        )

    async def add_fault(request: web.Request) -> web.Response:
        data = await _body(request)
        count = _int(data, "count", 1)
        endpoint = data.get("endpoint")
        if endpoint is not None and not isinstance(endpoint, str):
            raise web.HTTPBadRequest(text="'endpoint' must be a string")
        if "status" in data:
            fault = sb.inject_http_status(_int(data, "status"), count, endpoint)
        elif "code" in data:
            message = data.get("message")
            fault = sb.inject_error(
                str(data["code"]), count, endpoint, message if isinstance(message, str) else None
            )
        else:
            raise web.HTTPBadRequest(
                text="give 'code' (Marketo error code) or 'status' (HTTP status)"
            )
        return _json(fault.as_dict(), status=201)

    async def faults(request: web.Request) -> web.Response:
        return _json(sb.faults.as_dict())

    async def clear_faults(request: web.Request) -> web.Response:
        sb.clear_faults()
        return _json({"cleared": True})

    async def latency(request: web.Request) -> web.Response:
        data = await _body(request)
        sb.set_latency(_float(data, "ms"))
        return _json({"latencyMs": sb.faults.latency_ms})

    async def outage(request: web.Request) -> web.Response:
        data = await _body(request)
        mode = data.get("mode", "503")
        if mode not in ("503", "drop"):
            raise web.HTTPBadRequest(text="'mode' must be '503' or 'drop'")
        seconds = _float(data, "seconds")
        if seconds <= 0:
            sb.end_outage()
        else:
            sb.start_outage(seconds, mode)
        return _json({"outageUntil": sb.faults.outage_until, "mode": mode})

    async def revoke(request: web.Request) -> web.Response:
        return _json({"revoked": sb.revoke_tokens()})

    async def expire(request: web.Request) -> web.Response:
        return _json({"expired": sb.expire_tokens()})

    async def exhaust(request: web.Request) -> web.Response:
        sb.exhaust_quota()
        return _json({"quotaUsed": sb.quota.used(sb.now())})

    async def reset(request: web.Request) -> web.Response:
        sb.reset()
        return _json({"reset": True})

    r = app.router
    r.add_get("/_sandbox/", status)
    r.add_get("/_sandbox/status", status)
    r.add_get("/_sandbox/leads", leads)
    r.add_get("/_sandbox/campaign-runs", campaign_runs)
    r.add_get("/_sandbox/form-fills", form_fills)
    r.add_get("/_sandbox/programs", programs)
    r.add_get("/_sandbox/program-status-changes", status_changes)
    r.add_get("/_sandbox/calls", calls)
    r.add_get("/_sandbox/faults", faults)
    r.add_post("/_sandbox/faults", add_fault)
    r.add_delete("/_sandbox/faults", clear_faults)
    r.add_post("/_sandbox/latency", latency)
    r.add_post("/_sandbox/outage", outage)
    r.add_post("/_sandbox/tokens/revoke", revoke)
    r.add_post("/_sandbox/tokens/expire", expire)
    r.add_post("/_sandbox/quota/exhaust", exhaust)
    r.add_post("/_sandbox/reset", reset)

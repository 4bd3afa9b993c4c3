"""The flow editor's mapping: its fields as a table, the other flows that share it, and saving
it before the flow.

A changed mapping is saved through its own route with the version it was read at, so an edit
never overwrites someone else's change to the same mapping; then the flow is saved. Two
requests: when the flow is refused after its mapping was stored, the mapping did change, and
the error says so rather than claiming nothing changed.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from apiclient.client import ApiClient
from apiclient.errors import ApiError, RequestRefused
from console import fmt
from console.messages import ApiFailed
from console.widgets.table import SignalTable

DEFAULT_REQUIRED = ("email", "firstName", "lastName")
"""Targets required when a field does not say (control's default)."""

TARGET_WIDTH = 20
SOURCES_WIDTH = 30
"""The widths of the table's Target and Sources columns: longer values are cut with an
ellipsis, never silently (sources lose their leading path segments first)."""


def mapping_of(account: dict[str, Any], mapping_id: str | None) -> dict[str, Any] | None:
    return next((m for m in account.get("mappings", []) if m["id"] == mapping_id), None)


def shared_with(account: dict[str, Any], mapping_id: str | None, flow_id: str | None) -> list[str]:
    """The names of the flows other than `flow_id` whose destination uses `mapping_id`."""
    if not mapping_id:
        return []
    flows = account.get("flows", [])
    names = {f.get("id"): f.get("name") or f.get("id") for f in flows}
    users = (mapping_of(account, mapping_id) or {}).get("used_by")
    if users is None:
        users = [
            f.get("id") for f in flows if (f.get("destination") or {}).get("mapping") == mapping_id
        ]
    return [str(names.get(u) or u) for u in users if u and u != flow_id]


def show_fields(
    table: SignalTable,
    fields: list[dict[str, Any]],
    known: set[str],
    *,
    dirty: bool,
    shared: list[str],
) -> None:
    """Fill the mapping table: each field, and whether its target is one of the connection's
    `known` fields (unknown until the operator refreshes them)."""
    table.clear()
    for index, field in enumerate(fields):
        required = field.get("required")
        if required is None:
            required = field.get("target") in DEFAULT_REQUIRED
        if not known:
            state = Text("? refresh (ctrl+f)", style="dim")
        elif field.get("target") in known:
            state = Text("✓")
        else:
            state = Text("✗ unknown field", style="bold red")
        cells = [
            fmt.cell(field.get("target", ""), TARGET_WIDTH),
            fmt.paths_cell(field.get("sources", []), SOURCES_WIDTH),
            ",".join(field.get("transforms", [])),
            "yes" if required else "",
            state,
        ]
        table.add_row(*fmt.cells(cells), key=str(index))
    changed = " (changed, saved with the flow)" if dirty else ""
    table.border_title = f"mapping fields [{len(fields)}]{changed}"
    note = f"shared with {', '.join(shared)} · " if shared else ""
    table.border_subtitle = fmt.esc(f"{note}enter edit · ctrl+n add · ctrl+d delete")


def is_stale(error: RequestRefused) -> bool:
    """A 409 on the version: someone else saved the object since it was read."""
    return error.status == 409 and any(p.path == "version" for p in error.problems)


async def save_mapping(
    client: ApiClient, account: dict[str, Any], mapping_id: str, fields: list[dict[str, Any]]
) -> None:
    """Save the mapping's `fields` at the version it was read at; the account's copy takes
    control's answer. A stale version is an `ApiError` that says nothing was saved."""
    current = mapping_of(account, mapping_id)
    if current is None:
        raise ApiError(f"mapping {mapping_id!r} is not known to control; reopen the flow")
    body = {"id": mapping_id, "name": current.get("name", mapping_id), "fields": fields}
    try:
        saved = await client.save_mapping(mapping_id, body, current.get("version"))
    except RequestRefused as error:
        if is_stale(error):
            raise ApiError(
                f"someone else changed mapping {mapping_id!r} since it was opened; nothing "
                "was saved — close and reopen the flow to see their version"
            ) from None
        raise
    current.update(saved)


def flow_save_failed(mapping_saved: str | None, name: str, error: ApiError) -> ApiFailed:
    """What a failed save of flow `name` tells the operator, first that the mapping saved
    before it (`mapping_saved`) did change."""
    if not isinstance(error, RequestRefused):
        return ApiFailed("save the flow", after_mapping(mapping_saved, error.message))
    if not is_stale(error):
        problems = "\n".join(str(p) for p in error.problems)
        return ApiFailed("save the flow", after_mapping(mapping_saved, problems))
    text = (
        "someone else saved this flow since it was opened; nothing was changed — "
        "close and reopen it to see their version"
    )
    if mapping_saved is not None:
        text = (
            f"mapping {mapping_saved!r} was saved, but flow {name!r} was "
            "not: someone else saved the flow since it was opened — close and "
            "reopen it, then re-apply your changes to the flow"
        )
    return ApiFailed("save the flow", text)


def after_mapping(mapping_saved: str | None, text: str) -> str:
    """A flow save's error, saying first that the mapping saved before it did change."""
    if mapping_saved is None:
        return text
    return f"mapping {mapping_saved!r} was saved, the flow was not:\n{text}"

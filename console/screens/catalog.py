"""Tags and the event catalog, with the untagged items that flows depend on highlighted.

A flow that activates for registration statuses cannot act on a registration whose status has no
tag (it becomes a data failure), so in an event's set-up an untagged status, custom property,
attendee type (when a flow filters on attendee-type tags) or question (when a mapping reads
`answers.…`) is flagged. Tags that flows use but that nothing carries at account level are
flagged too (event set-ups may still carry them).

`a` assigns tags at account level (`AssignTagsModal`): to a status the operator names, with the
selected tag offered when the tags table has the focus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable

from apiclient.rows import FlowRow
from console import fmt
from console.calls import api_worker
from console.messages import ApiFailed, CatalogLoaded
from console.screens.assign_tags import AssignTagsModal, describe, kinds_of_tag
from console.screens.base import BaseScreen
from console.screens.modals import TextModal
from console.widgets.table import SignalTable

SETUP_KINDS = (
    ("statuses", "label", "statuses", "registration_statuses"),
    ("customProperties", "name", "custom properties", "custom_registration_properties"),
    ("attendeeTypes", "code", "attendee types", "attendee_type"),
    ("registrationQuestions", "code", "questions", "answers"),
)


def dependencies(flows: list[FlowRow]) -> dict[str, list[str]]:
    """Which set-up kinds each flow needs tagged: kind → flow names."""
    needs: dict[str, list[str]] = {}
    for flow in flows:
        if not flow.active:
            continue
        raw = flow.raw
        activate = raw.get("activate_for") or {}
        for key in ("registration_statuses", "custom_registration_properties"):
            if activate.get(key):
                needs.setdefault(key, []).append(flow.name)
        if any("attendee_type_tags" in f for f in raw.get("filters") or []):
            needs.setdefault("attendee_type", []).append(flow.name)
        if "answers." in str(raw.get("destination") or {}):
            needs.setdefault("answers", []).append(flow.name)
    return needs


def flow_tags(flows: list[FlowRow]) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for flow in flows:
        activate = flow.raw.get("activate_for") or {}
        for key, names in activate.items():
            if key == "standard_properties":
                continue
            for name in names or []:
                used.setdefault(name, []).append(flow.name)
        for rule in flow.raw.get("filters") or []:
            for name in rule.get("attendee_type_tags") or []:
                used.setdefault(name, []).append(flow.name)
    return used


def setup_report(event: dict[str, Any], needs: dict[str, list[str]]) -> tuple[str, int]:
    """Text of an event's set-up, untagged items that matter marked; and how many are."""
    setup = event.get("event", {}).get("setup") or event.get("setup") or {}
    lines: list[str] = []
    flagged = 0
    for key, label_key, title, need in SETUP_KINDS:
        items = setup.get(key) or []
        lines.append(f"{title} ({len(items)})")
        for item in items:
            tags = item.get("tags") or []
            label = item.get(label_key, "?")
            if tags:
                lines.append(f"   {label}: {', '.join(tags)}")
            elif need in needs:
                flagged += 1
                lines.append(f" ! {label}: UNTAGGED — needed by {', '.join(needs[need][:3])}")
            else:
                lines.append(f"   {label}: (no tag)")
    event_tags = setup.get("eventTags") or []
    lines.append(f"event tags: {', '.join(event_tags) or '(none)'}")
    return "\n".join(lines), flagged


class CatalogScreen(BaseScreen):
    CSS_PATH = Path(__file__).with_name("catalog.tcss")
    SCOPE = "catalog"
    TITLE_TEXT = "Tags & events"

    def __init__(self) -> None:
        super().__init__()
        self.flows: list[FlowRow] = []
        self.events: dict[str, dict[str, Any]] = {}
        self.tags_body: dict[str, Any] = {}

    def body(self) -> ComposeResult:
        tags = SignalTable(id="tags", cursor_type="row", zebra_stripes=True)
        tags.border_title = "tags"
        tags.add_column("Tag", key="name", width=16)
        tags.add_column("Applies to", key="objects", width=24)
        tags.add_column("Assigned", key="assigned", width=9)
        tags.add_column("Used by flows", key="used")
        yield tags
        events = SignalTable(id="events", cursor_type="row", zebra_stripes=True)
        events.border_title = "events"
        events.add_column("Event", key="code", width=12)
        events.add_column("Name", key="name", width=26)
        events.add_column("Status", key="status", width=10)
        events.add_column("Test", key="test", width=4)
        events.add_column("Updated", key="updated")
        yield events

    def load(self) -> None:
        self.fetch()

    @api_worker("catalog-load")
    async def fetch(self) -> None:
        client = self.console.client
        what = "load tags and events"
        tags = await self.call_api(what, client.tags())
        events = await self.call_api(what, client.events())
        flows = await self.call_api(what, client.flows())
        self.post_message(CatalogLoaded(tags, events, flows))

    @on(CatalogLoaded)
    def catalog_loaded(self, message: CatalogLoaded) -> None:
        self.flows = message.flows
        self.tags_body = message.tags
        used = flow_tags(message.flows)
        tags = self.query_one("#tags", DataTable)
        events = self.query_one("#events", DataTable)
        flagged = 0
        with self.app.batch_update():
            tags.clear()
            for tag in message.tags.get("tags", []):
                assigned = sum(len(v) for v in (tag.get("assigned_to") or {}).values())
                users = used.get(tag["name"], [])
                name = Text(tag["name"])
                if users and not assigned:
                    name = Text(f"! {tag['name']}", style="bold yellow")
                    flagged += 1
                tags.add_row(
                    *fmt.cells(
                        [
                            name,
                            fmt.cell(
                                ", ".join(o.replace("_", " ") for o in tag.get("objects", [])), 24
                            ),
                            str(assigned) if assigned else "event",
                            fmt.cell(", ".join(users), 40) or "—",
                        ]
                    ),
                    key=tag["name"],
                )
            events.clear()
            self.events = {e["eventCode"]: e for e in message.events}
            for event in message.events:
                events.add_row(
                    *fmt.cells(
                        [
                            event["eventCode"],
                            fmt.cell(event.get("eventName"), 26),
                            event.get("eventStatus") or "",
                            "yes" if event.get("isTest") else "",
                            fmt.short_stamp(event.get("updatedAt")),
                        ]
                    ),
                    key=event["eventCode"],
                )
        tags.border_title = f"tags [{tags.row_count}]"
        tags.border_subtitle = (
            f"! {flagged} used by flows, assigned only in event set-ups" if flagged else ""
        )
        events.border_title = f"events [{events.row_count}]"
        events.border_subtitle = "enter: set-up with untagged items"
        self.loaded()

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self.console.report_error(message.what, message.error)
        self.loaded(ok=False)

    def action_open_event(self) -> None:
        code = self.query_one("#events", SignalTable).selected_key()
        if code is not None:
            self.open_event(code)

    @on(DataTable.RowSelected, "#events")
    def event_selected(self, event: DataTable.RowSelected) -> None:
        self.open_event(str(event.row_key.value))

    @api_worker("catalog-event")
    async def open_event(self, code: str) -> None:
        event = await self.call_api(f"load event {code}", self.console.client.event(code))
        text, flagged = setup_report(event, dependencies(self.flows))
        title = f"{code} set-up" + (f" — {flagged} untagged item(s) flows need" if flagged else "")
        self.app.call_later(self.app.push_screen, TextModal(title, text))

    def action_assign_tags(self) -> None:
        """Assign tags to a status; with the tags table focused, the selected tag is offered
        for the first kind of item it applies to."""
        if not self.tags_body:
            self.notify("tags are still loading", severity="warning")
            return
        add: tuple[str, ...] = ()
        kind = "registration_statuses"
        table = self.query_one("#tags", SignalTable)
        name = table.selected_key()
        if self.focused is table and name is not None:
            [tag] = [t for t in self.tags_body.get("tags", []) if t.get("name") == name] or [{}]
            kinds = kinds_of_tag(tag)
            if kinds:
                kind, add = kinds[0], (name,)
            else:
                self.notify(
                    f"tag '{name}' applies to no status; account-level assignments are for "
                    "registration, session registration and event statuses",
                    severity="warning",
                    markup=False,
                )

        def done(answer: dict[str, Any] | None) -> None:
            if answer:
                self.notify(describe(answer), title="Tags assigned", timeout=4)
                self.action_refresh_now()

        self.app.push_screen(AssignTagsModal(self.tags_body, kind=kind, add=add), done)

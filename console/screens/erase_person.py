"""Erase a person (`POST /api/v1/ledger/erasures`): the most dangerous thing the console does,
and it cannot be undone, so the email or registration code is typed twice, like going LIVE;
the erasure's report (tables touched, Marketo lead ids to delete there, tombstones, where copies
remain) stays on screen afterwards. A read-only console never opens it (the action is dangerous,
refused with the reason by the app)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from console import actions
from console.calls import ApiCalls, api_worker
from console.fmt import safe
from console.messages import ApiFailed

QUESTION = (
    "Erase one person from the ledger: their change payloads are redacted, their retry items, "
    "rejected input and recovery entries deleted, and the person's keys tombstoned on "
    "signal-delivered. Counts and dashboard figures stay. This cannot be undone."
)


def selector_of(text: str) -> dict[str, str]:
    """An email (it has an @) or a registration code."""
    value = text.strip()
    return {"email": value} if "@" in value else {"registration": value}


def report_text(report: dict[str, Any]) -> str:
    """The erasure's report as the operator reads it after the fact."""
    lines = [
        f"Erased: {report.get('registrations')} registrations, {report.get('changes')} changes "
        f"(audit {report.get('audit_id')})"
    ]
    for table, counts in sorted((report.get("touched") or {}).items()):
        done = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        lines.append(f"  {table}: {done}")
    leads = report.get("marketo_lead_ids") or []
    if leads:
        lines.append(
            "Marketo lead ids delivered (delete them in Marketo too): "
            + ", ".join(str(n) for n in leads)
        )
    for topic, n in sorted((report.get("tombstones") or {}).items()):
        lines.append(f"  {topic}: {n} tombstones")
    if report.get("tombstone_error"):
        lines.append(f"  {report['tombstone_error']} (erase again to retry)")
    for destination in report.get("exported_to") or []:
        lines.append(f"Parquet files under {destination} still hold this person")
    return "\n".join(lines)


class ErasePerson(ApiCalls, ModalScreen[None]):
    CSS_PATH = "erase_person.tcss"
    SCOPE: ClassVar[str] = "erase"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("erase")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as box:
            box.border_title = "Erase a person"
            box.border_subtitle = "esc closes"
            yield Static(QUESTION, id="question", markup=False)
            yield Input(placeholder="email or registration code", id="who")
            yield Input(placeholder="type it again to confirm, then enter", id="again")
            yield Static("", id="result", markup=False)

    def on_mount(self) -> None:
        self.query_one("#who", Input).focus()

    @on(Input.Submitted, "#who")
    def _next(self) -> None:
        self.query_one("#again", Input).focus()

    @on(Input.Submitted, "#again")
    def _confirm(self) -> None:
        who = self.query_one("#who", Input).value.strip()
        again = self.query_one("#again", Input).value.strip()
        result = self.query_one("#result", Static)
        if not who:
            result.update("Type the person's email or registration code first: nothing erased")
        elif again != who:
            result.update("The two entries differ: nothing erased")
        else:
            result.update("Erasing… (control rewrites the tables that held the person)")
            self.erase(who)

    @api_worker("erase")
    async def erase(self, who: str) -> None:
        report = await self.call_api("erase", self.console.client.erase_person(selector_of(who)))
        self.query_one("#result", Static).update(safe(report_text(report), keep="\n"))
        for field in ("#again", "#who"):
            self.query_one(field, Input).value = ""
        self.query_one("#who", Input).focus()

    @on(ApiFailed)
    def _failed(self, message: ApiFailed) -> None:
        message.stop()
        self.query_one("#result", Static).update(f"Refused, nothing erased: {message.error}")

    def action_close(self) -> None:
        self.dismiss(None)

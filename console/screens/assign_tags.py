"""Tag one item at account level: a registration status, session registration status or event
status gets the tags flows select it by.

Tagging a status is the fix for the most common data failure ("status 'X' in event E resolves
no tags"), so it is a form of its own, opened from Tags & Events (`a`) and from a retry item
whose status resolves no tags (`T`). Control validates the tags (an unknown one is refused and
named, shown here beside the field); the dialog closes with control's answer (the tags and
assignments as `GET /api/v1/tags` gives them) only when the change was saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker

from apiclient.errors import ApiError, RequestRefused
from console import actions
from console.calls import ApiCalls, api_worker
from console.fmt import esc, safe
from console.screens.base import pass_worker_error_to_app

KINDS: dict[str, tuple[str, str]] = {
    "registration_statuses": ("registration status", "registration_status"),
    "session_registration_statuses": ("session registration status", "session_registration_status"),
    "event_statuses": ("event status", "event_status"),
}
"""Assignment kind → (what the operator calls it, the tag object kind it needs)."""


def kinds_of_tag(tag: dict[str, Any]) -> list[str]:
    """The assignment kinds a tag may be applied to, in form order."""
    objects = set(tag.get("objects") or [])
    return [kind for kind, (_, needed) in KINDS.items() if needed in objects]


def split_tags(text: str) -> list[str]:
    return list(dict.fromkeys(t.strip() for t in text.replace(";", ",").split(",") if t.strip()))


class AssignTagsModal(ApiCalls, ModalScreen[dict[str, Any] | None]):
    """Set the tags of one item (an empty list removes its assignment)."""

    CSS_PATH = Path(__file__).with_name("assign_tags.tcss")
    SCOPE: ClassVar[str] = "assign"
    BINDINGS: ClassVar[list[BindingType]] = [*actions.bindings("assign")]

    def __init__(
        self,
        tags_body: dict[str, Any],
        *,
        kind: str = "registration_statuses",
        label: str = "",
        add: tuple[str, ...] = (),
        context: str = "",
    ) -> None:
        super().__init__()
        self.tags_body = tags_body
        self.kind = kind if kind in KINDS else "registration_statuses"
        self.label = label
        self.add = add
        self.context = context

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as box:
            box.border_title = "Assign tags (account level)"
            box.border_subtitle = "ctrl+s save · esc cancel"
            if self.context:
                yield Static(safe(self.context, keep="\n"), id="context", markup=False)
            yield Label("Item kind")
            yield Select(
                [(words, kind) for kind, (words, _) in KINDS.items()],
                value=self.kind,
                allow_blank=False,
                id="kind",
            )
            yield Label("Label (as Certain shows it, e.g. Need photo)")
            yield Input(safe(self.label), id="label")
            yield Label("Tags (comma-separated; empty removes the assignment)")
            yield Input(", ".join(self._tags_for(self.kind, self.label)), id="tags")
            yield Static(id="hint", markup=False)
            yield Static(id="error", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Save ^s", id="save", variant="primary")
                yield Button("Cancel esc", id="cancel")

    def on_mount(self) -> None:
        self._hint()
        self.query_one("#tags" if self.label else "#label", Input).focus()

    def _current(self, kind: str) -> dict[str, list[str]]:
        return dict((self.tags_body.get("assignments") or {}).get(kind) or {})

    def _label(self) -> str:
        """The label typed, or the label the dialog was opened with when the box still shows
        it: the box shows a label's control characters escaped, which is not the label."""
        typed = self.query_one("#label", Input).value
        return self.label if typed == safe(self.label) else typed

    def _tags_for(self, kind: str, label: str) -> list[str]:
        """What the item carries now, plus the tags this dialog was opened to add."""
        return list(dict.fromkeys([*self._current(kind).get(label.strip(), []), *self.add]))

    def _hint(self) -> None:
        kind = str(self.query_one("#kind", Select).value)
        words, needed = KINDS[kind]
        usable = [
            t["name"]
            for t in self.tags_body.get("tags") or []
            if needed in (t.get("objects") or [])
        ]
        label = self._label().strip()
        now = self._current(kind).get(label)
        lines = [f"tags for a {words}: {', '.join(usable) or 'none (add one to the account)'}"]
        if label:
            lines.append(
                f"'{label}' now: {', '.join(now)}"
                if now
                else f"'{label}' has no tag at account level"
            )
        self.query_one("#hint", Static).update(safe("\n".join(lines), keep="\n"))

    @on(Select.Changed, "#kind")
    @on(Input.Changed, "#label")
    def item_changed(self, event: Select.Changed | Input.Changed) -> None:
        kind = str(self.query_one("#kind", Select).value)
        label = self._label()
        if isinstance(event, Input.Changed) or label.strip():
            self.query_one("#tags", Input).value = ", ".join(self._tags_for(kind, label))
        self._hint()

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        if self.console.read_only:
            self._error("read-only console: tag assignments cannot be changed here")
            return
        for box in self.query(Input):
            box.remove_class("error")
        kind = str(self.query_one("#kind", Select).value)
        label = self._label().strip()
        if not label:
            self.query_one("#label", Input).add_class("error")
            self._error("Label: expected the item's label as Certain shows it, got nothing")
            return
        tags = split_tags(self.query_one("#tags", Input).value)
        self._error("")
        self.save(kind, label, tags)

    @api_worker("assign-save")
    async def save(self, kind: str, label: str, tags: list[str]) -> None:
        version = self.tags_body.get("version")
        assigning = self.console.client.assign_tags(
            kind, label, tags, version if isinstance(version, int) else None
        )
        answer = await self.call_api("assign tags", assigning, failed=self._refused)
        self.dismiss({**answer, "saved": {"kind": kind, "label": label}})

    def _refused(self, error: ApiError) -> None:
        """Shown in the dialog, which stays open; a refusal naming the tags marks their box."""
        self._error(error.message)
        if isinstance(error, RequestRefused) and any(
            p.path.startswith(("tags", "assignments")) for p in error.problems
        ):
            self.query_one("#tags", Input).add_class("error")

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        pass_worker_error_to_app(self, event)

    def _error(self, message: str) -> None:
        self.query_one("#error", Static).update(Text(f"✗ {message}", "bold red") if message else "")


def describe(answer: dict[str, Any]) -> str:
    """What a saved assignment did (the dialog's answer), for a notification."""
    saved = answer.get("saved") or {}
    kind, label = str(saved.get("kind", "")), str(saved.get("label", ""))
    words = KINDS.get(kind, (kind, ""))[0]
    tags = ((answer.get("assignments") or {}).get(kind) or {}).get(label)
    return esc(
        f"{words} '{label}': tagged {', '.join(tags)}"
        if tags
        else f"{words} '{label}': assignment removed"
    )

"""A Certain source's form: where Signal polls (host, account code, user and password), which
events it watches, how often and from when; Save & Test.

The password is write-only with a client secret's rules and labels: the form never receives it,
says whether one is set and where control keeps it, and sends one only when the operator typed
it. Control keeps a stored password while the host and user stay; a save that moves either
without a new password clears it, and the form says so. Save & Test signs in with the settings on
the form *before* saving them, so a wrong password never goes live: the form saves only after a
passing test or a confirmed "save anyway". Saving goes through control's configuration
(versioned, audited, published); a source that Certain stopped with a 401 polls again once saved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.validation import Function, Number
from textual.widgets import Input, Label, Select, Switch

from apiclient.rows import SourceRow, TestResult
from console.messages import SourceSaved, SourceTested
from console.screens.candidate_form import CandidateForm, Problems
from console.screens.form_parts import is_url, secret_words

CSS: list[str | PurePath] = [
    Path(__file__).with_name("connections.tcss"),
    Path(__file__).with_name("source_form.tcss"),
]
"""The connection form's styles, and the events choice's."""
HOSTS = ("https://app.certain.com", "https://appeu.certain.com")
SETTINGS = (
    "id",
    "name",
    "host",
    "account_code",
    "username",
    "events",
    "poll_interval_s",
    "start",
    "request_budget_per_minute",
    "active",
)
"""What a source's body holds besides its password (the rest of a listed row is state)."""
EVENT_CHOICES = [
    ("all active events", "all"),
    ("these event codes", "list"),
    ("events with an event tag", "tag"),
]


def source_body(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A listed source's settings, as a save or a test sends them back (no password: control
    keeps the stored one)."""
    return {k: raw[k] for k in SETTINGS if k in raw}


def host_url(value: str) -> str:
    """`app.certain.com` → `https://app.certain.com`: the form takes a bare host name too."""
    value = value.strip()
    if value and "://" not in value:
        value = f"https://{value}"
    return value.rstrip("/")


def is_start(value: str) -> bool:
    value = value.strip()
    if value in ("", "now"):
        return True
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def password_label(row: SourceRow | None, cleared: bool = False) -> str:
    if row is None:
        return "Password"
    return secret_words(
        "Password",
        is_set=row.password_set,
        source=row.password_source,
        updated_at=row.raw.get("password_updated_at"),
        cleared=cleared or bool(row.password_cleared),
    )


def events_choice(events: Any) -> tuple[str, str]:
    """(Select value, text of the codes/tag field) for a source's `events`."""
    if isinstance(events, list):
        return "list", ", ".join(str(e) for e in events)
    if isinstance(events, dict):
        return "tag", str(events.get("tag", ""))
    return "all", ""


class SourceForm(CandidateForm[SourceRow]):
    """Add or edit one Certain source (Save & Test and "save anyway": `CandidateForm`)."""

    CSS_PATH = CSS
    SCOPE = "source-form"
    WHAT = "Certain source"
    SECRET_ID = "password"
    SECRET_LABEL_ID = "password-label"
    SECRET_NOUN = "Password"
    IF_SAVED_ANYWAY = "The source stops again if Certain refuses them."
    FIELD_OF: ClassVar[Mapping[str, str]] = {"events": "event_codes"}

    def __init__(self, row: SourceRow | None) -> None:
        super().__init__(row)
        self.title_text = f"Certain source {row.name}" if row else "New Certain source"

    def body(self) -> ComposeResult:
        raw = self.row.raw if self.row else {}
        choice, codes = events_choice(raw.get("events", "all"))
        with VerticalScroll(id="form") as form:
            form.border_title = "Certain source"
            yield Label("Id (stable key)")
            yield Input(
                raw.get("id", ""),
                id="id",
                disabled=self.row is not None,
                placeholder="acme-certain",
            )
            yield Label("Name")
            yield Input(raw.get("name", ""), id="name", placeholder="ACME on Certain")
            yield Label("Host (app.certain.com, appeu.certain.com or a URL)")
            yield Input(
                str(raw.get("host", "")).rstrip("/"),
                id="host",
                placeholder="app.certain.com",
                suggester=SuggestFromList(HOSTS, case_sensitive=False),
                validators=[Function(lambda v: is_url(host_url(v)), "must be a host or URL")],
                validate_on=["blur", "submitted"],
            )
            yield Label("Account code")
            yield Input(raw.get("account_code", ""), id="account_code", placeholder="ACME")
            yield Label("User")
            yield Input(raw.get("username", ""), id="username", placeholder="signal-api")
            yield Label(self.secret_label(), id="password-label")
            yield Input(
                "",
                id="password",
                password=True,
                placeholder="leave empty to keep" if self.row else "password",
            )
            yield Label("Events to watch")
            yield Select(EVENT_CHOICES, value=choice, allow_blank=False, id="events")
            yield Label(self._codes_label(choice), id="codes-label")
            yield Input(codes, id="event_codes", disabled=choice == "all")
            yield Label("Poll interval (seconds, 1–3600)")
            yield Input(
                f"{raw.get('poll_interval_s', 30):g}",
                id="poll_interval_s",
                type="number",
                validators=[Number(1, 3600)],
            )
            yield Label("Start point (now, or a time like 2026-11-28T00:00:00Z)")
            yield Input(
                str(raw.get("start", "now")),
                id="start",
                validators=[Function(is_start, "'now' or an ISO time with a timezone")],
                validate_on=["blur", "submitted"],
            )
            yield Label("Requests per minute at most (1–6000)")
            yield Input(
                str(raw.get("request_budget_per_minute", 60)),
                id="request_budget_per_minute",
                type="integer",
                validators=[Number(1, 6000)],
            )
            with Horizontal(classes="switches"):
                yield Switch(bool(raw.get("active", True)), id="active")
                yield Label("Active (polling)")
        yield from self.form_buttons()

    def secret_label(self) -> str:
        return password_label(self.row)

    @staticmethod
    def _codes_label(choice: str) -> str:
        if choice == "list":
            return "Event codes (comma-separated)"
        if choice == "tag":
            return "Event tag"
        return "Event codes or tag (not used: every active event)"

    @on(Select.Changed, "#events")
    def events_changed(self, event: Select.Changed) -> None:
        choice = str(event.value)
        self.query_one("#codes-label", Label).update(self._codes_label(choice))
        self.query_one("#event_codes", Input).disabled = choice == "all"

    def values(self) -> tuple[dict[str, Any], str | None, Problems]:
        """The body, the typed password (None: keep) and the fields that cannot be sent."""

        def text(name: str) -> str:
            return self.query_one(f"#{name}", Input).value.strip()

        problems: Problems = []
        host = host_url(text("host"))
        if not is_url(host):
            problems.append(("host", "Host must be a host name or an http(s) URL"))
        choice = str(self.query_one("#events", Select).value)
        codes = [c.strip() for c in text("event_codes").split(",") if c.strip()]
        events: Any = "all"
        if choice == "list":
            events = codes
            if not codes:
                problems.append(("event_codes", "Enter at least one event code"))
        elif choice == "tag":
            events = {"tag": text("event_codes")}
            if not text("event_codes"):
                problems.append(("event_codes", "Enter the event tag"))
        numbers: dict[str, float] = {}
        for name, what in (
            ("poll_interval_s", "Poll interval"),
            ("request_budget_per_minute", "Requests per minute"),
        ):
            try:
                numbers[name] = float(text(name))
            except ValueError:
                problems.append((name, f"{what} must be a number"))
        if not is_start(text("start")):
            problems.append(("start", "Start point must be 'now' or an ISO time with a timezone"))
        body: dict[str, Any] = {
            "id": text("id"),
            "name": text("name"),
            "host": host,
            "account_code": text("account_code"),
            "username": text("username"),
            "events": events,
            "poll_interval_s": numbers.get("poll_interval_s", 0),
            "start": text("start") or "now",
            "request_budget_per_minute": int(numbers.get("request_budget_per_minute", 0)),
            "active": self.query_one("#active", Switch).value,
        }
        password = self.query_one("#password", Input).value or None
        return body, password, problems

    def test_candidate(self, body: dict[str, Any], secret: str | None) -> Awaitable[TestResult]:
        return self.console.client.test_candidate_source(body, secret)

    def save_candidate(self, body: dict[str, Any], secret: str | None) -> Awaitable[SourceRow]:
        return self.console.client.save_source(
            body, create=self.row is None, password=secret, version=self.version
        )

    def tested_message(self, key: str, result: TestResult) -> Message:
        return SourceTested(key, result)

    def saved_message(self, row: SourceRow) -> Message:
        return SourceSaved(row)

    def cleared_note(self, row: SourceRow) -> str | None:
        return row.password_cleared

    @on(SourceSaved)
    def saved(self, message: SourceSaved) -> None:
        self.show_saved(message.source)

    @on(SourceTested)
    def tested(self, message: SourceTested) -> None:
        self.show_tested(message.result)

"""Replay: send a flow's archived changes through it again, after the flow was changed.

Dry run first, always: the screen only starts a real replay of exactly the scope (flow, event
code or date range, and "only changes not yet delivered") it last dry-ran, whose counts and
sample payload are on screen, and only after the operator types the flow's id. A replay's
progress comes from `GET /replays/{id}` until every published change has its final outcome:
what it published, then delivered / failed / not sent / awaiting outcome, as control words it.
While it publishes, ctrl+x cancels the rest: what was published stays published.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Checkbox, Input, Label, Select, Static

from console.calls import api_worker
from console.fmt import esc
from console.messages import ApiFailed, ReplayDryRun, ReplayFlowsLoaded, ReplayProgress
from console.screens.base import BaseScreen
from console.screens.modals import ConfirmModal, TypeToConfirmModal

POLL_S = 0.5
SAMPLE_CHARS = 1200


def parse_bound(text: str, *, end: bool) -> datetime:
    """`2026-11-27` (a whole UTC day: its start for `from`, the next midnight for `to`) or an
    ISO 8601 time (UTC when it names no zone). Raises ValueError."""
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def scope_text(scope: dict[str, Any]) -> str:
    if scope.get("event_code"):
        return f"event {scope['event_code']}"
    return f"{scope.get('from')} → {scope.get('to')}"


class ReplayScreen(BaseScreen):
    CSS_PATH = Path(__file__).with_name("replay.tcss")
    SCOPE = "replay"
    TITLE_TEXT = "Replay"
    POLLS = False

    def __init__(self) -> None:
        super().__init__()
        self.dry_scope: dict[str, Any] | None = None
        self.dry_report: dict[str, Any] | None = None
        self.replay_id: str | None = None
        self.progress: dict[str, Any] | None = None
        self._poller: Timer | None = None
        self.flows_ready = False
        self._pending_args: list[str] = []

    def body(self) -> ComposeResult:
        with Vertical(id="replay-form"):
            with Horizontal():
                yield Label("Flow")
                yield Select([], id="replay-flow", prompt="(choose a flow)")
            with Horizontal():
                yield Label("Event code")
                yield Input(placeholder="one event, e.g. SUMMIT26", id="replay-event")
            with Horizontal():
                yield Label("or from")
                yield Input(placeholder="2026-11-27 or ISO time", id="replay-from")
                yield Label("  to")
                yield Input(placeholder="2026-11-28 (included)", id="replay-to")
            with Horizontal():
                yield Label("", classes="bare")
                yield Checkbox(
                    "only changes not yet delivered for this flow", id="replay-undelivered"
                )
        report = Static(
            "Choose a flow and an event code or a date range, then ctrl+d for a dry run: it "
            "shows what would be sent, and sends nothing.",
            id="replay-report",
        )
        with VerticalScroll(id="replay-report-box") as box:
            box.border_title = "dry run"
            yield report
        yield Static("no replay started", id="replay-progress")

    def on_mount(self) -> None:
        super().on_mount()
        self.load_flows()

    @api_worker("replay-load")
    async def load_flows(self) -> None:
        flows = await self.call_api("load flows", self.console.client.flows())
        self.post_message(ReplayFlowsLoaded(flows))

    @on(ReplayFlowsLoaded)
    def flows_loaded(self, message: ReplayFlowsLoaded) -> None:
        options = [(Text(f"{f.name} ({f.id})"), f.id) for f in message.flows if f.complete]
        self.query_one("#replay-flow", Select).set_options(options)
        self.flows_ready = True
        if self._pending_args:
            args, self._pending_args = self._pending_args, []
            self.apply_command_args(args)

    def apply_command_args(self, args: list[str]) -> None:
        """`:replay <flow> [event code]` (kept until the flow list has arrived)."""
        if not self.flows_ready:
            self._pending_args = list(args)
            return
        if args:
            box = self.query_one("#replay-flow", Select)
            try:
                box.value = args[0]
            except Exception:
                self.notify(f"no complete flow {args[0]!r}", severity="warning")
        if len(args) > 1:
            self.query_one("#replay-event", Input).value = args[1]

    async def action_leave_box(self) -> None:
        """esc in a text box leaves it for the flow choice, where `q` and the digits are keys
        again; esc anywhere else leaves the screen, as on the other form screens."""
        if isinstance(self.focused, Input):
            self.query_one("#replay-flow", Select).focus()
            return
        await self.app.run_action("back")

    # --- scope -----------------------------------------------------------------------------

    def _only_undelivered(self) -> bool:
        return self.query_one("#replay-undelivered", Checkbox).value

    def scope(self) -> dict[str, Any] | str:
        """The scope on screen as the API takes it, or what is wrong with it."""
        flow = self.query_one("#replay-flow", Select).value
        if not isinstance(flow, str) or not flow:
            return "choose a flow"
        event = self.query_one("#replay-event", Input).value.strip()
        start = self.query_one("#replay-from", Input).value.strip()
        stop = self.query_one("#replay-to", Input).value.strip()
        if event and (start or stop):
            return "give an event code or a date range, not both"
        only = {"only_undelivered": True} if self._only_undelivered() else {}
        if event:
            return {"flow_id": flow, "event_code": event, **only}
        if not (start and stop):
            return "give an event code, or both from and to"
        try:
            begin, end = parse_bound(start, end=False), parse_bound(stop, end=True)
        except ValueError:
            return "from and to are dates (2026-11-27) or ISO 8601 times"
        if begin >= end:
            return "from must be before to"
        return {"flow_id": flow, "from": begin.isoformat(), "to": end.isoformat(), **only}

    # --- dry run ---------------------------------------------------------------------------

    def action_dry_run(self) -> None:
        scope = self.scope()
        if isinstance(scope, str):
            self.notify(scope, severity="warning")
            return
        report = self.query_one("#replay-report", Static)
        report.update(Text(f"Dry run of {scope['flow_id']} for {scope_text(scope)}…"))
        report.loading = True
        self.dry_run(scope)

    @api_worker("replay-dry")
    async def dry_run(self, scope: dict[str, Any]) -> None:
        running = self.console.client.replay_dry_run(scope)
        self.post_message(ReplayDryRun(scope, await self.call_api("dry-run the replay", running)))

    @on(ReplayDryRun)
    def dry_run_done(self, message: ReplayDryRun) -> None:
        self.dry_scope, self.dry_report = message.scope, message.report
        report = self.query_one("#replay-report", Static)
        report.loading = False
        box = self.query_one("#replay-report-box", VerticalScroll)
        box.border_title = esc(
            f"dry run · {message.scope['flow_id']} · {scope_text(message.scope)}"
        )
        box.scroll_home(animate=False)
        report.update(self._report_text(message.report))

    def _report_text(self, report: dict[str, Any]) -> Text:
        counts = report.get("counts") or {}
        text = Text()
        text.append(f"{report.get('in_scope', 0)} changes in scope", style="bold")
        text.append(f" (of {report.get('scanned', 0)} scanned)\n")
        if report.get("only_undelivered"):
            text.append(
                f"{report.get('skipped_delivered', 0)} already delivered by this flow, left out\n"
            )
        text.append(f"would send {counts.get('would_send', 0)}", style="bold green")
        for key, label in (
            ("not_activated", "not activated"),
            ("filtered_out", "filtered out"),
            ("data_failure", "data failures"),
            ("unreadable", "unreadable"),
        ):
            value = counts.get(key, 0)
            text.append(
                f" · {label} {value}", style="red" if key == "data_failure" and value else ""
            )
        text.append("\n")
        for warning in report.get("warnings") or []:
            text.append(f"⚠ {warning}\n", style="yellow")
        for reason in (report.get("reasons") or [])[:5]:
            text.append(f"  {reason.get('count')}× {reason.get('reason')}\n", style="dim")
        sample = report.get("sample") or []
        if sample:
            first = sample[0]
            payload = first.get("payload", first) if isinstance(first, dict) else first
            body = json.dumps(payload, indent=1, default=str)
            if len(body) > SAMPLE_CHARS:
                body = body[:SAMPLE_CHARS] + "\n…"
            text.append(f"sample payload (1 of {len(sample)}):\n", style="bold")
            text.append(body)
        else:
            text.append("no sample: nothing in scope would be sent", style="dim")
        text.append("\nctrl+s replays for real (you type the flow id to confirm)", style="dim")
        return text

    # --- the real replay -------------------------------------------------------------------

    def action_start_replay(self) -> None:
        scope = self.scope()
        if isinstance(scope, str):
            self.notify(scope, severity="warning")
            return
        if self.running:
            self.notify("a replay is publishing; cancel it (ctrl+x) or wait", severity="warning")
            return
        if scope != self.dry_scope or self.dry_report is None:
            self.notify("run a dry run of this scope first (ctrl+d)", severity="warning")
            return
        would = (self.dry_report.get("counts") or {}).get("would_send", 0)
        question = (
            f"Replay flow '{scope['flow_id']}' for {scope_text(scope)}? The dry run found "
            f"{would} changes that would be sent to Marketo — again, where they were delivered."
        )

        def answer(ok: bool | None) -> None:
            if ok:
                self.start_replay(scope)

        self.app.push_screen(
            TypeToConfirmModal(question, scope["flow_id"], title="Replay for real"), answer
        )

    @property
    def running(self) -> bool:
        """The replay is publishing: there is something left to cancel."""
        return self.progress is not None and self.progress.get("state") == "publishing"

    @property
    def following(self) -> bool:
        """The replay's published changes do not all have their final outcome yet."""
        return self.progress is not None and not self.progress.get("finished", True)

    @api_worker("replay-start")
    async def start_replay(self, scope: dict[str, Any]) -> None:
        starting = self.console.client.replay_start(scope)
        self.post_message(ReplayProgress(await self.call_api("start the replay", starting)))

    @on(ReplayProgress)
    def progress_arrived(self, message: ReplayProgress) -> None:
        progress = message.progress
        first = self.replay_id != progress.get("id")
        self.replay_id = str(progress.get("id") or "")
        self.progress = progress
        self._render_progress(progress)
        if self.following and self._poller is None:
            self._poller = self.set_interval(POLL_S, self.poll_replay)
        elif not self.following and (self._poller is not None or first):
            self._stop_polling()
            state = progress.get("state")
            severity = "information" if state == "done" else "warning"
            self.notify(
                f"Replay {self.replay_id} {progress.get('summary') or state}",
                severity=severity,  # type: ignore[arg-type]
                timeout=8,
            )

    def _stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.stop()
            self._poller = None

    def poll_replay(self) -> None:
        if self.replay_id:
            self.fetch_progress(self.replay_id)

    @api_worker("replay-poll")
    async def fetch_progress(self, replay_id: str) -> None:
        following = self.console.client.replay(replay_id)
        self.post_message(ReplayProgress(await self.call_api("follow the replay", following)))

    def _render_progress(self, progress: dict[str, Any]) -> None:
        box = self.query_one("#replay-progress", Static)
        state = str(progress.get("state", "?"))
        text = f"replay {progress.get('id')} · {progress.get('summary') or state}"
        if state == "publishing":
            text += " · ctrl+x cancels the rest"
        box.update(Text(text))
        box.set_class(state == "publishing", "running")
        box.set_class(self.following and state != "publishing", "awaiting")

    def action_cancel_replay(self) -> None:
        if not self.replay_id or self.progress is None:
            self.notify("no replay to cancel: start one with ctrl+s", severity="warning")
            return
        if not self.running:
            pending = int(self.progress.get("pending") or 0)
            waiting = f"; {pending} published changes await their outcome" if pending else ""
            state = str(self.progress.get("state")).replace("_", " ")
            self.notify(
                f"replay {self.replay_id} is {state}: nothing left to cancel{waiting}",
                severity="warning",
            )
            return
        replay_id = self.replay_id

        def answer(ok: bool | None) -> None:
            if ok:
                self.cancel_replay(replay_id)

        question = (
            f"Cancel replay {replay_id}? It stops publishing: "
            f"{self.progress.get('published', 0)} changes published so far stay published and "
            "go on to Marketo; the rest of the scope is not published."
        )
        self.app.push_screen(ConfirmModal(question, title="Cancel replay"), answer)

    @api_worker("replay-cancel")
    async def cancel_replay(self, replay_id: str) -> None:
        cancelling = self.console.client.replay_cancel(replay_id)
        self.post_message(ReplayProgress(await self.call_api("cancel the replay", cancelling)))

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self.query_one("#replay-report", Static).loading = False
        self.console.report_error(message.what, message.error)

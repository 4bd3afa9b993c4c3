"""Save & Test for a form with a write-only secret, written once: the connection form (a client
secret) and the Certain source form (a password) test, save, mark refused fields and offer "save
anyway" the same way, so a change to that flow is made here and both forms follow.

Save & Test tests the settings on the form *before* saving them (control's candidate test), so
wrong credentials never go live: it saves only when the test passes, or when the operator
confirms "save anyway" after a failed one. Nothing is saved while the dialog is open. The secret
box is emptied after each save; the label says whether a secret is set, and a save that made
control clear it (its identity moved without a new one) says so. Esc with unsaved edits asks
first, as the flow editor does: save (Save & Test, closing once saved), discard or keep editing.

A form says what it is (`WHAT`, the secret's ids and noun, `IF_SAVED_ANYWAY`) and supplies its
fields (`values`), its two calls (`test_candidate`, `save_candidate`) and its typed messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, LoadingIndicator, Select, Static, Switch

from apiclient.errors import ApiError, RequestRefused
from apiclient.rows import TestResult
from console.calls import api_worker
from console.messages import ApiFailed
from console.screens.base import BaseScreen
from console.screens.form_parts import CandidateFailed, test_text
from console.screens.modals import ConfirmModal, UnsavedModal

Problems = list[tuple[str, str]]
"""(input id, why) for each field that cannot be sent as typed."""


class _Row(Protocol):
    """What the form needs of a saved row: its name and the body it was saved from."""

    @property
    def name(self) -> str: ...

    @property
    def raw(self) -> dict[str, Any]: ...


RowT = TypeVar("RowT", bound=_Row)


class CandidateForm(BaseScreen, Generic[RowT]):
    """Add or edit one row with a write-only secret; stays open after a failed test so the
    operator can fix it."""

    POLLS = False
    WHAT: ClassVar[str]
    """What is being edited, as the messages name it ("connection", "Certain source")."""
    SECRET_ID: ClassVar[str]
    """The secret's input id."""
    SECRET_LABEL_ID: ClassVar[str]
    """The id of the secret's label."""
    SECRET_NOUN: ClassVar[str]
    """The secret as a notice's title names it ("Client secret", "Password")."""
    IF_SAVED_ANYWAY: ClassVar[str]
    """What saving after a failed test risks, said in the "save anyway" question."""
    FIELD_OF: ClassVar[Mapping[str, str]] = {}
    """Input ids of the fields a refusal names, where they differ from the field's name."""

    def __init__(self, row: RowT | None) -> None:
        super().__init__()
        self.row = row
        self._testing = False
        self.baseline: list[tuple[str, object]] = []
        """The form as opened or last saved: what esc compares with to find unsaved edits."""
        self._close_when_saved = False

    # --- what each form supplies ------------------------------------------------------------

    def values(self) -> tuple[dict[str, Any], str | None, Problems]:
        """The body, the typed secret (None: keep the stored one) and the fields that cannot
        be sent."""
        raise NotImplementedError

    def secret_label(self) -> str:
        raise NotImplementedError

    def test_candidate(self, body: dict[str, Any], secret: str | None) -> Awaitable[TestResult]:
        raise NotImplementedError

    def save_candidate(self, body: dict[str, Any], secret: str | None) -> Awaitable[RowT]:
        """Save the body (created when the form has no row yet, else at the row's version)."""
        raise NotImplementedError

    def tested_message(self, key: str, result: TestResult) -> Message:
        raise NotImplementedError

    def saved_message(self, row: RowT) -> Message:
        raise NotImplementedError

    def cleared_note(self, row: RowT) -> str | None:
        """Why control cleared the secret in this save, if it did."""
        raise NotImplementedError

    # --- the flow, written once -------------------------------------------------------------

    @property
    def version(self) -> Any:
        """The version the row was read at (None for a new one): a save against a newer one
        is refused rather than overwriting it."""
        return self.row.raw.get("version") if self.row else None

    def form_buttons(self) -> ComposeResult:
        with Horizontal(id="form-buttons"):
            yield Button("Save & Test ^t", id="save-test", variant="primary")
            yield Button("Save ^s", id="save")
            yield LoadingIndicator(id="busy")
        yield Static(id="result")

    def on_mount(self) -> None:
        self.query_one("#busy").display = False
        if self.console.read_only:
            for button in self.query(Button):
                button.display = False
        self.query_one("#name" if self.row else "#id", Input).focus()
        self.baseline = self.form_state()

    def _busy(self, busy: bool, note: str | Text = "") -> None:
        self.query_one("#busy").display = busy
        for button in self.query(Button):
            button.disabled = busy
        if note:
            self.query_one("#result", Static).update(note)

    # --- leaving --------------------------------------------------------------------------

    def form_state(self) -> list[tuple[str, object]]:
        """Every field of the form as it stands (the secret box too: a typed secret is an
        edit)."""
        fields = self.query("#form Input, #form Switch, #form Select, #form Checkbox")
        return [
            (str(w.id), w.value)
            for w in fields
            if isinstance(w, Input | Switch | Select | Checkbox)
        ]

    def unsaved(self) -> bool:
        return not self.console.read_only and self.form_state() != self.baseline

    def action_close(self) -> None:
        """Esc: with unsaved edits, ask as the flow editor does (save / discard / keep
        editing); save is Save & Test, and the form closes once the save went through."""
        if not self.unsaved():
            self.dismiss()
            return
        name = self.query_one("#name", Input).value.strip() or f"this new {self.WHAT}"

        def answer(choice: str | None) -> None:
            if choice == "save":
                self._close_when_saved = True
                self._start(test=True)
            elif choice == "discard":
                self.dismiss()

        question = f"'{name}' has edits that are not saved. Save them, discard them, or go on?"
        self.app.push_screen(UnsavedModal(question), answer)

    def _saved_close(self) -> None:
        if self._close_when_saved:
            self._close_when_saved = False
            self.dismiss()

    def action_save(self) -> None:
        self._start(test=False)

    def action_save_and_test(self) -> None:
        self._start(test=True)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self._start(test=event.button.id == "save-test")

    def _start(self, test: bool) -> None:
        if self.console.read_only:
            return
        for box in self.query(Input):
            box.remove_class("error")
        body, secret, problems = self.values()
        if problems:
            for name, _ in problems:
                self._mark(name)
            message = "; ".join(why for _, why in problems)
            self.query_one("#result", Static).update(Text(f"✗ {message}", "red"))
            self._close_when_saved = False
            return
        self._testing = test
        if test:
            self._busy(True, "Testing before saving…")
            self.test_then_save(body, secret)
        else:
            self._busy(True, "Saving…")
            self.save(body, secret)

    @api_worker("candidate-save")
    async def test_then_save(self, body: dict[str, Any], secret: str | None) -> None:
        """Test the form's settings; save them only when the test passes (a failed test asks
        whether to save anyway, `CandidateFailed`)."""
        what = f"test the {self.WHAT}"

        def refused(error: ApiError) -> Message | None:
            if not isinstance(error, RequestRefused):
                return ApiFailed(what, error.message)
            self.post_message(CandidateFailed(body, secret, None, error.message))
            self._mark_problems(error)
            return None

        result = await self.call_api(what, self.test_candidate(body, secret), failed=refused)
        if not result.ok:
            self.post_message(CandidateFailed(body, secret, result, result.message))
            return
        await self._save(body, secret)
        self.post_message(self.tested_message(str(body.get("id", "")), result))

    @api_worker("candidate-save")
    async def save(self, body: dict[str, Any], secret: str | None) -> None:
        await self._save(body, secret)

    async def _save(self, body: dict[str, Any], secret: str | None) -> None:
        """Save the form (a refusal marks the fields it names); the worker stops on failure."""
        what = f"save the {self.WHAT}"

        def refused(error: ApiError) -> None:
            self.post_message(ApiFailed(what, error.message))
            if isinstance(error, RequestRefused):
                self._mark_problems(error)

        saved = await self.call_api(what, self.save_candidate(body, secret), failed=refused)
        self.post_message(self.saved_message(saved))

    def _mark_problems(self, error: RequestRefused) -> None:
        """Mark the fields a refusal names (`service_url.host` → `#service_url`,
        `events[0]` → `#event_codes`)."""
        for problem in error.problems:
            name = problem.path.split(".")[0].split("[")[0]
            self.call_later(self._mark, self.FIELD_OF.get(name, name))

    def _mark(self, name: str) -> None:
        for box in self.query(f"#{name}").results(Input):
            box.add_class("error")

    @on(CandidateFailed)
    def candidate_failed(self, message: CandidateFailed) -> None:
        """Nothing was saved: say why, and let the operator save anyway on purpose."""
        why = message.reason
        self._busy(False, Text(f"✗ Not saved — the test failed: {why}", style="bold red"))
        if message.result is None:
            self.console.report_error(f"test the {self.WHAT}", why)
        question = (
            f"The {self.WHAT} test failed: {why}\n\nNothing was saved. Save these settings "
            f"anyway? {self.IF_SAVED_ANYWAY}"
        )

        def answer(ok: bool | None) -> None:
            if ok:
                self._testing = False
                self._busy(True, "Saving without a passing test…")
                self.save(message.body, message.secret)
            else:
                self._close_when_saved = False

        self.app.push_screen(ConfirmModal(question, title="Save anyway?"), answer)

    def show_saved(self, row: RowT) -> None:
        """The form now edits the saved row: the id is fixed, the secret box empty again, and
        a secret that control cleared is said loudly."""
        self.row = row
        cleared = self.cleared_note(row)
        self.query_one("#id", Input).disabled = True
        box = self.query_one(f"#{self.SECRET_ID}", Input)
        box.value = ""
        box.placeholder = self.SECRET_NOUN.lower() if cleared else "leave empty to keep"
        self.query_one(f"#{self.SECRET_LABEL_ID}", Label).update(self.secret_label())
        self.baseline = self.form_state()
        self.notify(f"Saved {row.name}", timeout=2)
        if cleared:
            title = f"{self.SECRET_NOUN} cleared"
            self.notify(cleared, title=title, severity="warning", timeout=10)
            self._busy(False, Text(f"✓ Saved — {cleared}", style="bold yellow"))
        elif not self._testing:
            self._busy(False, "✓ Saved")
        if not self._testing:
            self._saved_close()

    def show_tested(self, result: TestResult) -> None:
        """A passing test, after which the settings were saved (a failing one saves nothing
        and comes as `CandidateFailed`)."""
        self._busy(False)
        text = test_text(result)
        if result.ok:
            text.append(" — saved")
            self.notify(f"{self.WHAT[0].upper()}{self.WHAT[1:]} test passed; saved", timeout=2)
        self.query_one("#result", Static).update(text)
        self._saved_close()

    @on(ApiFailed)
    def failed(self, message: ApiFailed) -> None:
        self._close_when_saved = False
        self._busy(False)
        self.query_one("#result", Static).update(Text(f"✗ {message.error}", style="bold red"))
        self.console.report_error(message.what, message.error)

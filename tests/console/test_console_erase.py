"""Erasing a person from the console (ctrl+e or the palette's "Erase a person…") against a real
control and DuckDB at 80x24: the email or registration code typed twice, the report shown
afterwards, the ledger without the person; a mismatch erases nothing; a read-only console
refuses with the reason."""

from __future__ import annotations

from textual.widgets import Static

from console.screens.erase_person import ErasePerson, report_text, selector_of
from tests.console.console_helpers import MakeConsole, keys, settle, type_text
from tests.console.control_harness import Control


def someone(control: Control) -> tuple[str, int]:
    """A registration code the seeded ledger holds, and how many changes carry it."""
    assert control.store is not None
    found = control.call(
        control.store.query(
            "SELECT registration_code, count(*) FROM changes "
            "WHERE registration_code IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
            max_rows=1,
        )
    )
    code, count = found.rows[0]
    return str(code), int(count)


def payloads_of(control: Control, code: str) -> list[str]:
    assert control.store is not None
    rows = control.call(
        control.store.query(
            f"SELECT payload FROM changes WHERE registration_code = '{code}'", max_rows=100
        )
    ).rows
    return [str(r[0]) for r in rows]


async def test_erase_a_person_typed_twice_shows_the_report(
    control: Control, make_console: MakeConsole
) -> None:
    code, changes = someone(control)
    app = make_console(control)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys(pilot, "ctrl+e")
        assert isinstance(app.screen, ErasePerson)
        await type_text(pilot, code)
        await keys(pilot, "enter")
        await type_text(pilot, code + "X")
        await keys(pilot, "enter")
        result = app.screen.query_one("#result", Static)
        assert "differ: nothing erased" in str(result.render())
        assert len(payloads_of(control, code)) == changes  # nothing erased

        app.screen.query_one("#again").value = ""  # type: ignore[attr-defined]
        await type_text(pilot, code)
        await keys(pilot, "enter")
        await settle(pilot)
        text = str(app.screen.query_one("#result", Static).render())
        assert f"Erased: 1 registrations, {changes} changes" in text, text
        assert "change_log:" in text
        assert payloads_of(control, code) == []  # no change carries their code any more

        # Again: no change of theirs is left to erase.
        await type_text(pilot, code)
        await keys(pilot, "enter")
        await type_text(pilot, code)
        await keys(pilot, "enter")
        await settle(pilot)
        assert "0 changes" in str(app.screen.query_one("#result", Static).render())
        await keys(pilot, "escape")
        assert not isinstance(app.screen, ErasePerson)


async def test_a_read_only_console_refuses_with_the_reason(
    control: Control, make_console: MakeConsole
) -> None:
    app = make_console(control, read_only=True)
    notes: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        original = app.notify

        def capture(message: str, **kw: object) -> None:
            notes.append(message)
            original(message, **kw)  # type: ignore[arg-type]

        app.notify = capture  # type: ignore[method-assign]
        await keys(pilot, "ctrl+e")
        assert not isinstance(app.screen, ErasePerson)
        await app.run_action("erase_person")  # as the palette or ':' would
        await settle(pilot)
        assert not isinstance(app.screen, ErasePerson)
        assert notes and all("read-only" in n for n in notes), notes


def test_selector_and_report_text() -> None:
    assert selector_of(" a@b.org ") == {"email": "a@b.org"}
    assert selector_of("REG1") == {"registration": "REG1"}
    text = report_text(
        {
            "registrations": 1,
            "changes": 2,
            "audit_id": "erasure-1",
            "touched": {"change_log": {"redacted": 2}},
            "marketo_lead_ids": [501],
            "tombstones": {"signal-delivered": 2},
            "exported_to": ["/srv/parquet"],
        }
    )
    assert "Marketo lead ids delivered (delete them in Marketo too): 501" in text
    assert "signal-delivered: 2 tombstones" in text
    assert "/srv/parquet" in text

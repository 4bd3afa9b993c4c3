"""How a Certain source's poller state reads on the Connections screen.

Control reports states as short codes (`stopped: unauthorized`); the operator reads what
happened and what to do about it: "stopped: credentials refused (401)" says the password (or
the user) is wrong and that nothing polls until the source is saved again.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from apiclient.rows import SourceRow
from console import fmt


def refused_status(row: SourceRow) -> str:
    """401 or 403 from the last error control kept ("Event/ACME: 403 …"); 401 otherwise."""
    error = row.last_error or ""
    return "403" if ": 403 " in error or error.startswith("403 ") else "401"


def state_text(row: SourceRow) -> Text:
    state = row.state
    if state == "polling":
        return Text("polling", style="green")
    if state == "backing off":
        when = row.retry_at.strftime("%H:%M:%S") if row.retry_at else ""
        return Text(f"backing off{f' until {when}' if when else ''}", style="yellow")
    if state == "stopped: unauthorized":
        return Text(f"stopped: credentials refused ({refused_status(row)})", style="bold red")
    if state.startswith("stopped"):
        return Text(state, style="bold red")
    return Text(state or "unknown", style="dim")


def lag_text(row: SourceRow) -> str:
    """Now minus the newest `dateModified` seen, as control measured it."""
    if row.lag_s is None:
        return "—"
    seconds = int(row.lag_s)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def last_poll_text(row: SourceRow, now: datetime) -> str:
    if row.last_poll_at is None:
        return "—"
    return fmt.ago((now - row.last_poll_at).total_seconds())


def records_text(row: SourceRow) -> str:
    return "—" if row.last_poll_records is None else str(row.last_poll_records)


def detail_text(row: SourceRow) -> Text:
    """The selected source in one or two lines: where it polls, and its last error."""
    text = Text(f"{fmt.safe(row.name)}: ", style="bold")
    text.append_text(state_text(row))
    text.append(f" · {fmt.safe(row.host.rstrip('/'))} · account {fmt.safe(row.account_code)}")
    if not row.password_set:
        text.append(" · no password", style="bold yellow")
    if row.errors:
        text.append(f" · {row.errors} error{'' if row.errors == 1 else 's'}")
    if row.last_error:
        text.append(f"\nlast error: {fmt.safe(row.last_error)}", style="red")
    return text

"""Text for the screens: states in words and symbols, never colour alone (NO_COLOR, SSH).

Data reaches the screens from attendees (names, status labels, reasons that quote them): every
helper here that turns a value into text shows its control characters, bidi overrides and line
separators escaped (`\x1b`, `\u202e`; `config.terminal_text`), so a value cannot drive the
operator's terminal. A screen that builds a `Text` from data itself passes the value through
`safe` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.text import Text

from config.terminal_text import escape_controls

BLOCKS = "▁▂▃▄▅▆▇█"


def active_text(active: bool) -> Text:
    return Text("● on", style="bold green") if active else Text("○ off", style="dim")


def mode_text(mode: str) -> Text:
    return Text("LIVE", style="bold reverse red") if mode == "live" else Text("TEST", style="bold")


def status_text(complete: bool) -> Text:
    return Text("complete", style="green") if complete else Text("incomplete", style="bold yellow")


def spark_text(values: Sequence[int]) -> str:
    """A one-line sparkline; all-zero history is a flat baseline."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return BLOCKS[0] * len(values)
    return "".join(BLOCKS[min(7, round(v / top * 7))] if v else " " for v in values)


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def short_time(text: str | None) -> str:
    """`HH:MM:SS` of an ISO time (UTC as the API sends it); the text (escaped) if it does not
    parse."""
    if not text:
        return ""
    try:
        return datetime.fromisoformat(text).strftime("%H:%M:%S")
    except ValueError:
        return safe(text)


def short_stamp(text: str | None) -> str:
    if not text:
        return ""
    try:
        return datetime.fromisoformat(text).strftime("%m-%d %H:%M")
    except ValueError:
        return safe(text)


def safe(value: object, keep: str = "") -> str:
    """`value` as text a terminal shows and never acts on: control characters, bidi overrides
    and line separators escaped, except those in `keep` (a multi-line body keeps `"\n"`)."""
    return escape_controls("" if value is None else str(value), keep)


def outcome_text(status: str) -> Text:
    styles = {"delivered": "green", "failed": "bold red", "parked": "yellow"}
    return Text(status, style=styles.get(status, ""))


def cell(value: object, width: int = 40) -> str:
    text = "" if value is None else str(value)
    text = safe(text.replace("\n", " "))
    return text if len(text) <= width else text[: width - 1] + "…"


def paths_cell(paths: Sequence[str], width: int, joiner: str = " + ") -> str:
    """Dotted paths joined in a cell of `width`: too long, they lose leading segments, the
    longest first (`…address.city + …address.state`, where a plain cut would show
    `registration.profile.addre…` for the city and the country alike); what still does not
    fit is cut with an ellipsis."""
    texts = [safe(p.replace("\n", " ")) for p in paths]
    dropped = [0] * len(texts)

    def shown(index: int) -> str:
        path, cut = texts[index], dropped[index]
        return path if not cut else "…" + ".".join(path.split(".")[cut:])

    def text() -> str:
        return joiner.join(shown(i) for i in range(len(texts)))

    while len(text()) > width:
        cuttable = [i for i in range(len(texts)) if dropped[i] < texts[i].count(".")]
        if not cuttable:
            break
        dropped[max(cuttable, key=lambda i: len(shown(i)))] += 1
    return cell(text(), width)


ZERO_WIDTH_SPACE = "\u200b"


def esc(value: object) -> str:
    """`value` as literal text inside Textual content markup (top bar, border titles, labels):
    data, key names and operator input may hold square brackets (`[/b]`, `]`, `flows [x]`) that
    must not parse as tags. Every `[` is escaped: `textual.markup.escape` leaves a `[` that does
    not look like a tag (`[ ctrl+b`), which Textual's parser still reads as one. A trailing
    backslash would escape the tag after it, however many backslashes: an invisible zero-width
    space ends the value instead. Control characters are escaped (`safe`)."""
    text = safe(str(value)).replace("[", "\\[")
    return text + ZERO_WIDTH_SPACE if text.endswith("\\") else text


def plain(value: object) -> Text:
    """A table cell shown as it is: DataTable parses a `str` cell (and a column label) as Rich
    markup, so a value like `[/b]` would crash the render. Same layout as a markup-free string
    cell (no wrap, no trailing newline); control characters escaped (`safe`, line feeds kept).
    A `Text` passes unchanged: whoever built it from data passed the data through `safe`."""
    if isinstance(value, Text):
        return value
    return Text(safe(value, keep="\n"), no_wrap=True, end="")


def cells(values: Iterable[Any]) -> list[Any]:
    """A row's cells with every string made `plain`; other renderables pass unchanged."""
    return [plain(v) if isinstance(v, str) else v for v in values]

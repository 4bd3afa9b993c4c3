"""Data shown at a terminal with its control characters made visible.

Registration data is written by attendees: a status label `Reg\\x1b]0;PWNED\\x07` printed as it
is would retitle the operator's terminal, and `\\x1b[2J` clear it; a right-to-left override
(U+202E) would show a value reversed, and a line separator (U+2028) break a row in two. Every
place that puts data on a terminal (the console's screens, `csignal sql`'s table and CSV at a
terminal) shows such characters as escapes (`\\x1b`, `\\u202e`), from this one rule. Pure: the
console (which never imports `stream`) and the CLI both use it.
"""

from __future__ import annotations

import re

UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 and C1 controls: ESC, BEL, CR, backspace, 8-bit CSI (U+009B) …
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff]"  # lone surrogates (cannot even be encoded for the terminal)
)
"""Characters a terminal acts on or that change how the text around them reads."""


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, keep: str = "") -> str:
    """`text` with every `UNSAFE` character shown as `\\xNN` (below U+0100) or `\\uNNNN`, except
    those in `keep` (a multi-line view keeps `"\\n"`); printable text, accents and right-to-left
    scripts pass unchanged."""
    return UNSAFE.sub(lambda m: m.group() if m.group() in keep else _visible(m.group()), text)


def escape_controls_json(text: str) -> str:
    """JSON text with every `UNSAFE` character written as a JSON escape (`\\u001b`, `\\u202e`):
    the document parses to exactly the same data, and shows nothing a terminal acts on. Only
    for text made by a JSON encoder: it escapes C0 controls inside strings itself, so a raw one
    is layout (the line feeds of an indented document) and stays."""
    return UNSAFE.sub(lambda m: m.group() if m.group() < " " else f"\\u{ord(m.group()):04x}", text)

"""What an operator may type to confirm an action on one flow (TEST → LIVE above all): the flow's
id, or its name in any case, where the name's non-ASCII characters may be typed in ASCII.

Flow names carry characters an SSH keyboard cannot type (`Registered → nurture campaign`), so a
confirmation that asked for the name exactly could not be given at all. The console's dialogs
and `csignal flows mode … live` share this one rule, and the same refusal text.
"""

from __future__ import annotations

import unicodedata

ASCII_FORMS = {
    "→": "->",
    "⟶": "->",
    "←": "<-",
    "↔": "<->",
    "⇒": "=>",
    "—": "-",
    "–": "-",
    "‐": "-",
    "−": "-",
    "…": "...",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "×": "x",
    "·": ".",
    "•": "*",
    "\u00a0": " ",
}
"""The characters a keyboard lacks and what stands for them; anything else non-ASCII loses its
accents (é → e) or, when it has no ASCII letter, is left as it is."""


def ascii_form(text: str) -> str:
    """`text` as a plain keyboard types it: arrows and dashes spelled out, accents dropped."""
    out: list[str] = []
    for char in text:
        if char.isascii():
            out.append(char)
            continue
        if char in ASCII_FORMS:
            out.append(ASCII_FORMS[char])
            continue
        bare = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        out.append(bare if bare.isascii() and bare else char)
    return "".join(out)


def _folded(text: str) -> str:
    return " ".join(ascii_form(text).casefold().split())


def confirms_flow(typed: str, flow_id: str, name: str) -> bool:
    """True when `typed` is the flow's id, or its name (any case, any run of spaces, the name's
    non-ASCII characters as typed or in ASCII form)."""
    text = typed.strip()
    if not text:
        return False
    if flow_id and text == flow_id:
        return True
    return bool(name.strip()) and _folded(text) == _folded(name)


def expected_text(flow_id: str, name: str) -> str:
    """What to type, in words: the id, and the name in the form a plain keyboard can type."""
    if not name.strip():
        return f"the flow id {flow_id!r}"
    return f"the flow id {flow_id!r} or its name {ascii_form(name)!r}"


def refusal(typed: str, flow_id: str, name: str) -> str:
    """Why `typed` does not confirm: what was typed and what was expected."""
    if not typed.strip():
        return f"nothing was typed; type {expected_text(flow_id, name)}"
    return f"{typed.strip()!r} is not {expected_text(flow_id, name)}"

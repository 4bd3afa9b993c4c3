"""A configuration problem, and how a place in the configuration and a value are written in one.

Apart from the two layers of validation (`config.load_problems`, `config.validation`) because
both report `Problem`s with paths in the configuration's own terms (`flows[1].destination`), and
so do the operator API's refusals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Problem", "format_path", "show_value"]


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


# --- paths -------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(loc: Iterable[str | int]) -> str:
    """`('flows', 1, 'destination', 'mapping')` → `flows[1].destination.mapping`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def show_value(value: object) -> str:
    """A value quoted in a message, cut to 60 characters (a pasted blob stays readable)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"

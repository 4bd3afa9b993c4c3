"""Plain text of a Textual SVG screenshot, one string per terminal row (to read what fits)."""

from __future__ import annotations

import html
import re

_TEXT = re.compile(r'<text[^>]*\bx="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', re.S)


def svg_lines(svg: str) -> list[str]:
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, body in _TEXT.findall(svg):
        text = html.unescape(re.sub(r"<[^>]+>", "", body)).replace("\xa0", " ")
        rows.setdefault(float(y), []).append((float(x), text))
    lines = []
    for y in sorted(rows):
        parts = sorted(rows[y])
        line = ""
        for x, text in parts:
            col = round(x / 12.2)
            line = line.ljust(col) + text
        lines.append(line.rstrip())
    return lines

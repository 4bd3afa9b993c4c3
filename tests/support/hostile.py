"""Hostile requests for the tests of bounded work (issue 11): what a probe of control sent."""

from __future__ import annotations

SLOW_SQL = "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"
"""A read that runs until its time limit stops it, keeping DuckDB's threads busy."""

HUGE_ANSWER_SQL = "SELECT repeat(chr(34), 2000) AS quotes FROM range(100000)"
"""400 MB of JSON if nothing capped the answer."""


def alias_bomb(levels: int = 8, width: int = 9) -> str:
    """A YAML "billion laughs": each level an anchored list of `width` aliases of the one
    before (the probe's was 365 bytes, 8 levels of 9)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghijklmnop"[:levels]:
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * width) + "]")
        previous = name
    return "\n".join(lines) + "\n"

"""Textual's parsed CSS shared by every console App of a test process.

Each App parses its stylesheet anew, and `Stylesheet.reparse` (on mount, on a theme change)
builds a fresh `Stylesheet` without the instance's parse cache: every widget's DEFAULT_CSS
tokenised again, ~15 % of a console test's CPU. The rules parsed from one CSS text with one set
of variables are the same for every App — Textual already hands the same `RuleSet` objects to
one stylesheet's later parses — so a process-wide cache keyed by the text, its location and the
variables returns exactly what parsing would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from textual.css.model import RuleSet
from textual.css.stylesheet import Stylesheet

_parsed: dict[tuple[Any, ...], list[RuleSet]] = {}


@contextmanager
def shared_parsed_css() -> Iterator[None]:
    parse = Stylesheet._parse_rules

    def cached(
        self: Stylesheet,
        css: str,
        read_from: Any,
        is_default_rules: bool = False,
        tie_breaker: int = 0,
        scope: str = "",
    ) -> list[RuleSet]:
        variables = tuple(sorted(self._variables.items()))
        key = (css, read_from, is_default_rules, tie_breaker, scope, variables)
        rules = _parsed.get(key)
        if rules is None:  # a text that fails to parse raises every time, as before
            rules = _parsed[key] = parse(self, css, read_from, is_default_rules, tie_breaker, scope)
        return rules

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Stylesheet, "_parse_rules", cached)
        yield

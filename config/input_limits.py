"""Bounds on a configuration text, so a hostile one costs little to refuse.

A configuration never needs YAML anchors or aliases, and they are how a few hundred bytes
expand into billions of values (a "billion laughs" document): both are refused where they
appear, with the line and column. Besides, a text is refused past `MAX_CONFIG_CHARS`, a
document past `MAX_NODES` values or nested deeper than `MAX_DEPTH`, and any string that is not
valid Unicode (a lone surrogate from an escape such as `"\\udc80"`), whether it came as YAML or
JSON.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

MAX_CONFIG_CHARS = 1024 * 1024
"""A large account is some hundred kilobytes; the reference example is 3.5 kB."""
MAX_NODES = 100_000
"""Values (mappings, lists and scalars) in one document."""
MAX_DEPTH = 50
"""Nesting of mappings and lists; an account nests about six levels deep."""


class InputLimitError(ValueError):
    """The text is refused before it is loaded; `path` says where, when known."""

    def __init__(self, problem: str, path: str = "") -> None:
        self.problem = problem
        self.path = path
        super().__init__(f"{path}: {problem}" if path else problem)


def check_size(text: str) -> None:
    if len(text) > MAX_CONFIG_CHARS:
        raise InputLimitError(
            f"the configuration is {len(text)} characters long; "
            f"at most {MAX_CONFIG_CHARS} are allowed"
        )


class YamlLimitError(yaml.composer.ComposerError):
    """A YAML document breaks a bound (an anchor, an alias, too many values, too deep)."""


def prescan_yaml(text: str) -> None:
    """Apply `BoundedSafeLoader`'s rules to the parser's events in C (libyaml, when PyYAML has
    it), so a document breaking them is refused at C speed before the Python loader starts.
    Raises `YamlLimitError`; a syntax error is left for the Python loader to report in its own
    words. Without libyaml it does nothing."""
    loader_class = getattr(yaml, "CSafeLoader", None)
    if loader_class is None:
        return
    loader = loader_class(text)
    nodes = 0
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, yaml.AliasEvent | yaml.NodeEvent):
                nodes += 1
                _check_event(event, nodes, depth + 1)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except YamlLimitError:
        raise
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def _check_event(event: yaml.Event, nodes: int, depth: int) -> None:
    if isinstance(event, yaml.AliasEvent):
        _refuse(
            f"alias *{event.anchor} is not allowed: a configuration takes no YAML "
            "anchors or aliases; write the value out",
            event,
        )
    anchor = getattr(event, "anchor", None)
    if anchor is not None:
        _refuse(
            f"anchor &{anchor} is not allowed: a configuration takes no YAML "
            "anchors or aliases; write the value out",
            event,
        )
    if nodes > MAX_NODES:
        _refuse(f"more than {MAX_NODES} values in one document", event)
    if depth > MAX_DEPTH:
        _refuse(f"nested deeper than {MAX_DEPTH} levels", event)


def _refuse(problem: str, event: yaml.Event) -> None:
    at = event.start_mark  # libyaml's marks are of another class: copy the position
    mark = None
    if at is not None:
        mark = yaml.error.Mark(at.name, at.index, at.line, at.column, None, 0)
    raise YamlLimitError(None, None, problem, mark)


class BoundedSafeLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses anchors and aliases and bounds values and nesting; the
    refusals are `yaml.composer.ComposerError`s, with the mark of the offending node."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._nodes += 1
        self._depth += 1
        try:
            _check_event(self.peek_event(), self._nodes, self._depth)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def check_data(data: object) -> None:
    """Refuse a loaded document nested deeper than `MAX_DEPTH`, with more than `MAX_NODES`
    values, or holding a string that is not valid Unicode. Iterative: any depth is safe."""
    nodes = 0
    stack: list[tuple[object, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise InputLimitError(f"more than {MAX_NODES} values in one document")
        if isinstance(value, str):
            _check_text(value, path)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise InputLimitError(f"nested deeper than {MAX_DEPTH} levels", path)
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    _check_text(key, path)
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        else:
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        shown = path.encode("utf-8", "backslashreplace").decode("ascii", "replace")
        raise InputLimitError(
            f"not valid Unicode text (character {error.start} is a lone surrogate)", shown
        ) from None


def parse_json(text: str) -> object:
    """JSON within the bounds above; `ValueError` (`InputLimitError` for a bound) otherwise."""
    check_size(text)
    try:
        data = json.loads(text)
    except RecursionError:
        raise InputLimitError(f"nested deeper than {MAX_DEPTH} levels") from None
    check_data(data)
    return data

"""The hand-written source-path catalog agrees with the change-event models of stream.certain."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from config.source_paths import SOURCE_PATHS

events = pytest.importorskip("stream.certain.events", reason="change-event models not built yet")

VIRTUAL = {"event.tags": "resolved from the event's setup through the catalog"}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        annotation = members[0] if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _resolves(path: str) -> bool:
    model: type[BaseModel] | None = events.ChangeEvent
    parts = path.split(".")
    for position, key in enumerate(parts):
        if model is None:
            return False
        by_alias = {f.alias or name: f for name, f in model.model_fields.items()}
        if key not in by_alias:
            return False
        annotation = by_alias[key].annotation
        model = _model_of(annotation)
        if position == len(parts) - 1:
            return model is None
    return False


@pytest.mark.parametrize("path", sorted(set(SOURCE_PATHS) - set(VIRTUAL)))
def test_catalog_path_is_a_leaf_of_the_change_event(path: str) -> None:
    assert _resolves(path), f"{path} is not a field of stream.certain.events.ChangeEvent"


def test_virtual_paths_are_not_fields() -> None:
    for path in VIRTUAL:
        assert not _resolves(path)

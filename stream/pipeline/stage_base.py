"""The state a pipeline stage reads from its worker (`Pipeline` in `app.py`), declared once.

The route and deliver stages are mixins of one worker: both read its configuration view, options
and counters and publish through it. This base declares that shared part, so each stage module
only declares the state of its own (the deliver stage's delivered-keys log, journal and clients).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from stream.pipeline.publisher import Record
from stream.pipeline.snapshot import ConfigView

if TYPE_CHECKING:
    from stream.pipeline.app import Counters, PipelineOptions

__all__ = ["StageBase"]


class StageBase:
    """What every stage of a `Pipeline` worker shares; the worker sets these in `__init__`."""

    options: PipelineOptions
    view: ConfigView
    counters: Counters

    async def publish(self, records: Sequence[Record]) -> None:
        """Send records and wait for the broker's acknowledgement (the worker's override)."""
        raise NotImplementedError

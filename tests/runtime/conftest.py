"""Shared fixtures for tests that need real processes: one embedded broker for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stream.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A started embedded broker shared by the whole session (memory-only, 127.0.0.1).

    Tests sharing it use unique topic names and group ids, so they never see each other's data.
    """
    with EmbeddedBroker() as running:
        yield running

"""apiclient test fixtures: a real operator API in-process (store, configuration, sandbox) per
test, the same one the console tests use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.control_harness import Control


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    service = Control(tmp_path).start()
    yield service
    service.stop()

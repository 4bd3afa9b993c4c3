"""A real `csignal control` per fuzz module, on the module's embedded broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stream.broker import EmbeddedBroker
from tests.support.processes import ControlProcess, start_control


@pytest.fixture(scope="module")
def fuzz_control(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    control = start_control(module_broker, tmp_path_factory.mktemp("fuzz") / "var")
    try:
        yield control
    finally:
        control.stop()

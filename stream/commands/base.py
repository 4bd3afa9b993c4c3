"""What every `csignal` command module provides."""

from __future__ import annotations

import argparse
from typing import Any, Protocol


class Command(Protocol):
    """A command registers its sub-parser and sets `handler` (args -> exit code) on it."""

    def register(self, sub: Any) -> argparse.ArgumentParser: ...

"""`csignal console` with a crash inside its flow list, for the runner's tests: the real command
(`stream.cli.main(["console", …])`, with the arguments the runner passes), headless since a test
has no terminal to give it, and a flow list that raises once its first load is shown."""

from __future__ import annotations

import sys
from typing import Any

from console.app import SignalConsole
from console.screens.flows import FlowsScreen
from stream.cli import main

MESSAGE = "forced console crash inside the flow list (test)"

shown = FlowsScreen.loaded
run = SignalConsole.run


def crash_after_loading(self: FlowsScreen, ok: bool = True) -> None:
    shown(self, ok)
    raise RuntimeError(MESSAGE)


def run_headless(self: SignalConsole, **options: Any) -> int | None:
    return run(self, **{**options, "headless": True})


if __name__ == "__main__":
    setattr(FlowsScreen, "loaded", crash_after_loading)  # noqa: B010 - a test double
    setattr(SignalConsole, "run", run_headless)  # noqa: B010
    sys.exit(main(["console", *sys.argv[1:]]))

"""The commands of `csignal`, one module each; `COMMANDS` is the order `--help` shows them in."""

from __future__ import annotations

from stream.commands import config, pending
from stream.commands.base import Command

COMMANDS: list[Command] = [
    *pending.COMMANDS,
    config.COMMAND,
]

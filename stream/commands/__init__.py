"""The commands of `csignal`, one module each; `COMMANDS` is the order `--help` shows them in.

The order is the contract's (DESIGN 4.1). A command whose module has landed replaces its pending
placeholder by name, so `--help` keeps listing every command either way.
"""

from __future__ import annotations

from stream.commands import (
    config,
    console,
    control,
    flows,
    ingest,
    metrics,
    pending,
    pipeline,
    replay,
    retry,
    run,
    sandbox,
    simulate,
    sql,
)
from stream.commands.base import Command

_IMPLEMENTED: dict[str, Command] = {
    "config": config.COMMAND,
    "control": control.COMMAND,
    "sandbox": sandbox.COMMAND,
    "simulate": simulate.COMMAND,
    "ingest": ingest.COMMAND,
    "sql": sql.COMMAND,
    "run": run.COMMAND,
    "pipeline": pipeline.COMMAND,
    "console": console.COMMAND,
    "flows": flows.COMMAND,
    "retry": retry.COMMAND,
    "replay": replay.COMMAND,
    "metrics": metrics.COMMAND,
}

COMMANDS: list[Command] = [
    _IMPLEMENTED.get(placeholder.name, placeholder) for placeholder in pending.CONTRACT
]

"""The commands of `csignal`, one module each; `COMMANDS` is the order `--help` shows them in
(DESIGN 4.1's order, then the scriptable console actions)."""

from __future__ import annotations

from stream.commands import (
    certain_sandbox,
    config,
    console,
    control,
    flows,
    ingest,
    ledger,
    metrics,
    pipeline,
    replay,
    retry,
    run,
    sandbox,
    simulate,
    sql,
)
from stream.commands.base import Command

COMMANDS: list[Command] = [
    run.COMMAND,
    control.COMMAND,
    pipeline.COMMAND,
    console.COMMAND,
    sandbox.COMMAND,
    certain_sandbox.COMMAND,
    simulate.COMMAND,
    ingest.COMMAND,
    config.COMMAND,
    sql.COMMAND,
    flows.COMMAND,
    retry.COMMAND,
    replay.COMMAND,
    metrics.COMMAND,
    ledger.BACKUP,
    ledger.RESTORE,
    ledger.EXPORT,
    ledger.EXPORT_PERSON,
    ledger.ERASE,
]

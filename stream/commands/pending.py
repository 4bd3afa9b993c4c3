"""Commands of the DESIGN 4.1 contract whose implementation has not landed yet.

They are listed in `--help` so the contract is visible, and they fail loudly (exit 3) instead of
pretending to work. A command moves out of this list when its module lands.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

NOT_YET = 3


@dataclass(frozen=True)
class PendingCommand:
    name: str
    help: str

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name, help=self.help + " (not yet available)"
        )
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(handler=self.run)
        return parser

    def run(self, args: argparse.Namespace) -> int:
        print(f"csignal {self.name}: not yet available in this build", file=sys.stderr)
        return NOT_YET


CONTRACT = [
    PendingCommand("run", "run broker, control and a pipeline worker on one machine"),
    PendingCommand("control", "the control service (DuckDB, operator API)"),
    PendingCommand("pipeline", "a pipeline worker"),
    PendingCommand("console", "the operations console"),
    PendingCommand("sandbox", "the Marketo sandbox server"),
    PendingCommand("simulate", "Certain-like traffic into the ingest API"),
    PendingCommand("ingest", "post change events from a JSONL file"),
    PendingCommand("config", "account configuration: import, export, check, schema"),
    PendingCommand("sql", "read-only SQL over the database"),
    PendingCommand("flows", "list flows, toggle active and live/test"),
    PendingCommand("retry", "the retry queue: list and submit"),
    PendingCommand("replay", "replay a flow for a date range or an event"),
]

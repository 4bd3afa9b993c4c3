"""`csignal run [--demo] [--headless] [--config FILE]`: Signal on one machine (stream.runner)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunCommand:
    name: str = "run"
    help: str = "run broker, control and a pipeline worker on one machine"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Start the embedded broker (unless SIGNAL_BROKER is set), control and "
            "one pipeline worker; --demo adds the Marketo sandbox, a demo account, a Certain "
            "sandbox it polls and simulated traffic. Ctrl-C stops everything.",
        )
        parser.add_argument(
            "--demo", action="store_true", help="sandbox, demo account and simulated traffic"
        )
        parser.add_argument(
            "--headless", action="store_true", help="no console; print a status line instead"
        )
        parser.add_argument(
            "--config", type=Path, metavar="FILE", help="import this account configuration"
        )
        parser.add_argument("--data-dir", type=Path, metavar="DIR", help="override SIGNAL_DATA_DIR")
        parser.add_argument(
            "--demo-feed",
            choices=("certain", "push"),
            default="certain",
            help="where the demo's traffic goes: into a Certain sandbox that Signal polls "
            "(default, the chain a real install runs), or pushed to the ingest API",
        )
        parser.add_argument(
            "--demo-account",
            choices=("full", "batching"),
            default="full",
            help="the demo account imported into an empty data dir: every flow (default), or "
            "batching: its form-post flows inactive (Marketo's submitForm takes one lead per "
            "call), so the calls fit Marketo's 100 per 20 s at tens of changes per second",
        )
        parser.add_argument("--seed", type=int, default=None, help="simulator seed (--demo)")
        parser.add_argument(
            "--rate", type=float, default=5.0, help="simulated changes per second (--demo)"
        )
        parser.add_argument(
            "--status-every", type=float, default=5.0, metavar="S", help="status line period"
        )
        parser.set_defaults(handler=run)
        return parser


COMMAND = RunCommand()


def run(args: argparse.Namespace) -> int:
    from stream.runner import RunOptions
    from stream.runner import run as run_signal

    if args.config is not None and not args.config.is_file():
        print(f"csignal run: {args.config}: no such file")
        return 1
    if args.rate <= 0:
        print("csignal run: --rate must be positive")
        return 2
    return run_signal(
        RunOptions(
            demo=args.demo,
            headless=args.headless,
            config_file=args.config,
            data_dir=args.data_dir,
            seed=args.seed,
            rate=args.rate,
            demo_feed=args.demo_feed,
            demo_account=args.demo_account,
            status_every=max(0.5, args.status_every),
        )
    )

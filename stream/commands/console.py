"""`csignal console [--api URL] [--read-only]`: the operations console (Textual).

It talks to control's operator API only; the token comes from `SIGNAL_API_TOKEN` or
`$SIGNAL_DATA_DIR/api-token`. `--read-only` uses the read-only token instead
(`SIGNAL_API_READ_ONLY_TOKEN` or `$SIGNAL_DATA_DIR/api-token-read-only`, never the operator's), so
control refuses every change whatever the console sends; without that token it does not start.

Over SSH (`SSH_CONNECTION` set) the redraw rate drops to 20 frames a second unless `TEXTUAL_FPS`
says otherwise: a remote terminal gains nothing from 60.

`csignal run` starts it with `--under-run` (not listed in --help): quitting then asks whether to
detach or to stop Signal, and the exit code tells the runner (console.session); a crash's
traceback is also appended to `--crash-log`. The exit code is the console's own: 0 when it was
quit, 1 when it crashed, `session.STOP_SIGNAL` when the operator chose to stop Signal.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ConsoleCommand:
    name: str = "console"
    help: str = "the operations console"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Keyboard-driven console for flows, connections, the retry queue, "
            "metrics and SQL, over control's operator API.",
        )
        parser.add_argument(
            "--api",
            metavar="URL",
            default=None,
            help="control's API (default: $SIGNAL_API, http://127.0.0.1:6066)",
        )
        parser.add_argument(
            "--read-only",
            action="store_true",
            help="hide every action that changes anything and use the read-only API token "
            "($SIGNAL_DATA_DIR/api-token-read-only), with which control refuses every change",
        )
        parser.add_argument(
            "--print-keymap",
            action="store_true",
            help="print the default keys by action id (for $SIGNAL_CONSOLE_KEYMAP) and exit",
        )
        parser.add_argument("--under-run", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument("--crash-log", type=Path, default=None, help=argparse.SUPPRESS)
        parser.set_defaults(handler=run)
        return parser


COMMAND = ConsoleCommand()


SSH_FPS = "20"


def run(args: argparse.Namespace) -> int:
    if args.print_keymap:
        from console.keymap import default_keymap_yaml

        print(default_keymap_yaml(), end="")
        return 0
    if os.environ.get("SSH_CONNECTION") and "TEXTUAL_FPS" not in os.environ:
        os.environ["TEXTUAL_FPS"] = SSH_FPS
    from apiclient.access import read_token, token_file
    from apiclient.errors import ApiError
    from console.app import make_app

    try:
        missing = args.read_only and read_token(read_only=True) is None
    except ApiError as error:  # a token file that cannot be read: say which, do not start
        print(f"csignal console: {error}", file=sys.stderr)
        return 2
    if missing:
        print(
            f"csignal console: no read-only API token: {token_file(read_only=True)} does not "
            "exist and SIGNAL_API_READ_ONLY_TOKEN is not set — start control once (it writes "
            "the token) or point SIGNAL_DATA_DIR at its data",
            file=sys.stderr,
        )
        return 2
    app = make_app(
        args.api,
        None,
        read_only=args.read_only,
        under_run=args.under_run,
        crash_log=args.crash_log,
    )
    result = app.run()
    if app.return_code:  # a crash (1) or the operator's choice under `csignal run`
        return app.return_code
    return int(result or 0) if isinstance(result, int) else 0

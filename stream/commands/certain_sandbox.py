"""`csignal certain-sandbox`: run the Certain sandbox server until SIGINT/SIGTERM.

Logs to stderr where it listens, the account and the API user (never the password) as soon as
it is up, so a script or a supervising process can wait for that line, as `csignal sandbox`
does for Marketo.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("signal.certain_sandbox")

PASSWORD_ENV = "SIGNAL_CERTAIN_SANDBOX_PASSWORD"


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 0")
    return value


@dataclass(frozen=True)
class CertainSandboxCommand:
    name: str = "certain-sandbox"
    help: str = "the Certain sandbox server"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Serve a Certain-like REST API (events, registrations, session "
            "registrations; Basic auth, paging, dateModified filters) for one demo account, "
            "plus /_sandbox/ admin routes to change data and inject faults.",
        )
        parser.add_argument("--port", type=int, default=0, help="port (default 0: a free port)")
        parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
        parser.add_argument(
            "--seed", type=int, default=1, help="seed of the generated data (default 1)"
        )
        parser.add_argument(
            "--registrations",
            type=_count,
            default=10,
            metavar="N",
            help="registrations generated per event at start (default 10)",
        )
        parser.add_argument("--user", default="signal-api", help="the API user (HTTP Basic)")
        parser.add_argument(
            "--password",
            default=None,
            help=f"the API user's password (default: ${PASSWORD_ENV} or 'sandbox-password')",
        )
        parser.set_defaults(handler=run)
        return parser


COMMAND = CertainSandboxCommand()


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    from simulators.certain.sandbox import CertainSandbox

    password = args.password or os.environ.get(PASSWORD_ENV) or "sandbox-password"
    sandbox = CertainSandbox(
        seed=args.seed, user=args.user, password=password, per_event=args.registrations
    )
    try:
        return asyncio.run(_serve(sandbox, args.host, args.port))
    except OSError as exc:
        print(
            f"csignal certain-sandbox: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1


async def _serve(sandbox: Any, host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    url = await sandbox.start(host, port)
    account = next(iter(sandbox.state.accounts.values()))
    log.info(
        "Certain sandbox listening on %s (account %s, user %s)", url, account.code, account.user
    )
    try:
        await stop.wait()
    finally:
        log.info("Certain sandbox stopping")
        await sandbox.stop()
    return 0

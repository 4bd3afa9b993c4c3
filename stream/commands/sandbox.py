"""`csignal sandbox`: run the Marketo sandbox server until SIGINT/SIGTERM.

Logs to stderr where it listens and the client id (never the secret) as soon as it is up, so a
script or a supervising process can wait for that line.
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

from pydantic import SecretStr, ValidationError

log = logging.getLogger("signal.sandbox")

SECRET_ENV = "SIGNAL_SANDBOX_CLIENT_SECRET"


@dataclass(frozen=True)
class SandboxCommand:
    name: str = "sandbox"
    help: str = "the Marketo sandbox server"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Serve a Marketo-like REST API (identity, leads, campaigns, forms) with "
            "Marketo's limits and error codes, plus /_sandbox/ admin routes.",
        )
        parser.add_argument("--port", type=int, default=0, help="port (default 0: a free port)")
        parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
        parser.add_argument("--client-id", default="sandbox-client", help="accepted client id")
        parser.add_argument(
            "--client-secret",
            default=None,
            help=f"accepted client secret (default: ${SECRET_ENV} or 'sandbox-secret')",
        )
        parser.add_argument("--seed", metavar="FILE", help="seed data (JSON or YAML)")
        parser.add_argument(
            "--token-lifetime", type=int, default=3600, help="access token lifetime in seconds"
        )
        parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added per call")
        parser.add_argument("--daily-quota", type=int, default=50000, help="calls per day")
        parser.set_defaults(handler=run)
        return parser


COMMAND = SandboxCommand()


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    from simulators.marketo.sandbox import Sandbox, SandboxConfig, SandboxSeed

    secret = args.client_secret or os.environ.get(SECRET_ENV) or "sandbox-secret"
    try:
        seed = SandboxSeed.load(args.seed) if args.seed else None
        config = SandboxConfig(
            client_id=args.client_id,
            client_secret=SecretStr(secret),
            token_lifetime_s=args.token_lifetime,
            latency_ms=args.latency_ms,
            daily_quota=args.daily_quota,
            seed=seed,
        )
    except (OSError, ValueError, ValidationError) as exc:
        print(f"csignal sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(Sandbox(config), args.host, args.port))
    except OSError as exc:
        print(f"csignal sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1


async def _serve(sandbox: Any, host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    url = await sandbox.start(host, port)
    log.info(
        "Marketo sandbox listening on %s (instance %s, client id %s)",
        url,
        sandbox.config.instance_id,
        sandbox.config.client_id,
    )
    try:
        await stop.wait()
    finally:
        log.info("Marketo sandbox stopping")
        await sandbox.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csignal")
    sub = parser.add_subparsers(dest="command")
    COMMAND.register(sub)
    args = parser.parse_args(["sandbox", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

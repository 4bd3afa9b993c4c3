"""`csignal pipeline`: run one pipeline worker until SIGINT/SIGTERM.

The broker comes from `--broker` or `SIGNAL_BROKER`; a pipeline worker alone never starts an
embedded broker (nothing else could reach it — `csignal run` starts one and passes it on). The
topics are declared before the worker starts, so no topic is auto-created with the broker's own
partition count. Faust's web server stays off.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.settings import Settings
    from stream.pipeline.app import PipelineOptions

log = logging.getLogger("signal.pipeline")


@dataclass(frozen=True)
class PipelineCommand:
    name: str = "pipeline"
    help: str = "a pipeline worker"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Consume certain-changes and signal-redrive, evaluate flows, deliver to "
            "Marketo and publish outcomes. Settings: SIGNAL_BROKER, SIGNAL_DATA_DIR, "
            "SIGNAL_CONFIG_KEY_FILE (the key control seals connection secrets with; default "
            "<data dir>/config-key).",
        )
        parser.add_argument("--broker", help="Kafka URL (default: $SIGNAL_BROKER)")
        parser.add_argument("--data-dir", type=Path, help="default: $SIGNAL_DATA_DIR or ./var")
        parser.add_argument(
            "--log-level", default="info", choices=["debug", "info", "warning", "error"]
        )
        parser.set_defaults(handler=run)
        return parser


COMMAND = PipelineCommand()


def _declare(url: str) -> None:
    """Declare every topic on a private loop (Faust's worker owns the main thread's loop)."""
    from stream.topics import ALL_TOPICS, declare_topics

    error: list[BaseException] = []

    def work() -> None:
        try:
            asyncio.run(declare_topics(url, ALL_TOPICS))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=work, name="declare-topics")
    thread.start()
    thread.join()
    if error:
        raise error[0]


def pipeline_options(settings: Settings, broker_url: str, data_dir: Path) -> PipelineOptions:
    """The worker's options from its settings (the circuit breakers' `SIGNAL_BREAKER_*`)."""
    from stream.core.breaker import BreakerPolicy
    from stream.pipeline.app import PipelineOptions
    from stream.sealing import KEY_FILE_NAME

    breaker = BreakerPolicy(
        threshold=settings.breaker_threshold,
        open_s=settings.breaker_open_s,
        max_open_s=settings.breaker_max_open_s,
    )
    return PipelineOptions(
        broker_url=broker_url,
        data_dir=data_dir,
        config_key_file=settings.config_key_file or data_dir / KEY_FILE_NAME,
        breaker=breaker,
    )


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from config.settings import Settings
    from stream.broker import normalize_broker_url

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"csignal pipeline: bad SIGNAL_* setting: {exc}", file=sys.stderr)
        return 2
    broker = args.broker or settings.broker
    if not broker:
        print(
            "csignal pipeline: no broker; set SIGNAL_BROKER or pass --broker "
            "(csignal run starts an embedded broker for a single machine)",
            file=sys.stderr,
        )
        return 2
    try:
        url = normalize_broker_url(broker)
    except ValueError as exc:
        print(f"csignal pipeline: {exc}", file=sys.stderr)
        return 2
    data_dir = args.data_dir or settings.data_dir
    try:
        _declare(url)
    except Exception as exc:
        print(f"csignal pipeline: cannot declare topics on {url}: {exc}", file=sys.stderr)
        return 1

    from stream.pipeline.app import create_app
    from stream.stop_deadline import DeadlineWorker

    app = create_app(pipeline_options(settings, url, Path(data_dir)))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = DeadlineWorker(
        app,
        loglevel=args.log_level,
        loop=loop,
        redirect_stdouts=False,
        stop_deadline_s=settings.stop_deadline_s,
        name="csignal pipeline",
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0

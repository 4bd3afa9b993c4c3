"""`csignal control`: the control service — DuckDB ledger, configuration owner, operator API.

Prints `operator API listening on http://HOST:PORT` (and the token file) on stdout as soon as
the API answers, so a supervising process (`csignal run`) can wait for that line. Stops cleanly
on SIGINT/SIGTERM: agents finish their batch, the store is checkpointed and closed.

With `SIGNAL_BROKER` unset an embedded broker is started for this process alone and its address
printed; real deployments set `SIGNAL_BROKER` so the pipeline workers reach the same cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

if TYPE_CHECKING:
    from config.settings import Settings
    from stream.control.runtime import ControlSettings

LISTENING = "operator API listening on"
SCHEDULE_ENV = "SIGNAL_RETRY_SCHEDULE"


@dataclass(frozen=True)
class ControlCommand:
    name: str = "control"
    help: str = "the control service (DuckDB, operator API)"

    def register(self, sub: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            self.name,
            help=self.help,
            description="Run the control service: archive changes, record outcomes and Marketo "
            "calls in DuckDB, own the account configuration, serve the operator API.",
        )
        parser.add_argument(
            "--api", metavar="HOST:PORT", help="bind address (default: $SIGNAL_API, 127.0.0.1:6066)"
        )
        parser.add_argument(
            "--retry-schedule",
            choices=["default", "demo"],
            default=os.environ.get(SCHEDULE_ENV, "default"),
            help="automatic retries at +5 min, +30 min, +2 h (default) or +2, +4, +6 s (demo); "
            f"default from ${SCHEDULE_ENV}",
        )
        parser.add_argument(
            "--retry-delays",
            metavar="S,S,S",
            help="seconds before automatic retries 1, 2, 3 … (overrides the schedule's delays)",
        )
        parser.add_argument("--log-level", default="info", help="log level (default info)")
        parser.set_defaults(handler=run)
        return parser


COMMAND = ControlCommand()


def _schedule(profile: str, delays: str | None) -> Any:
    from dataclasses import replace
    from datetime import timedelta

    from stream.control.retry_scheduler import schedule_for

    schedule = schedule_for(profile)
    if delays is None:
        return schedule
    values = tuple(float(part) for part in delays.split(",") if part.strip())
    if not values or any(v <= 0 for v in values):
        raise ValueError("--retry-delays expects positive seconds separated by commas")
    poll = max(0.1, min(schedule.poll_interval_s, min(values) / 4))
    return replace(
        schedule, delays=tuple(timedelta(seconds=v) for v in values), poll_interval_s=poll
    )


def run(args: argparse.Namespace) -> int:
    from config.settings import Settings
    from stream.broker import BrokerStartError, resolve_broker

    overrides = {"api": args.api} if args.api else {}
    try:
        settings = Settings(**overrides)
        schedule = _schedule(args.retry_schedule, args.retry_delays)
    except (ValidationError, ValueError) as error:
        print(f"csignal control: {error}", file=sys.stderr)
        return 2
    try:
        broker_url, embedded = resolve_broker(settings)
    except BrokerStartError as error:
        print(f"csignal control: cannot start the embedded broker: {error}", file=sys.stderr)
        return 1
    if embedded is not None:
        print(f"embedded broker at {broker_url} (set SIGNAL_BROKER for a real cluster)", flush=True)
    try:
        return _run_worker(settings, broker_url, schedule, args.log_level)
    finally:
        if embedded is not None:
            embedded.stop()


def control_settings(settings: Settings, broker_url: str, schedule: Any) -> ControlSettings:
    """The control service's settings from the process settings (`SIGNAL_*`)."""
    from stream.control.runtime import ControlSettings
    from stream.store.retention import RetentionPolicy

    return ControlSettings(
        broker_url=broker_url,
        data_dir=settings.data_dir,
        api_host=settings.api_host,
        api_port=settings.api_port,
        retry_schedule=schedule,
        recovery_every_s=settings.recovery_every_s,
        stop_deadline_s=settings.stop_deadline_s,
        recovery_grace_s=settings.recovery_grace_s,
        recovery_horizon_s=settings.recovery_horizon_days * 86400.0,
        recovery_max_redrives=settings.recovery_max_redrives,
        recovery_batch=settings.recovery_batch,
        recovery_defer_max_s=settings.recovery_defer_max_s,
        recovery_defer_limit=settings.recovery_defer_limit,
        fresh_broker=settings.fresh_broker,
        env_allowlist=settings.env_allowlist,
        config_key_file=settings.config_key_path,
        store_memory_limit=settings.db_memory_limit,
        store_temp_limit=settings.db_temp_limit,
        retention=RetentionPolicy(
            payload=timedelta(days=settings.retain_payload_days),
            outcomes=timedelta(days=settings.retain_outcomes_days),
            retry=timedelta(days=settings.retain_retry_days),
            batch=settings.retention_batch,
        ),
    )


def _run_worker(settings: Any, broker_url: str, schedule: Any, log_level: str) -> int:
    from stream.control.app import create_control

    options = control_settings(settings, broker_url, schedule)

    def listening(url: str) -> None:
        print(f"{LISTENING} {url} (token in {options.token_path})", flush=True)

    control = create_control(options, on_listening=listening)
    worker = control.worker(loglevel=log_level)
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        logging.shutdown()
    return 0

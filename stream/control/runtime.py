"""Control's resources, started before its Faust app and stopped after it.

`faust.Worker(app, runtime)` starts extra services before the app and stops them after it, so
the store is open (and the configuration published) before any agent takes a record, and stays
open while agents finish their last batch; closing the store last runs DuckDB's CHECKPOINT.

The operator API is an aiohttp `AppRunner` started here rather than Faust's own web server:
the API has its own authentication, error answers and tests that run without Faust, it binds
`SIGNAL_API` (loopback by default), and Faust's web views (`/router`, table pages) are not
something to expose next to it unauthenticated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from mode import Service

from config.secret_refs import DEFAULT_ALLOWLIST, EnvAllowList
from stream import topics
from stream.api import ApiDeps, create_app
from stream.api.app import BadRequestLog
from stream.broker import bootstrap_servers
from stream.control.certain_poller import CertainSources
from stream.control.config_service import ConfigService
from stream.control.marks import DeliveryMarksAgent
from stream.control.operations import Operations
from stream.control.recorder import Recorder
from stream.control.recovery import Recovery, RecoveryPolicy, publish_to
from stream.control.retention import Retention
from stream.control.retry_scheduler import DEFAULT_SCHEDULE, RetrySchedule
from stream.control.rollup_folding import RollupFolding
from stream.control.secret_store import SecretStore
from stream.control.token import (
    OPERATOR_TOKEN_FILE,
    READ_ONLY_TOKEN_FILE,
    load_or_create_token,
)
from stream.messages import ConfigSnapshot
from stream.metrics.certain_sources import CertainSourceStatus
from stream.metrics.consumer_lag import LagProbe
from stream.metrics.live_workers import WorkerBeats
from stream.metrics.queries import RuntimeStatus
from stream.private_files import secure_data_dir
from stream.sealing import KEY_FILE_NAME, SecretBox
from stream.store import Store
from stream.store.person import finish_erasures
from stream.store.retention import RetentionPolicy
from stream.store.writer import DEFAULT_MEMORY_LIMIT, DEFAULT_TEMP_LIMIT

log = logging.getLogger("signal.control")

CONFIG_KEY = b"snapshot"


@dataclass
class ControlSettings:
    broker_url: str
    data_dir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 6066
    app_id: str = "signal-control"
    retry_schedule: RetrySchedule = DEFAULT_SCHEDULE
    batch_max: int = 500
    batch_within_s: float = 0.2
    record_batch_max: int = 5000
    """Outcomes recorded in one transaction at most (the `record` agent; `batch_max` is the
    other agents'). Most of a batch's cost in DuckDB is fixed, its statements' planning and the
    commit (about 85 ms for 500 outcomes or 2,000; bench.control_ledger), so under load the
    batch grows to this size; at low load `batch_within_s` still sends what came in."""
    publish_debounce_s: float = 0.05
    store_memory_limit: str = DEFAULT_MEMORY_LIMIT
    store_temp_limit: str = DEFAULT_TEMP_LIMIT
    recovery_every_s: float = 15.0
    stop_deadline_s: float = 20.0
    recovery_grace_s: float = 60.0
    recovery_horizon_s: float = 7 * 24 * 3600.0
    recovery_max_redrives: int = 5
    recovery_batch: int = 2000
    recovery_defer_max_s: float = 3600.0
    recovery_defer_limit: int = 10_000
    fresh_broker: bool = False
    """The broker was started empty for this control (`Recovery`'s `fresh_broker`)."""
    env_allowlist: EnvAllowList = DEFAULT_ALLOWLIST
    config_key_file: Path | None = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    retention_every_s: float = 3600.0
    faust_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "signal.duckdb"

    @property
    def recovery_policy(self) -> RecoveryPolicy:
        return RecoveryPolicy(
            grace=timedelta(seconds=self.recovery_grace_s),
            horizon=timedelta(seconds=self.recovery_horizon_s),
            every_s=self.recovery_every_s,
            max_redrives=self.recovery_max_redrives,
            batch_size=self.recovery_batch,
            defer_max=timedelta(seconds=self.recovery_defer_max_s),
            defer_limit=self.recovery_defer_limit,
        )

    @property
    def token_path(self) -> Path:
        return self.data_dir / OPERATOR_TOKEN_FILE

    @property
    def read_only_token_path(self) -> Path:
        return self.data_dir / READ_ONLY_TOKEN_FILE

    @property
    def account_path(self) -> Path:
        return self.data_dir / "account.yaml"

    @property
    def secrets_path(self) -> Path:
        return self.data_dir / "secrets.json"

    @property
    def config_key_path(self) -> Path:
        """The key sealing the secrets of published snapshots (`stream.sealing`)."""
        return self.config_key_file or self.data_dir / KEY_FILE_NAME


def _declared_topics() -> Sequence[topics.TopicSpec]:
    """Every topic of the contract, including any added after this module was written."""
    return [v for v in vars(topics).values() if isinstance(v, topics.TopicSpec)]


class ControlRuntime(Service):
    def __init__(
        self,
        settings: ControlSettings,
        *,
        on_listening: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.on_listening = on_listening
        self.ready = asyncio.Event()
        self.store: Store | None = None
        self.config: ConfigService | None = None
        self.recorder: Recorder | None = None
        self.producer: AIOKafkaProducer | None = None
        self.operations: Operations | None = None
        self.recovery: Recovery | None = None
        self.marks: DeliveryMarksAgent | None = None
        self.certain: CertainSources | None = None
        self.retention: Retention | None = None
        self.rollups: RollupFolding | None = None
        self.api_url: str | None = None
        self._runner: web.AppRunner | None = None
        self.lag = LagProbe(settings.broker_url, control_group=settings.app_id)
        self.workers = WorkerBeats(settings.broker_url, client_id=f"{settings.app_id}-workers")

    async def on_start(self) -> None:
        s = self.settings
        secure_data_dir(s.data_dir, log)  # 0700, its files 0600 (stream.private_files)
        await topics.declare_topics(s.broker_url, _declared_topics())
        self.store = await Store.open(
            s.database_path, memory_limit=s.store_memory_limit, temp_limit=s.store_temp_limit
        )
        await self._finish_erasures()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers(s.broker_url),
            client_id=f"{s.app_id}-producer",
            acks="all",
            request_timeout_ms=15_000,
        )
        await self.producer.start()
        self.config = ConfigService(
            self.store,
            SecretStore(s.secrets_path),
            publish=self._publish_snapshot,
            env_allowlist=s.env_allowlist,
            box=SecretBox.load_or_create(s.config_key_path),
            debounce_s=s.publish_debounce_s,
        )
        await self.config.start(s.account_path)
        self.recorder = Recorder(self.store, self.config, schedule=s.retry_schedule)
        self.recorder.last_change_seen = await self._last_change_seen()
        self.marks = DeliveryMarksAgent(
            self.recorder, s.broker_url, group_id=f"{s.app_id}-delivery-marks"
        )
        self.marks.start()
        self.operations = Operations.build(
            self.store, self.config, self._produce_redrives, schedule=s.retry_schedule
        )
        self.operations.scheduler.start()
        self.recovery = Recovery(
            self.store,
            self.config,
            publish_changes=self._produce_changes,
            publish_redrives=self._produce_redrives,
            publish_delivered=publish_to(self.producer, topics.DELIVERED.name),
            publish_outcomes=publish_to(self.producer, topics.OUTCOMES.name),
            policy=s.recovery_policy,
            fresh_broker=s.fresh_broker,
        )
        self.recovery.start()
        self.rollups = RollupFolding(self.store)
        self.rollups.start()
        # Replays a previous control left publishing go on once the delivered keys are back.
        await self.operations.replays.resume(ready=self.recovery.wait_reseeded)
        # Polls the account's Certain sources into the same outbox the ingest API writes.
        self.certain = CertainSources(self.store, self.config, self._produce_changes)
        self.certain.start()
        self.workers.start()
        await self._start_api()
        self.ready.set()

    async def _finish_erasures(self) -> None:
        """An erasure whose scrub a stopped control left unfinished is finished before any
        agent writes (the erased rows are committed; their old bytes may still be in the
        file). A failure is logged and the note kept for the next start: deliveries go on."""
        assert self.store is not None
        try:
            await self.store.write_raw(finish_erasures)
        except Exception:
            log.exception("ledger: finishing an erasure's scrub failed; the next start retries")

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.workers.stop()
        await self.lag.close()
        if self.certain is not None:
            await self.certain.stop()
        if self.recovery is not None:
            await self.recovery.stop()
        if self.rollups is not None:
            await self.rollups.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.marks is not None:
            await self.marks.stop()
        if self.operations is not None:
            await self.operations.close()
        if self.config is not None:
            await self.config.stop()
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        if self.store is not None:
            await self.store.close()
            log.info("store closed (checkpointed)")

    async def _start_api(self) -> None:
        assert self.store is not None and self.config is not None
        s = self.settings
        deps = ApiDeps(
            store=self.store,
            config=self.config,
            produce_changes=self._produce_changes,
            token=load_or_create_token(s.token_path),
            read_only_token=load_or_create_token(s.read_only_token_path),
            broker_ok=self._broker_ok,
            last_change_seen=self._seen,
            runtime_status=self._runtime_status,
            certain_sources=self._certain_statuses,
            retention=self.retention.status if self.retention is not None else None,
            tombstones=self._produce_tombstones,
            connection_breakers=self.workers.breakers,
        )
        app = create_app(deps, self.operations)
        runner = web.AppRunner(app, access_log=None, logger=BadRequestLog())
        await runner.setup()
        site = web.TCPSite(runner, s.api_host, s.api_port)
        await site.start()
        self._runner = runner
        port = s.api_port
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            port = server.sockets[0].getsockname()[1]
        self.api_url = f"http://{s.api_host}:{port}"
        log.info("operator API listening on %s", self.api_url)
        if self.on_listening is not None:
            self.on_listening(self.api_url)

    async def _runtime_status(self) -> RuntimeStatus:
        recovery = self.recovery.status() if self.recovery is not None else None
        return RuntimeStatus(
            last_change_seen_at=self._seen(),
            consumer_lag=await self.lag.reading(),
            workers_alive=self.workers.count(),
            recovery=recovery,
            certain_sources=self._certain_statuses(),
            retention=self.retention.snapshot() if self.retention is not None else None,
        )

    def _certain_statuses(self) -> tuple[CertainSourceStatus, ...]:
        return self.certain.statuses() if self.certain is not None else ()

    def _seen(self) -> datetime | None:
        return self.recorder.last_change_seen if self.recorder is not None else None

    async def _last_change_seen(self) -> datetime | None:
        assert self.store is not None
        result = await self.store.query("SELECT max(received_at) FROM changes", max_rows=1)
        value = result.rows[0][0] if result.rows else None
        return value if isinstance(value, datetime) else None

    async def _publish_snapshot(self, snapshot: ConfigSnapshot) -> None:
        assert self.producer is not None
        sent = await self.producer.send(topics.CONFIG.name, snapshot.dumps(), key=CONFIG_KEY)
        await sent

    async def _produce_changes(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        assert self.producer is not None
        futures = [
            await self.producer.send(topics.CHANGES.name, value, key=key) for key, value in records
        ]
        await asyncio.gather(*futures)

    async def _produce_redrives(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        assert self.producer is not None
        futures = [
            await self.producer.send(topics.REDRIVE.name, value, key=key) for key, value in records
        ]
        await asyncio.gather(*futures)

    async def _produce_tombstones(self, keys: Sequence[str]) -> dict[str, int]:
        """Null-value records for an erased person's keys on the compacted signal-delivered."""
        assert self.producer is not None
        topic = topics.DELIVERED.name
        futures = [await self.producer.send(topic, None, key=k.encode()) for k in keys]
        await asyncio.gather(*futures)
        return {topic: len(keys)}

    async def _broker_ok(self) -> bool:
        assert self.producer is not None
        return bool(await self.producer.client.force_metadata_update())

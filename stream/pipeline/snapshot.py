"""The worker's view of configuration and event catalog, fed by `signal-config`.

Every worker reads the topic itself with a plain consumer *without* a group, so every worker sees
every snapshot (a group would hand each snapshot to one worker only). A snapshot is whole, so only
the newest matters: the reader starts a few records before the end and applies each snapshot it
reads, newest last.

Event changes routed by this worker are applied to the local catalog at once (`apply_event`);
control republishes the catalog in snapshots, debounced, so a snapshot may lag behind what this
worker already knows. Taking a snapshot therefore keeps any local event entry that is newer than
the snapshot's.

`ConfigSnapshot.secrets` maps connection id → client secret *sealed* by control
(`stream.sealing`): the worker opens each with the key file it shares with control, and only for
a connection whose identity URL and client id are still the ones it was sealed for. The account
dict carries no secret (exports omit them), so the opened secrets are put back into the rebuilt
`Account`'s connections, which is also what `config.completeness` checks for. A secret that does
not open is left out (the connection then has none, and its deliveries fail saying so) and the
reason is logged, never the secret.

The snapshot as a whole is authenticated: control tags it with a key derived from the same key
file (`stream.sealing`), and the reader applies only a snapshot whose tag verifies. A record
without a tag or with a wrong one (anyone on the machine can produce to the embedded broker) is
refused with an error in the log and counted (`ConfigView.snapshots_refused`); the worker keeps
the configuration it has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr, ValidationError

from config.models import Account
from config.secret_refs import secret_binding
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.messages import ConfigSnapshot
from stream.pipeline.topic_reader import TopicReader
from stream.sealing import AuthError, KeyFile, SealError, SecretBox
from stream.topics import CONFIG

log = logging.getLogger("signal.pipeline.snapshot")

__all__ = ["ConfigView", "Snapshot", "SnapshotReader", "build_snapshot", "merge_catalogs"]

TAIL = 20
"""Records read back from the end of `signal-config` at start to find the newest snapshot."""


@dataclass(frozen=True)
class Snapshot:
    version: int
    account: Account
    secrets: Mapping[str, str]
    catalog: EventCatalog
    tested: Mapping[str, datetime] = field(default_factory=dict)
    """Connection id → its last passing operator test (`ConfigSnapshot.tested`)."""

    def secret(self, connection_id: str) -> str | None:
        return self.secrets.get(connection_id)


def build_snapshot(message: ConfigSnapshot, keys: KeyFile | SecretBox) -> Snapshot:
    """Rebuild the account (secrets opened and put back) and catalog; raises ValueError when
    unusable."""
    try:
        account = Account.model_validate(message.account)
        secrets: dict[str, str] = {}
        for connection in account.connections:
            sealed = message.secrets.get(connection.id)
            if not sealed:
                continue
            try:
                secret = keys.open(sealed, connection.id, secret_binding(connection))
            except SealError as error:
                log.error(
                    "snapshot %s: the secret of connection %s cannot be used: %s",
                    message.version,
                    connection.id,
                    error,
                )
                continue
            secrets[connection.id] = secret
            connection.client_secret = SecretStr(secret)
        catalog = EventCatalog.from_dict(message.catalog or {})
    except ValidationError as error:
        raise ValueError(f"snapshot {message.version} is not a valid account: {error}") from None
    return Snapshot(message.version, account, secrets, catalog, dict(message.tested))


def merge_catalogs(snapshot: EventCatalog, local: EventCatalog) -> EventCatalog:
    """The snapshot's catalog, with local entries that are newer than (or missing from) it."""
    merged = snapshot
    for code in local:
        mine = local.entry(code)
        theirs = snapshot.entry(code)
        if mine is not None and (theirs is None or mine.updated_at > theirs.updated_at):
            merged = merged.with_event(code, mine.event, mine.updated_at, mine.change_id)
    return merged


class ConfigView:
    """The newest snapshot plus local catalog updates; what the agents evaluate against."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._catalog = EventCatalog()
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()
        self.snapshots_applied = 0
        self.snapshots_refused = 0
        """Records on `signal-config` refused as not authentic (no tag, a wrong one)."""
        self.applied_at = 0.0

    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    @property
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            raise RuntimeError("no configuration snapshot yet")
        return self._snapshot

    @property
    def account(self) -> Account:
        return self.snapshot.account

    @property
    def catalog(self) -> EventCatalog:
        return self._catalog

    @property
    def version(self) -> int | None:
        return None if self._snapshot is None else self._snapshot.version

    def take(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._catalog = merge_catalogs(snapshot.catalog, self._catalog)
        self.snapshots_applied += 1
        self.applied_at = time.monotonic()
        self._ready.set()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def apply_event(self, change: ChangeEvent) -> bool:
        """Apply an event change to the local catalog; True when it changed anything."""
        before = self._catalog
        self._catalog = before.apply(change)
        return self._catalog is not before

    async def wait_ready(self, log_every: float = 10.0) -> None:
        """Block until the first snapshot has arrived (the worker never evaluates against
        nothing)."""
        while not self._ready.is_set():
            try:
                async with asyncio.timeout(log_every):
                    await self._ready.wait()
            except TimeoutError:
                log.warning("waiting for the first configuration snapshot on %s", CONFIG.name)

    async def wait_next(self, within: float) -> bool:
        """Wait up to `within` s for another snapshot; True when one came."""
        changed = self._changed
        try:
            async with asyncio.timeout(within):
                await changed.wait()
        except TimeoutError:
            return False
        return True


class SnapshotReader:
    """Reads `signal-config` without a consumer group and feeds a `ConfigView`."""

    def __init__(
        self,
        broker_url: str,
        view: ConfigView,
        keys: KeyFile,
        *,
        topic: str = CONFIG.name,
        poll_ms: int = 100,
    ) -> None:
        self._reader = TopicReader(
            broker_url, topic, client_id="signal-pipeline-config", log=log, poll_ms=poll_ms
        )
        self._view = view
        self._keys = keys
        self._next: int | None = None

    async def run(self) -> None:
        """Read forever; reconnects after errors (never raises, except on cancellation)."""
        await self._reader.run(self._read)

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        partition = TopicPartition(self._reader.topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        start = max(0, end - TAIL) if self._next is None else min(self._next, end)
        consumer.seek(partition, start)
        while True:
            batches = await consumer.getmany(partition, timeout_ms=self._reader.poll_ms)
            newest: Any = None
            for records in batches.values():
                for record in records:
                    self._next = record.offset + 1
                    parsed = _parse(record.value, self._keys, self._view.version)
                    if parsed is REFUSED:
                        self._view.snapshots_refused += 1
                    elif isinstance(parsed, Snapshot):
                        newest = parsed
            if newest is not None:
                self._view.take(newest)
                log.info(
                    "configuration snapshot %s applied (%d flows, %d events)",
                    newest.version,
                    len(newest.account.flows),
                    len(newest.catalog),
                )


REFUSED = "refused"
"""`_parse`'s answer for a record that is not an authentic snapshot."""


def _parse(value: bytes | None, keys: KeyFile, applied: int | None = None) -> Snapshot | str | None:
    """The snapshot in a record; REFUSED when it is not authentic, None when unusable.
    `applied`: the version the worker holds, named in the refusal (it is kept)."""
    if value is None:
        return None
    try:
        message = ConfigSnapshot.loads(value)
    except (ValidationError, ValueError) as error:
        log.error("ignoring an unusable record on %s: %s", CONFIG.name, str(error)[:500])
        return None
    try:
        keys.verify(message.authenticated_bytes(), message.auth)
    except AuthError as error:
        kept = f"version {applied}" if applied is not None else "none yet"
        log.error(
            "refusing configuration snapshot %s on %s: %s; the configuration applied before is "
            "kept (%s). Only control, holding the config-key, publishes snapshots",
            message.version,
            CONFIG.name,
            error,
            kept,
        )
        return REFUSED
    try:
        return build_snapshot(message, keys)
    except ValueError as error:
        log.error("ignoring an unusable record on %s: %s", CONFIG.name, str(error)[:500])
        return None

"""The Kafka topic contract: every topic Signal uses, its key, its partition count.

Topics are declared explicitly, with their partition counts, before any client touches them.
Brokers that auto-create topics pick their own partition count (the embedded broker: 4, on the
first produce *or* the first metadata request, so a Faust worker subscribing is enough), and a
Faust table whose source topic disagrees fails with `PartitionsMismatch`; a consumer group that
already committed offsets on the wrong layout cannot be fixed without losing order per key.
Faust itself creates only its internal topics (changelogs), never the ones declared here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.broker import bootstrap_servers

__all__ = [
    "ALL_TOPICS",
    "API_CALLS",
    "CHANGES",
    "CONFIG",
    "DELIVERED",
    "DELIVERIES",
    "OUTCOMES",
    "PARTITIONS",
    "REDRIVE",
    "RETENTION_MS",
    "WORKERS",
    "TopicMismatch",
    "TopicSpec",
    "declare_topics",
    "faust_topic",
]

PARTITIONS = 8
"""Partitions of the keyed data topics: the most pipeline workers that can share the load.

Eight lets one host run a couple of workers and a small cluster scale out, while keeping the
per-partition fetch overhead low on the embedded broker. Changing it on a live cluster moves keys
to other partitions (and breaks per-key order), so it is fixed here rather than configurable.
"""

RETENTION_MS = 14 * 24 * 3600 * 1000
"""Two weeks: far beyond the longest plausible outage of control or Marketo, so outcomes and
changes waiting in Kafka are never deleted before they are recorded."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, partition count, what its key means, and topic-level configs."""

    name: str
    partitions: int
    key: str
    purpose: str
    configs: Mapping[str, str] = field(default_factory=dict)

    def new_topic(self, replication_factor: int) -> NewTopic:
        configs = dict(self.configs)
        if replication_factor >= 3:
            configs.setdefault("min.insync.replicas", "2")
        return NewTopic(
            self.name,
            num_partitions=self.partitions,
            replication_factor=replication_factor,
            topic_configs=configs,
        )


CHANGES = TopicSpec(
    "certain-changes",
    PARTITIONS,
    key="registration code (event code for event.create_update)",
    purpose="change events from Certain: produced by Certain-side producers, and by control for "
    "changes accepted through POST /api/v1/changes (after they are in the ledger)",
    configs={"retention.ms": str(RETENTION_MS)},
)
OUTCOMES = TopicSpec(
    "signal-outcomes",
    PARTITIONS,
    key="change id",
    purpose="one record per (change, flow) evaluation, recorded by control",
    configs={"retention.ms": str(RETENTION_MS)},
)
DELIVERIES = TopicSpec(
    "signal-deliveries",
    PARTITIONS,
    key="connection id",
    purpose="mapped Marketo actions; one connection per partition so batching and the "
    "per-instance rate limit are enforced in one place",
    configs={"retention.ms": str(RETENTION_MS)},
)
CONFIG = TopicSpec(
    "signal-config",
    1,
    key="'snapshot': one record holds the whole account configuration and event catalog",
    purpose="configuration snapshots published by control (secrets sealed); every record is the "
    "full latest state, so the topic is compacted and one partition keeps them in order",
    configs={"cleanup.policy": "compact"},
)
API_CALLS = TopicSpec(
    "signal-api-calls",
    PARTITIONS,
    key="connection id",
    purpose="one record per Marketo HTTP call, recorded by control",
    configs={"retention.ms": str(RETENTION_MS)},
)

REDRIVE = TopicSpec(
    "signal-redrive",
    PARTITIONS,
    key="registration code (event code for event.create_update)",
    purpose="retries, operator resubmits and replays: an archived change re-driven by control "
    "for one flow, evaluated against the current configuration and catalog",
    configs={"retention.ms": str(RETENTION_MS)},
)

DELIVERED = TopicSpec(
    "signal-delivered",
    PARTITIONS,
    key="delivery key (change id, flow id [, replay id])",
    purpose="(change, flow) pairs the pipeline delivered, and 'sending' marks written just before "
    "a completing Marketo call (a tombstone withdraws one Marketo did not run); read whole by "
    "every pipeline worker so a redelivered or redriven pair is not sent to Marketo twice; kept "
    "in the ledger by control (delivery_marks) and written back at its start, since the embedded "
    "broker forgets; compacted, and forgotten after a week",
    configs={"cleanup.policy": "compact,delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
)

WORKERS = TopicSpec(
    "signal-workers",
    1,
    key="worker id (host:pid:random)",
    purpose="each pipeline worker's heartbeat every 2 s and a last one when it stops cleanly "
    "(stream/heartbeats.py); control counts the live workers from it, since the embedded broker "
    "never drops a dead member from the consumer group; kept an hour",
    configs={"retention.ms": str(3600 * 1000)},
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    CHANGES,
    OUTCOMES,
    DELIVERIES,
    CONFIG,
    API_CALLS,
    REDRIVE,
    DELIVERED,
    WORKERS,
)


class TopicMismatch(RuntimeError):
    """An existing topic has a layout Signal cannot use (fewer partitions than declared)."""


_TOPIC_ALREADY_EXISTS = 36


async def declare_topics(
    broker_url: str,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    *,
    replication_factor: int | None = None,
    request_timeout_ms: int = 10_000,
) -> dict[str, int]:
    """Create every missing topic and check the existing ones; return name -> partitions.

    Idempotent and safe to run from several processes at once (a topic created concurrently
    counts as existing). `replication_factor` defaults to min(3, brokers in the cluster), so the
    embedded broker gets 1 and a real cluster gets 3 with `min.insync.replicas=2`. A topic with
    *more* partitions than declared is accepted (an operator scaled it out on purpose); fewer
    raises `TopicMismatch`, because silently producing to it would break per-key ordering.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(broker_url),
        client_id="signal-topics",
        request_timeout_ms=request_timeout_ms,
    )
    await admin.start()
    try:
        if replication_factor is None:
            cluster = await admin.describe_cluster()
            replication_factor = max(1, min(3, len(cluster["brokers"])))
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
                [spec.new_topic(replication_factor) for spec in missing]
            )
            _raise_for_create_errors(response)
        layout = await _partition_counts(admin, [spec.name for spec in specs])
    finally:
        await admin.close()
    for spec in specs:
        actual = layout.get(spec.name, 0)
        if actual < spec.partitions:
            raise TopicMismatch(
                f"topic {spec.name!r} has {actual} partitions, Signal needs {spec.partitions}; "
                "delete it or add partitions before starting"
            )
    return layout


def _raise_for_create_errors(response: Any) -> None:
    failures = [
        f"{topic}: {message or f'error {code}'}"
        for topic, code, message in response.topic_errors
        if code not in (0, _TOPIC_ALREADY_EXISTS)
    ]
    if failures:
        raise TopicMismatch("cannot create topics: " + "; ".join(failures))


async def _partition_counts(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, int]:
    described = await admin.describe_topics(list(names))
    return {
        entry["topic"]: len(entry["partitions"]) for entry in described if entry["error_code"] == 0
    }


def faust_topic(app: Any, spec: TopicSpec, **options: Any) -> Any:
    """Declare `spec` on a Faust app with the contract's partition count.

    Faust does not create these topics (run `declare_topics` first); it checks co-partitioning
    of tables against the declared count, so both sides must agree on the layout.
    """
    options.setdefault("config", dict(spec.configs))
    return app.topic(spec.name, partitions=spec.partitions, **options)

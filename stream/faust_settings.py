"""Faust settings shared by both apps (`signal-pipeline` and `signal-control`).

Used as `faust.App(app_id, broker=url, **faust_settings(data_dir=...))`. Every value below is a
deliberate departure from (or a pin of) Faust's default, explained where it is set; they were
measured with faust-streaming 0.15.3 on the embedded broker and are sane on a real cluster.
"""

from __future__ import annotations

from functools import wraps
from pathlib import Path
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from stream.broker import free_port
from stream.consumer_leave import bound_faust_consumer_stop, leave_at_generation_zero
from stream.fetch_wait import adapt_when_started
from stream.topics import PARTITIONS

__all__ = ["DEFAULT_DATA_DIR", "faust_settings"]

DEFAULT_DATA_DIR = Path("var")

REBALANCE_TIMEOUT_S = 3.0
"""How long the group coordinator waits for members to rejoin during a rebalance (Faust: 60 s).

A member that does not rejoin in time is dropped, so a scale-out or a restart is not held up by
a slow member for a minute. It is enough because `stream_wait_empty` finishes in-flight events
quickly: every network call in an agent carries its own timeout.
"""

SESSION_TIMEOUT_S = 6.0
"""How long a silent worker keeps its partitions: a crashed worker's share moves within 6 s.

The embedded broker holds a new group's first join for half the session timeout (measured: 60 s
-> 30 s, 10 s -> 5 s, 6 s -> 3 s; the rebalance timeout made no difference), so this value sets
how fast a worker starts. 6 s is also real Kafka's smallest allowed value
(`group.min.session.timeout.ms`). Faust heartbeats from its consumer thread, so a busy agent does
not miss heartbeats; long processing is bounded by `broker_max_poll_interval` (Faust's 1000 s).
"""

HEARTBEAT_INTERVAL_S = 1.0
"""Well under a third of the session timeout, as Kafka requires; also how fast a member learns
of a pending rebalance (it hears of it in a heartbeat response)."""

COMMIT_INTERVAL_S = 1.0
"""Offsets of acked events are committed every second (Faust: 2.8 s). After a crash at most about
a second of work is redelivered; at-least-once processing already tolerates the duplicates."""

COMMIT_EVERY = 1000
"""Also commit after this many acked events, so a burst does not wait for the interval."""


FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch that found no new record (Faust hard-codes 1,500 ms).

Real Kafka answers a waiting fetch as soon as a record arrives, so there this only bounds idle
polling. The embedded broker holds it for the whole wait even when records arrive (measured:
produce → consume p50 702 ms at 1,500, 202 ms at 500, 26 ms at 100), and each of a change's
hops (route, deliver, record) paid it: most of the 1.3 s from a change to Marketo's answer at
50 changes/s (bench.delivery_latency). While fetches find nothing the wait grows to
`stream.fetch_wait.IDLE_WAIT_MS`, so an idle service does not poll ten times a second."""


def use_fetch_max_wait(wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make Faust's consumers ask the broker to hold a fetch at most `wait_ms` while they find
    records, longer while they find none (`stream.fetch_wait`) (idempotent).

    Faust passes a fixed `fetch_max_wait_ms` to aiokafka and offers no setting for it, so the
    consumer it creates gets the value before it starts (aiokafka reads it at start).
    """
    create = AIOKafkaConsumerThread._create_consumer
    original = getattr(create, "__wrapped__", create)

    @wraps(original)
    def create_consumer(self: AIOKafkaConsumerThread, loop: Any) -> Any:
        consumer = original(self, loop)
        consumer._fetch_max_wait_ms = wait_ms
        adapt_when_started(consumer, wait_ms)
        return consumer

    AIOKafkaConsumerThread._create_consumer = create_consumer  # type: ignore[method-assign]


def faust_settings(
    *,
    data_dir: Path | str = DEFAULT_DATA_DIR,
    replication_factor: int = 1,
    web_port: int | None = None,
    web_host: str = "127.0.0.1",
    **overrides: Any,
) -> dict[str, Any]:
    """Keyword arguments for `faust.App` shared by every Signal worker.

    `data_dir` is `SIGNAL_DATA_DIR`; Faust's own files go under `<data_dir>/faust/<app id>`
    instead of Faust's default `./<app id>-data` in whatever directory the worker started in.
    `<data_dir>/faust` is created here because Faust creates only the last path component.

    Faust's web server is off unless `web_port` is given: Signal's operator API is control's own
    aiohttp server, and Faust's default port (6066) is the same as control's default API port,
    so two workers on one host would clash. `web_port=0` picks a free loopback port. Even when
    off, a free loopback port is set: the `faust worker` command line turns the web server back
    on unless given `--without-web`, and it must not then grab 6066 on every interface.

    `replication_factor` applies to topics Faust creates itself (table changelogs); use 3 on a
    real cluster, as `stream.topics.declare_topics` does.

    `overrides` replace any value (tests use them, e.g. a different `topic_partitions`).
    """
    use_fetch_max_wait()
    bound_faust_consumer_stop()
    leave_at_generation_zero()
    faust_dir = Path(data_dir) / "faust"
    faust_dir.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        # Group membership: join in seconds, not half a minute (see the constants above).
        "broker_rebalance_timeout": REBALANCE_TIMEOUT_S,
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": HEARTBEAT_INTERVAL_S,
        "broker_commit_interval": COMMIT_INTERVAL_S,
        "broker_commit_every": COMMIT_EVERY,
        # Durability: a produce is acknowledged only once every in-sync replica has it, because
        # an offset is committed on the strength of that acknowledgement.
        "producer_acks": -1,
        # exactly_once cannot cover Marketo HTTP calls or DuckDB, and Faust's transactional
        # mode has open duplicate/crash bugs; Signal is idempotent by changeId instead.
        "processing_guarantee": "at_least_once",
        # Finish events already taken from the stream before a rebalance or shutdown, so an
        # outcome is produced for them instead of being redone by the next owner.
        "stream_wait_empty": True,
        # A new consumer group starts from the oldest retained change rather than skipping
        # everything produced before the first worker came up.
        "consumer_auto_offset_reset": "earliest",
        # Tables (if any) are kept in memory and rebuilt from their changelog: workers hold no
        # durable state of their own; DuckDB in control is the system of record.
        "store": "memory://",
        # Topics Faust creates itself (changelogs, repartitions) get the contract's partition
        # count, so they stay co-partitioned with `certain-changes`.
        "topic_partitions": PARTITIONS,
        "topic_replication_factor": replication_factor,
        # The assignor's leader topic is unused by Signal; one fewer topic to create and fetch.
        "topic_disable_leader": True,
        "datadir": str(faust_dir / "{conf.name}"),
    }
    settings.update(
        web_enabled=web_port is not None,
        web_port=web_port or free_port(web_host),
        web_host=web_host,
        web_bind=web_host,
    )
    settings.update(overrides)
    return settings

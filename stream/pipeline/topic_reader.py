"""A plain reader of one topic without a consumer group, reconnecting after errors.

Every worker reads `signal-config` and `signal-delivered` whole (a group would hand each record
to one worker only), outside Faust (whose recovery must stay out of the worker's start). Both
readers need the same loop: open a groupless consumer, follow the topic until something breaks,
log it, close, wait a second and open again; only what they do with the consumer differs, so
that part is a callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from stream.broker import bootstrap_servers
from stream.fetch_wait import adapt_fetch_wait

__all__ = ["Follow", "TopicReader"]

Follow = Callable[[AIOKafkaConsumer], Awaitable[None]]
"""Reads from a started consumer until it fails (or is cancelled); it assigns the partitions."""

RECONNECT_S = 1.0


class TopicReader:
    """The groupless consumer's life: open, follow, and after any error close and open again."""

    def __init__(
        self,
        broker_url: str | None,
        topic: str,
        *,
        client_id: str,
        log: logging.Logger,
        poll_ms: int = 100,
    ) -> None:
        """`log`: the owner's logger, so a broken connection is reported under its name."""
        self._log = log
        self._servers = bootstrap_servers(broker_url) if broker_url else []
        self.topic = topic
        self.client_id = client_id
        self.poll_ms = poll_ms
        self.consumer: AIOKafkaConsumer | None = None
        """The consumer currently open; None between connections."""

    async def run(self, follow: Follow, *, on_close: Callable[[], None] | None = None) -> None:
        """Follow the topic forever; never raises, except on cancellation. `on_close` runs each
        time a consumer is closed, before the next one opens."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._servers,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id=self.client_id,
                fetch_max_wait_ms=self.poll_ms,
            )
            self.consumer = consumer
            try:
                await consumer.start()
                adapt_fetch_wait(consumer, self.poll_ms)
                await follow(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log.exception("reading %s failed; reconnecting in 1 s", self.topic)
                await asyncio.sleep(RECONNECT_S)
            finally:
                self.consumer = None
                if on_close is not None:
                    on_close()
                try:
                    await consumer.stop()
                except Exception:
                    self._log.debug("closing the consumer of %s failed", self.topic, exc_info=True)

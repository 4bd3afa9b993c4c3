"""Faust's consumers ask the broker to hold an empty fetch at most `FETCH_MAX_WAIT_MS`.

Faust hard-codes 1,500 ms, and the embedded broker holds a fetch that long even when records
arrive, which every hop of a change paid (bench.delivery_latency).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust

from stream.faust_settings import FETCH_MAX_WAIT_MS, faust_settings


async def test_worker_and_client_consumers_use_the_short_fetch_wait(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    for name, client_only in (("signal-fetch-worker", False), ("signal-fetch-client", True)):
        app = faust.App(name, broker="kafka://127.0.0.1:1", **faust_settings(data_dir=tmp_path))
        app.client_only = client_only
        faust_consumer: Any = app.consumer
        consumer = faust_consumer._thread._create_consumer(loop)
        assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
    # Settings asked for twice wrap Faust's consumer once.
    faust_settings(data_dir=tmp_path)
    again = faust.App("signal-fetch-again", broker="kafka://127.0.0.1:1")
    faust_consumer = again.consumer
    assert faust_consumer._thread._create_consumer(loop)._fetch_max_wait_ms == FETCH_MAX_WAIT_MS

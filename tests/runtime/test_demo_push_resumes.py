"""The demo's push feed (`stream.run_demo.push_traffic`) outlives a control that goes away (a
restart, a broker rollover): after the error it goes on with the rest of its chunk from the
batch that failed, instead of starting the chunk over and posting, for as long as the chunk had
run, only changes control already holds.

The API is a stand-in here, on purpose: the failure has to land on a chosen batch, and what is
checked is the order and multiplicity of the feed's own posts. The feed against a real control
through a restart is in tests/e2e (the broker heal and rollover runs).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from apiclient.errors import ControlUnreachable
from apiclient.rows import IngestResult
from stream.run_demo import push_traffic

RATE = 20.0
CHUNK_S = 30.0
FAIL_AFTER_S = 6.0
"""The post that fails comes this long into the chunk; what follows it must not wait as long."""


class FlakyApi:
    """Accepts every batch but the first one posted `FAIL_AFTER_S` into the feed, which fails as
    an unreachable control does; stops the feed a few batches after it."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.calls: list[tuple[float, list[str]]] = []
        self.failed: list[str] = []
        self.failed_at = 0.0
        self.stop = stop
        self.started = time.monotonic()

    async def post_changes(self, bodies: list[dict[str, Any]], first_line: int = 1) -> Any:
        now = time.monotonic()
        # Some generated items are deliberately invalid (no change id): the body is the item.
        batch = [json.dumps(body, sort_keys=True) for body in bodies]
        if now - self.started >= FAIL_AFTER_S and not self.failed:
            self.failed, self.failed_at = batch, now
            raise ControlUnreachable("http://127.0.0.1:1")
        self.calls.append((now, batch))
        if self.failed and len([c for c in self.calls if c[0] > self.failed_at]) >= 3:
            self.stop.set()
        return IngestResult(accepted=len(bodies), sent=len(bodies))


async def test_after_an_error_the_feed_goes_on_where_it_failed() -> None:
    stop = asyncio.Event()
    api = FlakyApi(stop)
    said: list[str] = []
    await asyncio.wait_for(
        push_traffic(api, RATE, 7, stop, said.append, chunk_s=CHUNK_S),  # type: ignore[arg-type]
        120,
    )
    assert any("retrying in 2s" in line for line in said), said
    assert api.failed, "a post failed"
    before = [item for at, batch in api.calls if at < api.failed_at for item in batch]
    after = [(at, batch) for at, batch in api.calls if at > api.failed_at]
    resumed_at, resumed = after[0]
    # The batch that failed comes first after the error (nothing is lost) ...
    assert resumed[: len(api.failed)] == api.failed, "resumed at the batch that failed"
    # ... what control had accepted before it is not posted again ...
    again = set(before) & {item for _, batch in after for item in batch}
    assert not again, f"{len(again)} accepted items posted again"
    # ... and it is due at once after the 2 s retry wait, not as far into its chunk as the
    # failure came (the chunk's offsets count from its start).
    assert resumed_at - api.failed_at < 2.0 + FAIL_AFTER_S / 2, resumed_at - api.failed_at

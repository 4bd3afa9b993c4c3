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
from typing import Any

from apiclient.errors import ControlUnreachable
from apiclient.rows import IngestResult
from stream.run_demo import push_traffic

RATE = 200.0
CHUNK_S = 1.0


class FlakyApi:
    """Accepts every batch but the third, which fails as an unreachable control does."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.calls: list[list[str]] = []
        self.failed: list[str] = []
        self.stop = stop

    async def post_changes(self, bodies: list[dict[str, Any]], first_line: int = 1) -> Any:
        # Some generated items are deliberately invalid (no change id): the body is the item.
        batch = [json.dumps(body, sort_keys=True) for body in bodies]
        if len(self.calls) == 2 and not self.failed:
            self.failed = batch
            raise ControlUnreachable("http://127.0.0.1:1")
        self.calls.append(batch)
        if len(self.calls) >= 4:
            self.stop.set()
        return IngestResult(accepted=len(bodies), sent=len(bodies))


async def test_after_an_error_the_feed_goes_on_where_it_failed() -> None:
    stop = asyncio.Event()
    api = FlakyApi(stop)
    said: list[str] = []
    await asyncio.wait_for(
        push_traffic(api, RATE, 7, stop, said.append, chunk_s=CHUNK_S),  # type: ignore[arg-type]
        60,
    )
    assert any("retrying in 2s" in line for line in said), said
    first, second, after = api.calls[0], api.calls[1], api.calls[2]
    assert api.failed, "the third batch failed"
    # The batch that failed comes first after the error (at least once: nothing is lost) ...
    assert after[: len(api.failed)] == api.failed, "resumed at the batch that failed"
    # ... and what control had accepted before it is not posted again.
    resent = set(first + second) & {item for batch in api.calls[2:] for item in batch}
    assert not resent - set(api.failed), f"{len(resent)} accepted items posted again"

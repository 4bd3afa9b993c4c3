"""A mass program-status change: Marketo calls for 20,000 attendees marked Attended at once.

    python -m bench.program_mass_status [--attendees 20000]

The deliver step's `update_program_status` (stream/pipeline/deliver.py) against the sandbox at
Marketo's real limits (100 calls / rolling 20 s, 10 in flight, 300 leads per call): each
attendee's lead is upserted, then its status set in program 1044. The least Marketo allows is
one upsert and one program call per 300 leads, ceil(N / 300) each. Two ways in:

- *worker batches*: the attendees arrive as the worker's deliver agent takes them, batches of
  `PipelineOptions.deliver_max` (300) in a row, each its own `deliver_batch`;
- *one batch*: all of them in one `deliver_batch`, the most the code could group.

Printed: upsert and program calls against that minimum, the batch sizes of the program calls,
time and attendees per second; the sandbox's count of members in Attended checks nothing was
lost. Smoke mode (`bench/__init__.py`) shrinks the limit to 4 calls / 1 s, on the sandbox and in
the client alike, and the change to 1,500 attendees.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from datetime import UTC, datetime

from pydantic import SecretStr

from bench import arguments, sized
from simulators.marketo.sandbox import Sandbox, SandboxConfig
from stream.marketo.client import MarketoClient
from stream.marketo.settings import (
    MARKETO_CALLS_PER_WINDOW,
    MARKETO_LEAD_BATCH,
    MARKETO_WINDOW_S,
    MarketoSettings,
)
from stream.messages import DeliveryRequest, OutcomeStatus
from stream.pipeline.app import PipelineOptions
from stream.pipeline.deliver import deliver_batch

PROGRAM = 1044
STATUS = "Attended"


def attendee(n: int, run: str) -> DeliveryRequest:
    now = datetime.now(UTC)
    return DeliveryRequest(
        change_id=f"{run}-{n:06d}",
        flow_id="program-status",
        flow_name="Program status",
        mode="live",
        connection_id="bench",
        action="update_program_status",
        occurred_at=now,
        received_at=now,
        payload={"email": f"{run}{n}@example.com", "firstName": "Bench", "lastName": f"L{n}"},
        program_id=PROGRAM,
        program_status=STATUS,
    )


async def mass(attendees: int, batch: int, limit: int, window_s: float, label: str) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit_calls=limit, rate_limit_window_s=window_s))
    await sandbox.start("127.0.0.1", 0)
    settings = MarketoSettings(
        connection_id="bench",
        base_url=sandbox.url,
        client_id="sandbox-client",
        client_secret=SecretStr("sandbox-secret"),
        rate_limit_calls=limit,
        rate_window_s=window_s,
    )
    requests = [attendee(n, label) for n in range(attendees)]
    try:
        async with MarketoClient(settings) as client:
            await client.authenticate()
            start = time.monotonic()
            statuses: Counter[OutcomeStatus] = Counter()
            for first in range(0, attendees, batch):
                outcomes = await deliver_batch(requests[first : first + batch], client)
                statuses.update(o.status for o in outcomes)
            elapsed = time.monotonic() - start
        program_calls = sandbox.calls("programs.memberStatus")
        upserts = sandbox.calls("leads.sync")
        members = sum(
            1
            for lead_id in sandbox.state.leads
            if (m := sandbox.state.membership(PROGRAM, lead_id)) and m["statusName"] == STATUS
        )
        refused = Counter(c.code for c in sandbox.calls() if c.code)
    finally:
        await sandbox.stop()
    least = math.ceil(attendees / MARKETO_LEAD_BATCH)
    sizes = Counter(c.batchSize or 0 for c in program_calls)
    shown = ", ".join(f"{n} x {size}" for size, n in sorted(sizes.items(), reverse=True))
    print(f"{label}: {attendees:,} attendees to {STATUS!r}, deliver batches of {batch:,}")
    print(
        f"  calls       {len(program_calls)} program calls, {len(upserts)} upserts "
        f"(least: {least} each) = {len(program_calls) / least:.2f}x the least"
    )
    print(f"  sizes       {shown}")
    print(f"  time        {elapsed:.1f} s, {attendees / elapsed:,.0f} attendees/s")
    print(
        f"  outcome     {statuses[OutcomeStatus.DELIVERED]:,} delivered, "
        f"{members:,} members in {STATUS!r}; 606: {refused.get('606', 0)}  "
        f"615: {refused.get('615', 0)}"
    )


async def main(argv: list[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--attendees", type=int, default=sized(20_000, 1_500))
    args = parser.parse_args(argv)
    limit = sized(MARKETO_CALLS_PER_WINDOW, 4)
    window_s = sized(MARKETO_WINDOW_S, 1.0)
    worker_batch = PipelineOptions(broker_url="kafka://unused").deliver_max
    await mass(args.attendees, worker_batch, limit, window_s, "worker-batches")
    await mass(args.attendees, args.attendees, limit, window_s, "one-batch")


if __name__ == "__main__":
    asyncio.run(main())

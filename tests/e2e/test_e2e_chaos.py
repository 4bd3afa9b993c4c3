"""End to end, the crash contract (DESIGN 2): a burst of 3,000 registration changes accepted by a
real `csignal run`, every process of the run SIGKILLed at once (during ingest; during delivery),
the run started again on the same data dir: no accepted change is lost, the repeats Marketo saw
stay within the call in flight, and the ledger counts every repeat (the "sending" marks control
had not read at the kill come back from the pipeline's journal). The same holds when the run
rolls its embedded broker over mid-delivery (SIGUSR1; what SIGNAL_EMBEDDED_BROKER_MAX_MB sets off).
The harness and its figures: `tests/e2e/chaos_support.py`; more moments: `python -m bench.chaos`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.chaos_support import (
    IN_FLIGHT_BOUND,
    UNCOUNTED_ALLOWANCE,
    ChaosResult,
    Moment,
    chaos_run,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

CHANGES = 3000


def assert_nothing_lost(result: ChaosResult) -> None:
    """The crash contract's figures: every accepted change has its outcomes and its lead in
    Marketo, and Marketo saw no more repeats than the calls in flight, each counted."""
    print(result.line())
    assert result.accepted > 0, result.line()
    assert result.lost == 0, result.line()
    assert result.recovery_s is not None, result.line()
    assert result.not_in_marketo == 0, result.line()
    assert result.marketo_repeats <= IN_FLIGHT_BOUND, result.line()
    assert result.ledger_repeats is not None, result.line()
    assert result.repeated_leads <= result.ledger_repeats + UNCOUNTED_ALLOWANCE, result.line()


@pytest.mark.parametrize(
    "moment", [Moment("ingest", 0.5), Moment("delivery", 0.5)], ids=["ingest", "delivery"]
)
async def test_kill_everything_loses_nothing(tmp_path: Path, moment: Moment) -> None:
    result = await chaos_run(
        tmp_path,
        label=f"kill at {moment}",
        kill="all",
        moment=moment,
        changes=CHANGES,
    )
    assert_nothing_lost(result)


async def test_a_broker_rollover_mid_delivery_loses_nothing(tmp_path: Path) -> None:
    """The embedded broker rolled over (what `SIGNAL_EMBEDDED_BROKER_MAX_MB` sets off) halfway
    through the burst's deliveries, with the product's recovery settings: what the old broker
    held is re-driven from the ledger at once (the new broker is fresh), nothing is lost, and
    Marketo sees no more repeats than the calls in flight."""
    result = await chaos_run(
        tmp_path,
        label="broker rollover at delivery 0.5",
        kill="rollover",
        moment=Moment("delivery", 0.5),
        changes=CHANGES,
    )
    assert_nothing_lost(result)

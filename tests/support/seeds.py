"""A seed that is new each run but the same in every pytest-xdist worker of that run.

A parametrized test whose ids carry a fresh random seed must collect the same ids in every
worker, or xdist refuses the run ("Different tests were collected"). Each worker of one run
shares `PYTEST_XDIST_TESTRUNUID`, so the seed is derived from it; a serial run draws one.
`SIGNAL_TEST_SEED` replays a seed a failing test's name showed.
"""

from __future__ import annotations

import os
import random

RUN_SEED_RANGE = 10**6


def run_seed() -> int:
    """This run's seed, in [0, RUN_SEED_RANGE)."""
    chosen = os.environ.get("SIGNAL_TEST_SEED")
    if chosen:
        return int(chosen)
    shared = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if shared:
        return int(shared, 16) % RUN_SEED_RANGE
    return random.SystemRandom().randrange(RUN_SEED_RANGE)

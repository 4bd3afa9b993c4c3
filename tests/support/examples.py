"""How many examples a property-based test (hypothesis) draws.

`just test` draws each test's full count: the randomised coverage lives in the full suite.
`just test-fast` sets `SIGNAL_TEST_EXAMPLES=fast` and draws a quarter of it (at least 10): the
inner loop still runs every property, on fewer cases, for a fraction of the CPU. A test's own
`settings(max_examples=...)` overrides any hypothesis profile, hence a function rather than a
profile.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

ENV = "SIGNAL_TEST_EXAMPLES"
FAST_SHARE = 4
"""`just test-fast` draws one example in FAST_SHARE of a test's full count."""
FAST_FLOOR = 10


def examples(full: int) -> int:
    """`full` in `just test`; `full // FAST_SHARE` (at least FAST_FLOOR) in `just test-fast`."""
    if os.environ.get(ENV) == "fast":
        return min(full, max(FAST_FLOOR, full // FAST_SHARE))
    return full


def cases(full: Sequence[T]) -> list[T]:
    """Every case of `full` in `just test`; only its last in `just test-fast` (the randomised
    ledgers of tests/metrics/test_live_rollups.py list the run's own seed last)."""
    if os.environ.get(ENV) == "fast":
        return list(full[-1:])
    return list(full)

"""How many examples a property-based test (hypothesis) draws.

`just test` draws each test's full count: the randomised coverage lives in the full suite.
`just test-fast` sets `SIGNAL_TEST_EXAMPLES=fast` and draws a quarter of it (at least 10): the
inner loop still runs every property, on fewer cases, for a fraction of the CPU. A test's own
`settings(max_examples=...)` overrides any hypothesis profile, hence a function rather than a
profile.
"""

from __future__ import annotations

import os

ENV = "SIGNAL_TEST_EXAMPLES"
FAST_SHARE = 4
"""`just test-fast` draws one example in FAST_SHARE of a test's full count."""
FAST_FLOOR = 10


def examples(full: int) -> int:
    """`full` in `just test`; `full // FAST_SHARE` (at least FAST_FLOOR) in `just test-fast`."""
    if os.environ.get(ENV) == "fast":
        return min(full, max(FAST_FLOOR, full // FAST_SHARE))
    return full

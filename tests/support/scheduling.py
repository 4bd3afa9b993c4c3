"""How `just test` hands the tests to pytest-xdist's workers (`--dist loadscope`).

xdist's loadscope keeps a module's tests on one worker, so module-scoped fixtures (a control, a
broker, a recorded ledger) are set up once. Two things made it slow for this suite:

- The end-to-end tests and the bench smoke runs start their own processes and share no module
  fixture, yet a module of them ran in series: the two 50-90 s crash runs of one module, or the
  23 bench modules (about 170 s) on one worker while the others ran out of work. Those modules
  are handed out test by test here (`ONE_BY_ONE`).
- A worker was given more work whenever it had two tests or fewer left, so it took up to three
  one-test units at once: long end-to-end tests queued behind each other on one worker while
  another was free. Here a worker gets its next unit when it has one test left (the test it is
  running: an xdist worker runs a test once it knows the next one, so it is never left idle).
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

ONE_BY_ONE = ("tests/e2e/", "tests/test_bench_smoke.py")
"""Node id prefixes whose tests are scheduled one by one. A module listed here must not hold an
expensive module- or session-scoped fixture of its own: each worker would set it up again."""

LOOKAHEAD = 1
"""Tests a worker holds beyond the one it runs (xdist's own rule allows two)."""


class SignalScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no type hints
    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(ONE_BY_ONE):
            return nodeid
        return str(super()._split_scope(nodeid))

    def _reschedule(self, node: WorkerController) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        if self._pending_of(self.assigned_work[node]) > LOOKAHEAD:
            return
        self._assign_work_unit(node)

"""The shared harness's own failure paths: a wait that gives up must say why, and the faketime
sleep must let a shifted-date run sleep at all."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import examples
from tests.support.seeds import RUN_SEED_RANGE, run_seed
from tests.support.waiting import until, until_sync

FAKETIME_DIR = Path(__file__).parent / "faketime"


async def test_until_returns_the_first_truthy_result() -> None:
    seen: list[int] = []

    async def check() -> list[int]:
        seen.append(1)
        return seen if len(seen) >= 3 else []

    assert await until(check, "three checks", every=0) == [1, 1, 1]


async def test_until_gives_up_at_its_deadline_naming_what_and_the_last_result() -> None:
    async def never() -> str:
        return ""

    with pytest.raises(AssertionError, match=r"the row: not within 0\.05 s \(last: ''\)"):
        await until(never, "the row", within=0.05, every=0.01)


def test_until_sync_stops_at_once_when_the_watched_process_is_gone() -> None:
    with pytest.raises(AssertionError, match="the row: worker exited"):
        until_sync(lambda: 0, "the row", within=60, alive=lambda: "worker exited")


@pytest.mark.skipif(shutil.which("faketime") is None, reason="Debian's faketime is not installed")
def test_a_shifted_date_run_can_sleep() -> None:
    env = {
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": str(FAKETIME_DIR),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        ["faketime", "+60 days", sys.executable, "-c", "import time; time.sleep(0.01)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_the_run_seed_is_one_per_run_and_can_be_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNAL_TEST_SEED", raising=False)
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "a" * 32)
    first = run_seed()
    assert first == run_seed() == int("a" * 32, 16) % RUN_SEED_RANGE  # every worker alike
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "b" * 32)
    assert run_seed() != first  # another run, another seed
    monkeypatch.setenv("SIGNAL_TEST_SEED", "42")
    assert run_seed() == 42


def test_fast_runs_draw_fewer_examples_and_one_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(examples.ENV, raising=False)
    assert examples.examples(200) == 200
    assert examples.cases([3, 11, 99]) == [3, 11, 99]
    monkeypatch.setenv(examples.ENV, "fast")
    assert examples.examples(200) == 50
    assert examples.examples(20) == 10, "at least FAST_FLOOR"
    assert examples.examples(5) == 5, "never more than the full count"
    assert examples.cases([3, 11, 99]) == [99], "the run's own seed, listed last"

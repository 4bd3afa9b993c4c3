"""`csignal … | head`: every command ends quietly when the reader of its output goes away.

The real CLI (`python -m stream`) writes into a pipe whose reader has already closed it, so the
first write fails whatever the output's size (deterministic, unlike racing `head`); one test also
runs a real `| head -1` over more output than a pipe buffers. Exit code 141 (128 + SIGPIPE) for
all, as a shell reports for any program a closed pipe ends, and nothing on stderr but what the
command says before it writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from simulators.certain.demo_account import SECRET_ENV, demo_account_yaml
from stream.broker import EmbeddedBroker
from stream.cli import READER_GONE
from tests.support.processes import REPO, ControlProcess, clean_env, start_control

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WITHIN_S = 120.0


@pytest.fixture(scope="module")
def control(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    """One `csignal control` with the demo account imported, so `flows` has rows to print."""
    root = tmp_path_factory.mktemp("cli-pipes")
    running = start_control(module_broker, root / "var", env={SECRET_ENV: "pipes-secret"})
    try:
        account = root / "account.yaml"
        account.write_text(demo_account_yaml("http://127.0.0.1:9", "pipes-client"), "utf-8")
        code, err = _run(["config", "import", str(account)], _env(running), subprocess.DEVNULL)
        assert code == 0, err
        yield running
    finally:
        running.stop()


def _env(control: ControlProcess | None = None) -> dict[str, str]:
    if control is None:
        return clean_env()
    return clean_env(SIGNAL_API=control.api, SIGNAL_DATA_DIR=str(control.data_dir))


def _run(args: Sequence[str], env: dict[str, str], stdout: int) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "stream", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=WITHIN_S,
        check=False,
    )
    return done.returncode, done.stderr.decode(errors="replace")


def into_closed_pipe(args: Sequence[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `csignal ARGS` with stdout a pipe nobody reads any more: exit code and stderr."""
    read, write = os.pipe()
    os.close(read)
    try:
        return _run(args, env, write)
    finally:
        os.close(write)


def assert_quiet(code: int, err: str, args: Sequence[str]) -> None:
    assert "Traceback" not in err, f"csignal {' '.join(args)}:\n{err}"
    assert "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert code == READER_GONE, f"csignal {' '.join(args)} exited {code}:\n{err}"


ONLINE = [
    ["sql", "SELECT 1 AS one"],
    ["sql", "SELECT * FROM range(5000)", "--max-rows", "5000", "--format", "csv"],
    ["sql", "SELECT 'a' AS x", "--format", "json"],
    ["flows"],
    ["flows", "--format", "json"],
    ["metrics"],
    ["metrics", "troubleshooting", "--format", "json"],
    ["retry", "list"],
    ["retry", "list", "--format", "json"],
    ["metrics", "--format", "csv"],
    ["flows", "--format", "csv"],
    ["replay", "complete-form", "--event", "SUMMIT26", "--dry-run"],
    ["config", "export"],
]


@pytest.mark.parametrize("args", ONLINE, ids=[" ".join(a[:3]) for a in ONLINE])
def test_online_commands_end_quietly_when_the_reader_is_gone(
    control: ControlProcess, args: list[str]
) -> None:
    code, err = into_closed_pipe(args, _env(control))
    assert_quiet(code, err, args)


OFFLINE = [
    ["config", "schema"],
    ["simulate", "--rate", "20", "--duration", "2", "--seed", "5", "--output", "-"],
    ["simulate", "--rate", "20", "--duration", "2", "--seed", "5", "--output", "/dev/stdout"],
]


@pytest.mark.parametrize("args", OFFLINE, ids=[" ".join(a[:2] + a[-1:]) for a in OFFLINE])
def test_offline_commands_end_quietly_when_the_reader_is_gone(args: list[str]) -> None:
    code, err = into_closed_pipe(args, _env())
    assert_quiet(code, err, args)


def test_a_real_head_gets_its_line_and_csignal_ends_quietly(
    control: ControlProcess, tmp_path: Path
) -> None:
    """`csignal sql … | head -1` over far more than a pipe buffers (64 KiB)."""
    args = ["sql", "SELECT range AS n FROM range(50000)", "--max-rows", "50000", "--format", "csv"]
    err_path = tmp_path / "stderr"
    with err_path.open("wb") as err:
        writer = subprocess.Popen(
            [sys.executable, "-m", "stream", *args],
            cwd=REPO,
            env=_env(control),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        assert writer.stdout is not None
        reader = subprocess.run(
            ["head", "-1"], stdin=writer.stdout, capture_output=True, timeout=WITHIN_S, check=True
        )
        writer.stdout.close()
        code = writer.wait(timeout=WITHIN_S)
    assert reader.stdout == b"n\n"
    assert_quiet(code, err_path.read_text(errors="replace"), args)


def test_a_reader_that_stays_sees_everything_and_exit_0(control: ControlProcess) -> None:
    """The quiet ending is only for a reader that left: a full read still ends 0."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream",
            "sql",
            "SELECT range AS n FROM range(3)",
            "--format",
            "csv",
        ],
        cwd=REPO,
        env=_env(control),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=WITHIN_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"n\n0\n1\n2\n"

"""`csignal sql` with a status label an attendee wrote with terminal escapes, against a real
operator API: at a terminal every format shows them escaped; into a pipe CSV keeps the data
exact and JSON parses back to it."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest

from stream.store.rows import ChangeRow
from tests.console.control_harness import TOKEN, Control, registration_template
from tests.support.clock import FIXED
from tests.support.processes import REPO, clean_env

pytestmark = [pytest.mark.timeout(120)]

LABEL = "Reg\x1b]0;PWNED1\x07\x1b[31mRED \u202eevil\u2028x\x9b2J"
SHOWN = "Reg\\x1b]0;PWNED1\\x07\\x1b[31mRED \\u202eevil\\u2028x\\x9b2J"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2028", "\r")
QUERY = (
    "SELECT payload->>'$.registration.registrationStatusLabel' AS label, "
    "chr(27) || '[2J' AS \"clear\" FROM changes WHERE change_id = 'hostile-cli'"
)


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    service = Control(tmp_path_factory.mktemp("cli-sql-terminal"), seed=False).start()
    body = registration_template()
    body["changeId"] = "hostile-cli"
    body["registration"] = {**body["registration"], "registrationStatusLabel": LABEL}
    row = ChangeRow(
        change_id="hostile-cli",
        type=body["type"],
        account_code=body["accountCode"],
        event_code=body.get("eventCode"),
        registration_code=body["registration"]["registrationCode"],
        is_test=False,
        occurred_at=FIXED - timedelta(hours=1),
        received_at=FIXED - timedelta(hours=1),
        payload=json.dumps(body),
        source="api",
    )
    assert service.store is not None
    service.call(service.store.archive_changes([row]))
    try:
        yield service
    finally:
        service.stop()


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream", "sql", QUERY, *args]


def _env(control: Control) -> dict[str, str]:
    return clean_env(SIGNAL_API=control.url, SIGNAL_API_TOKEN=TOKEN)


def at_a_terminal(control: Control, *args: str) -> str:
    """What `csignal sql QUERY ARGS` writes with its stdout on a pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        _command(*args), cwd=REPO, env=_env(control), stdout=slave, stderr=subprocess.PIPE
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError as error:  # EIO: the process closed its end
                if error.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    # The terminal's line discipline turns each line feed into CR LF.
    return b"".join(chunks).decode().replace("\r\n", "\n")


def into_a_pipe(control: Control, *args: str) -> str:
    done = subprocess.run(
        _command(*args), cwd=REPO, env=_env(control), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode("utf-8", errors="surrogateescape")


def _no_raw(text: str) -> None:
    found = [hex(ord(c)) for c in RAW if c in text]
    assert not found, f"raw control characters reach the terminal: {found}"


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_at_a_terminal_every_format_shows_the_data_escaped(control: Control, fmt: str) -> None:
    shown = at_a_terminal(control, "--format", fmt)
    _no_raw(shown)
    if fmt == "json":
        assert json.loads(shown) == [{"label": LABEL, "clear": "\x1b[2J"}]
    else:
        assert SHOWN in shown and "\\x1b[2J" in shown


def test_csv_into_a_pipe_keeps_the_data_exact(control: Control) -> None:
    out = into_a_pipe(control, "--format", "csv")
    assert list(csv.reader(io.StringIO(out))) == [["label", "clear"], [LABEL, "\x1b[2J"]]


def test_json_into_a_pipe_parses_to_the_data_with_no_raw_control(control: Control) -> None:
    out = into_a_pipe(control, "--format", "json")
    assert json.loads(out) == [{"label": LABEL, "clear": "\x1b[2J"}]
    _no_raw(out)


def test_table_into_a_pipe_is_escaped_too(control: Control) -> None:
    out = into_a_pipe(control)
    _no_raw(out)
    assert SHOWN in out

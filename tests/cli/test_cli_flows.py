"""`csignal flows` against a real operator API (store, configuration, a day of outcomes): the
list's sent and failed counts, and going LIVE confirmed by `--yes` or at a terminal, refused
(exit 2, nothing changed) without either."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator

import pytest

from apiclient.client import ApiClient
from stream.cli import main
from tests.console.control_harness import TOKEN, Control
from tests.support.processes import REPO, clean_env

TEST_FLOW = "test-registered"
TEST_NAME = "Test registrations → nurture (test)"


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    service = Control(tmp_path_factory.mktemp("cli-flows")).start()
    yield service
    service.stop()


@pytest.fixture
def env(control: Control, monkeypatch: pytest.MonkeyPatch) -> Control:
    monkeypatch.setenv("SIGNAL_API", control.url)
    monkeypatch.setenv("SIGNAL_API_TOKEN", TOKEN)
    return control


def mode_of(control: Control, flow_id: str) -> str:
    async def read() -> str:
        client = ApiClient.for_console(control.url, TOKEN)
        try:
            return (await client.flow(flow_id)).mode
        finally:
            await client.close()

    return control.call(read())


def set_mode(control: Control, flow_id: str, mode: str) -> None:
    async def write() -> None:
        client = ApiClient.for_console(control.url, TOKEN)
        try:
            await client.set_mode(flow_id, mode)
        finally:
            await client.close()

    control.call(write())


def test_list_shows_sent_and_failed_per_flow(
    env: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["flows", "--period", "24h"]) == 0
    captured = capsys.readouterr()
    header, *rows = captured.out.splitlines()
    assert header.split()[:6] == ["id", "name", "mode", "active", "sent", "failed"]
    sent_at, failed_at = header.index("sent"), header.index("failed")
    by_id = {row.split()[0]: row for row in rows}
    # the harness seeds 12, 18 and 24 outcomes in the last 10 h; every fifth one failed
    for flow_id, sent, failed in (
        ("registered-to-nurture", 9, 3),
        ("attended-follow-up", 14, 4),
        ("complete-form", 19, 5),
        (TEST_FLOW, 0, 0),
    ):
        row = by_id[flow_id]
        assert row[sent_at:failed_at].split() == [str(sent)], row
        assert row[failed_at:].split()[0] == str(failed), row
    assert "sent/failed: the last 24h" in captured.err
    assert main(["flows", "--period", "24h", "--format", "json"]) == 0
    listed = {f["id"]: f for f in json.loads(capsys.readouterr().out)}
    assert listed["attended-follow-up"]["figures"] == {
        "period": "24h",
        "delivered": 14,
        "failed": 4,
        "not_activated": 0,
    }


def test_list_with_a_period_control_refuses_says_so(
    env: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["flows", "--period", "fortnight"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("csignal flows:") and "period" in err


def test_going_live_without_a_terminal_needs_yes(
    env: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not sys.stdin.isatty()
    assert main(["flows", "mode", TEST_FLOW, "live"]) == 2
    err = capsys.readouterr().err
    assert "add --yes to confirm" in err and "Nothing changed" in err
    assert mode_of(env, TEST_FLOW) == "test"
    assert main(["flows", "mode", TEST_FLOW, "test"]) == 0  # back to TEST needs nothing
    capsys.readouterr()
    assert main(["flows", "mode", TEST_FLOW, "live", "--yes"]) == 0
    assert f"{TEST_FLOW}: active, live" in capsys.readouterr().out
    assert mode_of(env, TEST_FLOW) == "live"
    set_mode(env, TEST_FLOW, "test")


class Terminal:
    """`csignal ARGS` with its stdin on a pseudo-terminal, stdout and stderr on pipes."""

    def __init__(self, control: Control, *args: str) -> None:
        self.master, slave = pty.openpty()
        env = clean_env(SIGNAL_API=control.url, SIGNAL_API_TOKEN=TOKEN)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream", *args],
            cwd=REPO,
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(slave)

    def answer(self, text: str) -> tuple[int, str, str]:
        os.write(self.master, text.encode() + b"\n")
        try:
            out, err = self.proc.communicate(timeout=60)
        finally:
            os.close(self.master)
        return self.proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("typed", "code", "mode"),
    [
        ("test registrations -> NURTURE (test)", 0, "live"),
        (TEST_FLOW, 0, "live"),
        (TEST_NAME, 0, "live"),
        ("test registrations", 2, "test"),
        ("", 2, "test"),
    ],
)
def test_going_live_at_a_terminal_asks_for_the_id_or_name(
    control: Control, typed: str, code: int, mode: str
) -> None:
    set_mode(control, TEST_FLOW, "test")
    terminal = Terminal(control, "flows", "mode", TEST_FLOW, "live")
    returned, out, err = terminal.answer(typed)  # the terminal holds the line until it is read
    assert "Switch 'Test registrations → nurture (test)' (test-registered) to LIVE?" in err
    assert "Type the flow id 'test-registered' or its name" in err
    assert returned == code, err
    assert mode_of(control, TEST_FLOW) == mode
    if code:
        assert "not confirmed:" in err and "Nothing changed" in err and out == ""
        assert ("nothing was typed" if not typed else repr(typed)) in err
    else:
        assert out.strip() == f"{TEST_FLOW}: active, live"
    set_mode(control, TEST_FLOW, "test")

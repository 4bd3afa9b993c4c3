"""`csignal run` when things go wrong: a crash-looping service, an unusable broker, a taken port."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
from pathlib import Path

import pytest

from apiclient.client import ApiClient
from apiclient.errors import ApiError
from stream.broker import EmbeddedBroker, free_port
from stream.run_supervisor import Supervisor
from stream.runner import Runner, RunOptions
from tests.support.processes import processes_for
from tests.support.waiting import until

pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(path))
    monkeypatch.setenv("SIGNAL_API", f"127.0.0.1:{free_port()}")
    monkeypatch.delenv("SIGNAL_BROKER", raising=False)
    return path


def _run(options: RunOptions) -> tuple[int, str]:
    out = io.StringIO()
    options.out = out
    code = asyncio.run(Runner(options).run())
    return code, out.getvalue()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_crash_loop_stops_the_run_with_the_reason(data_dir: Path) -> None:
    (data_dir / "signal.duckdb").mkdir(parents=True)  # control cannot open its database
    code, out = _run(
        RunOptions(headless=True, data_dir=data_dir, restart_backoff_s=0.05, crash_limit=3)
    )
    assert code == 1
    assert "control exited 3 times within" in out
    assert out.count("restarting control in") == 2
    assert "Is a directory" in out  # the end of the child's log is shown
    assert (data_dir / "logs" / "control.log").exists()
    assert processes_for(data_dir) == []


def test_unusable_broker_is_named(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL_BROKER", f"127.0.0.1:{free_port()}")
    code, out = _run(RunOptions(headless=True, data_dir=data_dir))
    assert code == 1
    assert "cannot be used" in out and "check SIGNAL_BROKER" in out
    assert processes_for(data_dir) == []


def test_taken_api_port_is_named(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        monkeypatch.setenv("SIGNAL_API", address)
        code, out = _run(RunOptions(headless=True, data_dir=data_dir))
    assert code == 1
    assert f"something already listens on {address}" in out
    assert processes_for(data_dir) == []


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_bad_config_file_is_refused_with_its_problems(data_dir: Path, tmp_path: Path) -> None:
    from simulators.certain.demo_account import demo_account_yaml

    bad = tmp_path / "bad.yaml"
    text = demo_account_yaml("http://127.0.0.1:9").replace("mapping: form-fields", "mapping: x")
    bad.write_text(text, encoding="utf-8")
    code, out = _run(RunOptions(headless=True, data_dir=data_dir, config_file=bad))
    assert code == 1
    assert f"{bad} was not imported:" in out
    assert "\n  flows[4].destination.mapping: unknown mapping 'x'" in out
    assert processes_for(data_dir) == []


async def _start_runner(runner: Runner, out: io.StringIO) -> asyncio.Task[int]:
    task = asyncio.create_task(runner.run())

    def ended() -> str | None:
        return f"the run ended:\n{out.getvalue()}" if task.done() else None

    async def started() -> bool:
        return "control pid" in out.getvalue()

    await until(started, "control started by the run", alive=ended)
    return task


async def _healed(out: io.StringIO, times: int, task: asyncio.Task[int]) -> None:
    async def healed() -> bool:
        return out.getvalue().count("healed: new embedded broker") >= times

    def ended() -> str | None:
        return f"the run ended:\n{out.getvalue()}" if task.done() else None

    await until(healed, f"heal number {times}", within=90, alive=ended)


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_embedded_broker_exit_heals_the_run(data_dir: Path) -> None:
    out = io.StringIO()
    runner = Runner(RunOptions(headless=True, data_dir=data_dir, out=out))
    task = await _start_runner(runner, out)
    try:
        first = runner.broker
        assert first is not None and first.pid is not None
        old_children = [child.pid for child in runner.children]
        port = first.port
        os.kill(first.pid, signal.SIGKILL)
        await _healed(out, 1, task)
        healed = runner.broker
        assert healed is not None and healed is not first and healed.running
        assert healed.port == port  # the children's bootstrap address is still right
        assert all(child.running for child in runner.children), out.getvalue()
        assert [child.pid for child in runner.children] != old_children
        assert f"broker pid {healed.pid}" in out.getvalue()
        assert runner.broker_restarts == 1
        client = ApiClient(runner.settings.api_url, settings=runner.settings)
        try:

            async def answers() -> bool:
                try:
                    return (await client.healthz()).get("ok", True) is not False
                except ApiError:
                    return False

            await until(answers, "the API after the heal", within=90, every=0.2)
            assert "broker restarts 1" in await runner.status_line(client)
        finally:
            await client.close()
    finally:
        runner.stop_event.set()
        code = await asyncio.wait_for(task, 60)
    assert code == 0, out.getvalue()
    assert processes_for(data_dir) == []


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_a_broker_that_keeps_dying_stops_the_run(data_dir: Path) -> None:
    out = io.StringIO()
    options = RunOptions(
        headless=True, data_dir=data_dir, out=out, restart_backoff_s=0.05, crash_limit=2
    )
    runner = Runner(options)
    task = await _start_runner(runner, out)
    assert runner.broker is not None and runner.broker.pid is not None
    os.kill(runner.broker.pid, signal.SIGKILL)
    await _healed(out, 1, task)
    assert runner.broker is not None and runner.broker.pid is not None
    os.kill(runner.broker.pid, signal.SIGKILL)
    code = await asyncio.wait_for(task, 60)
    assert code == 1
    assert "the embedded broker exited 2 times within" in out.getvalue()
    assert processes_for(data_dir) == []


def _environ(pid: int | None) -> dict[str, str]:
    assert pid is not None
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_a_full_embedded_broker_is_rolled_over_cleanly(data_dir: Path) -> None:
    """Past `SIGNAL_EMBEDDED_BROKER_MAX_MB` the run stops control and the pipeline cleanly,
    then the broker, and starts all three again on a new, empty broker on the same port. Each
    start after a broker start tells control so (`SIGNAL_FRESH_BROKER`); a child restarted
    alone under a broker that lived on is not told."""
    out = io.StringIO()
    runner = Runner(RunOptions(headless=True, data_dir=data_dir, out=out))
    assert runner.supervisor.broker_max_bytes == 512 * 1024 * 1024, "the default"
    task = await _start_runner(runner, out)
    client = ApiClient(runner.settings.api_url, settings=runner.settings)

    async def answers() -> bool:
        try:
            return (await client.healthz()).get("ok", True) is not False
        except ApiError:
            return False

    try:
        first = runner.broker
        assert first is not None
        control = runner.children[0]
        assert _environ(control.pid).get("SIGNAL_FRESH_BROKER") == "1", "the run's own broker"
        # Up and running (a process still starting dies of the SIGTERM, not a clean stop).
        await until(answers, "the API", within=90, every=0.2)
        old = [child.process for child in runner.children]
        supervisor = runner.supervisor
        supervisor.rollover_check_s, supervisor.rollover_min_interval_s = 0.1, 0.0
        supervisor.broker_max_bytes = 1  # the broker holds more than that already

        def ended() -> str | None:
            return f"the run ended:\n{out.getvalue()}" if task.done() else None

        async def rolled() -> bool:
            return "rolled over: new embedded broker" in out.getvalue()

        await until(rolled, "a rollover", within=90, alive=ended)
        supervisor.broker_max_bytes = 0
        text = out.getvalue()
        assert "SIGNAL_EMBEDDED_BROKER_MAX_MB=0: rolling it over" in text, text
        assert "exited" not in text, "a rollover is not a crash"
        new = runner.broker
        assert new is not None and new is not first and new.running and not first.running
        assert new.port == first.port
        assert all(p is not None and p.returncode == 0 for p in old), [
            p.returncode for p in old if p is not None
        ]
        assert all(child.running for child in runner.children), text
        assert _environ(control.pid).get("SIGNAL_FRESH_BROKER") == "1"
        assert runner.supervisor.broker_rollovers == 1 and runner.broker_restarts == 0

        before = control.pid
        assert before is not None
        os.kill(before, signal.SIGKILL)

        async def restarted() -> bool:
            return control.pid != before and control.running

        await until(restarted, "control restarted alone", within=90, alive=ended)
        assert "SIGNAL_FRESH_BROKER" not in _environ(control.pid), "the broker lived on"
        await until(answers, "the API after the rollover", within=90, every=0.2)
        assert "broker rollovers 1" in await runner.status_line(client)
    finally:
        await client.close()
        runner.stop_event.set()
        code = await asyncio.wait_for(task, 60)
    assert code == 0, out.getvalue()
    assert processes_for(data_dir) == []


def test_a_rollover_asked_on_a_cluster_is_refused_with_the_reason(tmp_path: Path) -> None:
    """SIGUSR1 with `SIGNAL_BROKER` naming a cluster: nothing of ours to roll over, so the
    run says so and nothing is set off; with an embedded broker the watcher takes it up."""
    said: list[str] = []
    supervisor = Supervisor(tmp_path, {}, asyncio.Event(), said.append, said.append)
    supervisor.ask_rollover()
    assert said == ["SIGUSR1: no embedded broker to roll over (SIGNAL_BROKER names a cluster)"]
    assert not supervisor._rollover_asked
    supervisor.broker = EmbeddedBroker()  # not started: only its presence counts here
    supervisor.ask_rollover()
    assert said[-1] == "SIGUSR1: the embedded broker is rolled over at once"
    assert supervisor._rollover_asked

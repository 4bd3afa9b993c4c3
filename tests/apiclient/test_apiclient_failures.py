"""Failures read as what to do, the same for the CLI's and the console's client: no token (and
control down, the likelier story), a token file that cannot be used, control that takes the
connection but never answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from apiclient.client import ApiClient
from apiclient.errors import ControlTimeout, ControlUnreachable, TokenMissing, TokenUnreadable
from stream.broker import free_port
from tests.console.control_harness import Control
from tests.support.processes import clean_env, run_csignal


@pytest.fixture
def no_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data dir and no token in the environment."""
    for name in ("SIGNAL_API_TOKEN", "SIGNAL_API_TOKEN_FILE", "SIGNAL_API_READ_ONLY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "no-token"
    data_dir.mkdir()
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(data_dir))
    return data_dir


@pytest.mark.parametrize("console", [False, True], ids=["cli", "console"])
async def test_no_token_names_the_file_when_control_is_up(
    control: Control, no_token: Path, console: bool
) -> None:
    client = ApiClient.for_console(control.url) if console else ApiClient(control.url)
    async with client:
        with pytest.raises(TokenMissing) as caught:
            await client.flows()
    assert str(caught.value).startswith(
        f"no API token: {no_token / 'api-token'} does not exist and SIGNAL_API_TOKEN is not set"
    )


async def test_no_read_only_token_names_its_file_and_variable(
    control: Control, no_token: Path
) -> None:
    async with ApiClient.for_console(control.url, read_only=True) as client:
        with pytest.raises(TokenMissing) as caught:
            await client.flows()
    assert str(caught.value).startswith(
        f"no API token: {no_token / 'api-token-read-only'} does not exist and "
        "SIGNAL_API_READ_ONLY_TOKEN is not set"
    )


@pytest.mark.parametrize("console", [False, True], ids=["cli", "console"])
async def test_no_token_and_no_control_says_control_is_not_reachable(
    no_token: Path, console: bool
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = ApiClient.for_console(url) if console else ApiClient(url)
    async with client:
        with pytest.raises(ControlUnreachable) as caught:
            await client.flows()
    assert caught.value.message == (
        f"control is not reachable at {url} — is `csignal control` (or `csignal run`) running?"
    )


async def test_a_token_file_that_is_not_utf8_stops_the_call_naming_the_file(
    control: Control, no_token: Path
) -> None:
    (no_token / "api-token").write_bytes(b"\xff\xfetoken")
    async with ApiClient.for_console(control.url) as client:
        with pytest.raises(TokenUnreadable, match="not UTF-8 text"):
            await client.flows()


async def test_a_control_that_never_answers_is_reported_with_the_wait(tmp_path: Path) -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # never answers; returns when the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ApiClient(f"http://127.0.0.1:{port}", "token", timeout=0.5) as client:
            with pytest.raises(ControlTimeout) as caught:
                await client.flows()
    finally:
        server.close()
        await server.wait_closed()
    assert accepted.is_set()
    assert isinstance(caught.value, ControlUnreachable)
    assert caught.value.message == f"control at http://127.0.0.1:{port} did not answer within 0.5 s"


async def test_the_cli_names_a_token_file_that_is_not_utf8(
    control: Control, tmp_path: Path
) -> None:
    bad = tmp_path / "latin1-token"
    bad.write_bytes(b"caf\xe9\n")
    env = clean_env(SIGNAL_API=control.url, SIGNAL_API_TOKEN_FILE=str(bad))
    code, _out, err = await run_csignal("sql", "SELECT 1", env=env)
    assert code == 1, err
    assert f"csignal sql: cannot read the API token from {bad}: not UTF-8 text" in err
    assert "Traceback" not in err


async def test_a_read_only_console_with_an_unreadable_token_file_does_not_start(
    tmp_path: Path,
) -> None:
    (tmp_path / "api-token-read-only").write_bytes(b"\xe9")
    env = clean_env(SIGNAL_DATA_DIR=str(tmp_path))
    code, _out, err = await run_csignal("console", "--read-only", env=env)
    assert code == 2, err
    assert f"cannot read the API token from {tmp_path / 'api-token-read-only'}" in err
    assert "Traceback" not in err

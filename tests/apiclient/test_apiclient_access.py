"""Where the client finds the API, its token and its actor (apiclient.access), with real files
and environment: the operator token, the token file, the read-only token that never falls back
to the operator's, and token files that cannot be used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apiclient.access import (
    api_base_url,
    cli_actor,
    console_actor,
    read_token,
    token_file,
)
from apiclient.client import ApiClient
from apiclient.errors import TokenUnreadable


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir of its own; no token or actor from the calling environment."""
    for name in (
        "SIGNAL_API",
        "SIGNAL_API_TOKEN",
        "SIGNAL_API_TOKEN_FILE",
        "SIGNAL_API_READ_ONLY_TOKEN",
        "SIGNAL_ACTOR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(tmp_path))
    return tmp_path


def test_base_url_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNAL_API", "127.0.0.1:7000")
    assert api_base_url(None) == "http://127.0.0.1:7000"
    assert api_base_url("http://10.0.0.1:6066/") == "http://10.0.0.1:6066"
    assert api_base_url("127.0.0.1:6066") == "http://127.0.0.1:6066"
    assert api_base_url("http://localhost:7000/") == "http://localhost:7000"
    assert ApiClient().base_url == "http://127.0.0.1:7000"
    assert "token" not in repr(ApiClient.for_console("http://x", "secret-token"))


def test_the_operator_token_comes_from_the_environment_then_the_named_file_then_the_data_dir(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert read_token() is None
    (data_dir / "api-token").write_text("from-data-dir\n", encoding="utf-8")
    assert read_token() == "from-data-dir"
    named = data_dir / "elsewhere"
    named.write_text("  from-named-file  \n", encoding="utf-8")
    monkeypatch.setenv("SIGNAL_API_TOKEN_FILE", str(named))
    assert token_file() == named
    assert read_token() == "from-named-file"
    monkeypatch.setenv("SIGNAL_API_TOKEN", "from-env")
    assert read_token() == "from-env"


def test_the_read_only_token_never_falls_back_to_the_operators(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data_dir / "api-token").write_text("operator", encoding="utf-8")
    monkeypatch.setenv("SIGNAL_API_TOKEN", "operator-env")
    assert read_token(read_only=True) is None
    assert token_file(read_only=True) == data_dir / "api-token-read-only"
    (data_dir / "api-token-read-only").write_text("viewer\n", encoding="utf-8")
    assert read_token(read_only=True) == "viewer"
    monkeypatch.setenv("SIGNAL_API_READ_ONLY_TOKEN", "viewer-env")
    assert read_token(read_only=True) == "viewer-env"


def test_an_empty_token_file_is_no_token(data_dir: Path) -> None:
    (data_dir / "api-token").write_text(" \n", encoding="utf-8")
    assert read_token() is None


def test_a_token_file_that_is_not_utf8_is_an_error_naming_it(data_dir: Path) -> None:
    path = data_dir / "api-token"
    path.write_bytes(b"caf\xe9-token\n")
    with pytest.raises(TokenUnreadable) as caught:
        read_token()
    assert caught.value.path == path
    assert f"cannot read the API token from {path}: not UTF-8 text" in caught.value.message
    assert "0xe9 at 3" in caught.value.message


def test_a_token_path_that_cannot_be_read_is_an_error_naming_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNAL_API_TOKEN_FILE", str(data_dir))  # a directory, not a file
    with pytest.raises(TokenUnreadable, match=f"cannot read the API token from {data_dir}: "):
        read_token()


def test_the_cli_and_the_console_name_their_actor(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "ana")
    assert cli_actor() == "ana"
    assert console_actor() == "console:ana"
    assert ApiClient.for_console("http://x").actor == "console:ana"
    monkeypatch.setenv("SIGNAL_ACTOR", "ops:night-shift")
    assert ApiClient("http://x").actor == "ops:night-shift"
    assert console_actor() == "console:ana", "the console's actor is its login, as documented"
    monkeypatch.setenv("SIGNAL_ACTOR", "x" * 300)
    assert len(cli_actor()) == 100


def test_the_client_never_imports_textual_stream_or_console() -> None:
    check = (
        "import sys, apiclient.client, apiclient.access, apiclient.errors, apiclient.rows\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'stream', 'console'))\n"
        "assert not bad, bad\n"
        "import console.app\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'stream')\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)

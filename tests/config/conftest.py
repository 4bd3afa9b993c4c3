"""Shared fixtures for the account-configuration tests: the reference example and its secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.models import Account
from tests.config.config_helpers import LOCAL_EXAMPLE, SECRET, SECRET_VAR


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SECRET_VAR, SECRET)
    monkeypatch.setenv("SIGNAL_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def example_raw() -> dict[str, Any]:
    """The reference example as plain data, with the secret already resolved."""
    raw: dict[str, Any] = yaml.safe_load(LOCAL_EXAMPLE.read_text(encoding="utf-8"))
    raw["connections"][0]["client_secret"] = SECRET
    raw["connections"][0]["client_secret_ref"] = SECRET_VAR
    return raw


@pytest.fixture
def example(example_raw: dict[str, Any]) -> Account:
    return Account.model_validate(example_raw)

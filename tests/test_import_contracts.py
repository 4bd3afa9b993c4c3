"""The import contracts (`[tool.importlinter]` in pyproject.toml, run by `just lint`) bite.

lint-imports runs on a copy of config/, stream/, console/ and pyproject.toml: the copy as it is
passes, and one injected import per contract breaks exactly that contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "stream", "console")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS = {c["id"]: c for c in PYPROJECT["tool"]["importlinter"]["contracts"]}

# contract id -> (module file to append to, injected import, chain lint-imports reports)
VIOLATIONS = {
    "config-standalone": (
        "config/completeness.py",
        "import stream.messages",
        "config.completeness -> stream.messages",
    ),
    "console-no-stream": (
        "console/fmt.py",
        "import stream.apiclient",
        "console.fmt -> stream.apiclient",
    ),
    "pure-core": (
        "stream/core/tags.py",
        "import duckdb",
        "stream.core.tags -> duckdb",
    ),
    "marketo-client-no-sandbox": (
        "stream/marketo/client.py",
        "import stream.marketo.sandbox_state",
        "stream.marketo.client -> stream.marketo.sandbox_state",
    ),
}

LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command;"
    " sys.exit(lint_imports_command())"
)


def _copy_tree(dest: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports puts its working directory first on sys.path, so the copy is what it reads.
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _verdicts(output: str) -> dict[str, str]:
    verdicts = {}
    for contract in CONTRACTS.values():
        lines = [line for line in output.splitlines() if line.startswith(contract["name"] + " ")]
        assert len(lines) == 1, (contract["name"], output)
        verdicts[contract["id"]] = lines[0].rsplit(" ", 1)[1]
    return verdicts


def test_every_contract_has_an_injected_violation() -> None:
    assert set(CONTRACTS) == set(VIOLATIONS)
    assert all(c["type"] == "forbidden" for c in CONTRACTS.values())


def test_every_marketo_module_is_client_or_sandbox() -> None:
    """Module expressions have no `sandbox_*`, so the contract lists both sides by name."""
    contract = CONTRACTS["marketo-client-no-sandbox"]
    client, sandbox = set(contract["source_modules"]), set(contract["forbidden_modules"])
    modules = {
        "stream.marketo" + ("" if p.stem == "__init__" else "." + p.stem)
        for p in (ROOT / "stream" / "marketo").glob("*.py")
    }
    assert client | sandbox == modules
    assert client.isdisjoint(sandbox)
    assert all(m.split(".")[-1].startswith("sandbox") for m in sandbox)
    assert not any(m.split(".")[-1].startswith("sandbox") for m in client)


def test_unmodified_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint_imports(_copy_tree(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert set(_verdicts(output).values()) == {"KEPT"}


@pytest.mark.parametrize("contract_id", sorted(VIOLATIONS))
def test_injected_violation_breaks_its_contract(tmp_path: Path, contract_id: str) -> None:
    path, statement, chain = VIOLATIONS[contract_id]
    tree = _copy_tree(tmp_path)
    with (tree / path).open("a", encoding="utf-8") as module:
        module.write(f"\n{statement}  # injected by {__name__}\n")

    result = _lint_imports(tree)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    verdicts = _verdicts(output)
    assert verdicts.pop(contract_id) == "BROKEN", output
    assert set(verdicts.values()) == {"KEPT"}, output
    assert chain in output, output

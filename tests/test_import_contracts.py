"""The import contracts (`[tool.importlinter]` in pyproject.toml, run by `just lint`) bite.

lint-imports runs on a copy of config/, apiclient/, stream/, console/, simulators/ and
pyproject.toml: the copy as it is passes, and one injected import per contract breaks exactly that
contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "apiclient", "stream", "console", "simulators")
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
        "import stream.topics",
        "console.fmt -> stream.topics",
    ),
    "apiclient-standalone": (
        "apiclient/rows.py",
        "import textual",
        "apiclient.rows -> textual",
    ),
    "pure-core": (
        "stream/core/tags.py",
        "import duckdb",
        "stream.core.tags -> duckdb",
    ),
    "production-no-simulators": (
        "stream/marketo/client.py",
        "import simulators.marketo.state",
        "stream.marketo.client -> simulators.marketo.state",
    ),
}

# The modules that run a simulator (`csignal sandbox`, `certain-sandbox`, `simulate`, `run --demo`):
# the only production modules the contract lets import `simulators`.
SIMULATOR_RUNNERS = {
    "stream.commands.certain_sandbox",
    "stream.commands.sandbox",
    "stream.commands.simulate",
    "stream.demo_certain",
    "stream.run_demo",
}

# Further imports of the simulators from production code, each breaking only that contract: from
# another package, and from a runner importing a simulator module it is not listed for.
SIMULATOR_VIOLATIONS = {
    "console": (
        "console/fmt.py",
        "import simulators.marketo.sandbox",
        "console.fmt -> simulators.marketo.sandbox",
    ),
    "config": (
        "config/completeness.py",
        "import simulators.marketo.schema",
        "config.completeness -> simulators.marketo.schema",
    ),
    "runner-unlisted": (
        "stream/commands/sandbox.py",
        "import simulators.certain.traffic",
        "stream.commands.sandbox -> simulators.certain.traffic",
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
        prefix = contract["name"] + " "
        lines = [line for line in output.splitlines() if line.startswith(prefix)]
        assert len(lines) == 1, (contract["name"], output)
        # "KEPT", "BROKEN", or "KEPT (7 ignored imports)" for a contract with exceptions.
        verdicts[contract["id"]] = lines[0][len(prefix) :].split()[0]
    return verdicts


def test_every_contract_has_an_injected_violation() -> None:
    assert set(CONTRACTS) == set(VIOLATIONS)
    assert all(c["type"] == "forbidden" for c in CONTRACTS.values())


def test_only_the_simulator_runners_may_import_the_simulators() -> None:
    """Every production package is a source; the exceptions are named pairs, runners only."""
    contract = CONTRACTS["production-no-simulators"]
    assert set(contract["source_modules"]) == set(PACKAGES) - {"simulators"}
    assert contract["forbidden_modules"] == ["simulators"]
    pairs = [line.split(" -> ") for line in contract["ignore_imports"]]
    assert all(len(pair) == 2 for pair in pairs), contract["ignore_imports"]
    assert {importer for importer, _ in pairs} == SIMULATOR_RUNNERS
    assert all(imported.startswith("simulators.") for _, imported in pairs)
    assert not any("*" in line for line in contract["ignore_imports"])


def test_unmodified_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint_imports(_copy_tree(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert set(_verdicts(output).values()) == {"KEPT"}


def _assert_breaks_only(tmp_path: Path, contract_id: str, violation: tuple[str, str, str]) -> None:
    path, statement, chain = violation
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


@pytest.mark.parametrize("contract_id", sorted(VIOLATIONS))
def test_injected_violation_breaks_its_contract(tmp_path: Path, contract_id: str) -> None:
    _assert_breaks_only(tmp_path, contract_id, VIOLATIONS[contract_id])


@pytest.mark.parametrize("case", sorted(SIMULATOR_VIOLATIONS))
def test_production_import_of_a_simulator_breaks_the_contract(tmp_path: Path, case: str) -> None:
    _assert_breaks_only(tmp_path, "production-no-simulators", SIMULATOR_VIOLATIONS[case])

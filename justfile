# Every recipe brings .venv up to date with uv first (never downloading a Python build).
set shell := ["bash", "-euo", "pipefail", "-c"]

export UV_PYTHON_DOWNLOADS := "never"
export UV_PYTHON := env_var_or_default("UV_PYTHON", "python3")

# List the recipes.
default:
    @just --list

# Create or refresh .venv from uv.lock.
sync:
    uv sync --frozen --quiet

# Run Signal on the embedded defaults (broker, control, pipeline; demo account and traffic).
run *ARGS: sync
    uv run --frozen csignal run --demo {{ARGS}}

# Run the whole test suite on every core (pytest-xdist: two workers per core and one more, as most
# tests wait on processes and sockets — on 2 cores 5 workers ran the suite in 525 s where 3 took
# 705 s, with the same CPU time); SIGNAL_TEST_WORKERS overrides. A run that collects no test fails.
# `just test -n 0 tests/x.py` runs one file serially.
[doc("Run the whole test suite on every core (`just test -n 0 tests/x.py`: one file serially).")]
test *ARGS: sync
    #!/usr/bin/env bash
    set -uo pipefail
    # On a shifted date (faketime, see the README) every Python process sleeps with select().
    if [ -n "${FAKETIME:-}" ]; then export PYTHONPATH="$PWD/tests/faketime${PYTHONPATH:+:$PYTHONPATH}"; fi
    # Every process of the run (pytest's workers, Signal's services, csignal) reads compiled
    # modules from one cache outside the work tree instead of compiling each import again: about
    # a second of CPU per process where PYTHONDONTWRITEBYTECODE is set (container images).
    unset PYTHONDONTWRITEBYTECODE
    export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$PWD/.venv/pycache}"
    # --no-loadscope-reorder: xdist would otherwise hand out modules by test count (most first),
    # undoing tests/conftest.py's order and leaving the one-test end-to-end modules for last.
    # --durations: the slowest tests are named at the end of every run, where the suite's time goes.
    uv run --frozen pytest -n "${SIGNAL_TEST_WORKERS:-$(( 2 * $(nproc) + 1 ))}" --dist loadscope \
        --no-loadscope-reorder --durations=20 --durations-min=5 {{ARGS}}
    rc=$?
    if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
    exit "$rc"

# The inner loop: everything but the end-to-end tests, the bench smoke runs and the slow modules;
# property-based tests draw a quarter of their examples (tests/support/examples.py;
# SIGNAL_TEST_EXAMPLES=full keeps them all).
[doc("The inner loop: the suite without the end-to-end tests, bench smoke runs and slow modules.")]
test-fast *ARGS:
    SIGNAL_TEST_EXAMPLES="${SIGNAL_TEST_EXAMPLES:-fast}" just test -m "'not e2e and not bench and not slow'" {{ARGS}}

# ruff (lint + format check), mypy and the import contracts (lint-imports; pyproject.toml).
lint: sync
    uv run --frozen ruff check .
    uv run --frozen ruff format --check .
    uv run --frozen mypy
    uv run --frozen lint-imports --no-logo

# Format the code.
fmt: sync
    uv run --frozen ruff format .
    uv run --frozen ruff check --fix .

# Benchmarks; they print figures and write bench/report.txt.
bench *ARGS: sync
    uv run --frozen python -m bench {{ARGS}}

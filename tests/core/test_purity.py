"""The core stays pure: importing it pulls in no runtime framework (DESIGN 3)."""

from __future__ import annotations

import json
import subprocess
import sys

MODULES = [
    "stream.core",
    "stream.core.catalog",
    "stream.core.tags",
    "stream.core.context",
    "stream.core.matching",
    "stream.core.mapping",
    "stream.core.campaign",
    "stream.core.results",
    "stream.core.evaluate",
    "stream.certain.events",
    "stream.certain.parsing",
    "stream.certain.schema",
]
FORBIDDEN = ("faust", "aiohttp", "duckdb", "textual", "aiokafka", "mode")


def test_core_imports_no_runtime_framework() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(result.stdout)
    offenders = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert "stream.core.evaluate" in loaded

"""Private data at rest (issue 11, item 6; DESIGN 4.3): the data dir is 0700 and every file in
it 0600, whatever the umask Signal is started with. A real `csignal control` started under umask
0o022 over a data dir an older version left readable; `csignal run` in tests/e2e."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from stream.broker import EmbeddedBroker
from stream.private_files import secure_data_dir
from tests.support.changes import registration_json
from tests.support.processes import start_control, until_running

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def loose_umask(mask: int = 0o022) -> Iterator[None]:
    """This process (and what it starts meanwhile) creates files 0644, directories 0755."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(data_dir: Path) -> dict[str, str]:
    """Every entry under `data_dir` (itself as '.') → its permission bits, links left out."""
    found = {".": f"{stat.S_IMODE(data_dir.stat().st_mode):04o}"}
    for root, dirs, files in os.walk(data_dir):
        for name in [*dirs, *files]:
            path = Path(root) / name
            info = path.lstat()
            if not stat.S_ISLNK(info.st_mode):
                found[str(path.relative_to(data_dir))] = f"{stat.S_IMODE(info.st_mode):04o}"
    return found


def open_to_others(data_dir: Path) -> dict[str, str]:
    """The entries group or others may use: directories other than 0700, files other than
    0600 (an empty dict is the rule kept)."""
    wrong = {}
    for name, mode in modes(data_dir).items():
        path = data_dir / name
        wanted = "0700" if path.is_dir() else "0600"
        if mode != wanted:
            wrong[name] = mode
    return wrong


def test_secure_data_dir_narrows_what_others_could_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    data_dir = tmp_path / "var"
    with loose_umask():
        outside.write_text("not ours to change")
        (data_dir / "logs").mkdir(parents=True)
        (data_dir / "signal.duckdb").write_bytes(b"db")
        (data_dir / "logs" / "control.log").write_text("log")
        (data_dir / "backup.yaml").write_text("account")
        (data_dir / "tool.sh").write_text("#!/bin/sh\n")
        (data_dir / "tool.sh").chmod(0o755)
        (data_dir / "link").symlink_to(outside)
    (data_dir / "api-token").write_text("t")
    (data_dir / "api-token").chmod(0o400)

    tightened = secure_data_dir(data_dir)

    assert sorted(tightened) == [
        ". 0755",
        "backup.yaml 0644",
        "logs 0755",
        "logs/control.log 0644",
        "signal.duckdb 0644",
        "tool.sh 0755",
    ]
    assert modes(data_dir) == {
        ".": "0700",
        "api-token": "0400",  # owner-only already: never widened
        "backup.yaml": "0600",
        "logs": "0700",
        "logs/control.log": "0600",
        "signal.duckdb": "0600",
        "tool.sh": "0600",
    }
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link's target is not touched
    assert secure_data_dir(data_dir) == []


def test_a_missing_data_dir_is_created_owner_only(tmp_path: Path) -> None:
    with loose_umask():
        secure_data_dir(tmp_path / "a" / "var")
    assert modes(tmp_path / "a" / "var") == {".": "0700"}


async def test_control_keeps_its_data_dir_private_under_a_loose_umask(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    data_dir = tmp_path / "var"
    with loose_umask():
        (data_dir / "exports").mkdir(parents=True)
        (data_dir / "exports" / "account-backup.yaml").write_text("flows: []\n")
        (data_dir / "logs").mkdir()
        (data_dir / "logs" / "old.log").write_text("registrant ana@example.com\n")
        control = start_control(broker, data_dir)
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{control.url}/api/v1/changes",
                json=[registration_json("private-1")],
                headers=control.auth(),
            )
            assert response.status == 202, await response.text()

            async def archived() -> bool:
                rows = await control.sql(session, "SELECT count(*) FROM changes")
                return rows == [[1]]

            await until_running(archived, "the change in the ledger", control)
        present = modes(data_dir)
        assert {"signal.duckdb", "api-token", "logs/old.log", "exports"} <= set(present)
        assert open_to_others(data_dir) == {}, present
        log = control.log()
        assert "made owner-only" in log
        for name in (". 0755", "exports 0755", "exports/account-backup.yaml 0644", "logs/old.log"):
            assert name in log, log
    finally:
        await asyncio.to_thread(control.stop)
    assert open_to_others(data_dir) == {}, modes(data_dir)

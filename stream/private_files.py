"""Private data at rest (DESIGN 4.3): the data dir is 0700 and every file in it 0600.

The data dir holds registrants' names, emails and phones (the DuckDB ledger and its WAL, the
logs), the API token, stored secrets and the account. Two measures keep it to its owner,
whatever the umask Signal was started with:

- every Signal process runs with umask 0o077 (`restrict_umask`, first thing `csignal` does), so
  what it creates — DuckDB's files, logs, token, backups, exports — and what its children create
  is owner-only from the start;
- the services that own a data dir create it 0700 and, at each start, take group and other
  permissions off whatever already is in it (`secure_data_dir`, e.g. files an older version or
  a loose umask left 0644) and log what they tightened.

Permissions are only ever narrowed, never widened; symbolic links are not followed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
_OPEN_TO_OTHERS = 0o077

log = logging.getLogger("signal.files")


def restrict_umask() -> int:
    """Make everything this process (and its children) creates owner-only; returns the umask
    it replaces."""
    return os.umask(PRIVATE_UMASK)


def secure_data_dir(data_dir: Path, logger: logging.Logger | None = log) -> list[str]:
    """Create `data_dir` (0700) when missing, then narrow the directory itself and everything
    under it that others may read: directories to 0700, files to 0600 (an owner-only file keeps
    its mode). Returns the tightened paths with their old modes ("logs/control.log 0644"), which
    are also logged to `logger` (None: the caller reports them)."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tightened: list[str] = []
    _tighten(data_dir, data_dir, tightened)
    for root, dirs, files in os.walk(data_dir, followlinks=False):
        for name in [*dirs, *files]:
            _tighten(Path(root) / name, data_dir, tightened)
    if tightened and logger is not None:
        logger.warning(
            "the data dir was readable by others; made owner-only: %s", ", ".join(tightened)
        )
    return tightened


def private_mode(path: Path) -> bool:
    """Whether `path` is owner-only (nothing for group or others)."""
    return stat.S_IMODE(path.lstat().st_mode) & _OPEN_TO_OTHERS == 0


def _tighten(path: Path, data_dir: Path, tightened: list[str]) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:  # gone meanwhile (a WAL checkpointed, a log rotated)
        return
    if stat.S_ISLNK(info.st_mode):
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & _OPEN_TO_OTHERS == 0:
        return
    wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else mode & FILE_MODE
    try:
        os.chmod(path, wanted)  # not a link: lstat said so
    except FileNotFoundError:
        return
    shown = "." if path == data_dir else str(path.relative_to(data_dir))
    tightened.append(f"{shown} {mode:04o}")

"""Operator key overrides: a YAML (or JSON) file of action id → keys, applied over the registry.

`$SIGNAL_CONSOLE_KEYMAP` names the file (default `~/.config/signal/console-keys.yaml`);
`csignal console --print-keymap` prints the defaults in the same shape, to copy and edit. Unknown
ids and malformed entries are reported, not fatal, and `ctrl+q` always quits whatever the file says.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from console import actions

KEYMAP_ENV = "SIGNAL_CONSOLE_KEYMAP"
DEFAULT_PATH = Path("~/.config/signal/console-keys.yaml")


def keymap_path() -> Path:
    return Path(os.environ.get(KEYMAP_ENV) or DEFAULT_PATH).expanduser()


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The overrides in `path` and the problems found; a missing file is no overrides."""
    path = path or keymap_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, yaml.YAMLError) as error:
        return {}, [f"{path}: {error}"]
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [f"{path}: expected a mapping of action id to keys"]
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for key, value in raw.items():
        if key not in actions.BY_ID:
            problems.append(f"{path}: unknown action id {key!r}")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{path}: {key}: expected keys such as 'x' or 'ctrl+x,f5'")
        else:
            keymap[str(key)] = value.strip()
    return keymap, problems


def default_keymap_yaml() -> str:
    lines = ["# Signal console keys: action id: keys (comma separates alternatives)"]
    for spec in actions.ACTIONS:
        lines.append(
            f"{spec.id}: {yaml.safe_dump(spec.keys).strip().removesuffix('...').strip()}"
            f"  # {spec.description}"
        )
    return "\n".join(lines) + "\n"

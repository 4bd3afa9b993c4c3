"""Helpers for the account-configuration tests (importable because pytest puts this folder on
the path; the folder is deliberately not a package, which would shadow the `config` package)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
SHARED_EXAMPLE = Path(__file__).parents[2].parent / "shared/examples/account.yaml"
LOCAL_EXAMPLE = DATA / "account.yaml"
BROKEN = DATA / "broken.yaml"
SECRET_VAR = "MARKETO_CLIENT_SECRET"
SECRET = "sup3r-s3cret-value"

DELETE = object()


def mutated(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `raw` with the value at a dotted path (`flows.0.mode`) replaced or deleted.

    The sentinel `DELETE` removes the key.
    """
    out = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    elif isinstance(node, list) and key == len(node):
        node.append(value)
    else:
        node[key] = value
    return out

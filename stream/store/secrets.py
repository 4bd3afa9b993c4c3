"""Defensive check that configuration JSON reaching the store carries no live secret.

Callers redact before saving; this is the last line, because a secret that lands in
`config_objects` or `config_audit` is readable by every operator through `/sql`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stream.store.errors import SecretLeakError

_SENSITIVE_WORDS = frozenset({"secret", "token", "password", "passwd", "apikey", "credentials"})
_SENSITIVE_NAMES = frozenset({"api_key", "private_key", "access_key", "auth", "authorization"})
_REDACTED_TEXT = frozenset({"", "redacted", "<redacted>", "[redacted]", "(redacted)", "***"})
_WORD_SPLIT = re.compile(r"[_\-\s.]+|(?<=[a-z0-9])(?=[A-Z])")


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def is_sensitive_key(key: str) -> bool:
    """True for names such as `client_secret`, `clientSecret`, `accessToken`, `password`.

    The last word decides, so `token_url` / `tokenUrl` (a connection's identity endpoint) and
    `secret_set` stay allowed while `refresh_token` does not.
    """
    words = _words(key)
    if not words:
        return False
    joined = "_".join(words)
    return words[-1] in _SENSITIVE_WORDS or joined in _SENSITIVE_NAMES


def is_redacted(value: object) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        text = value.strip().lower()
        return text in _REDACTED_TEXT or set(text) == {"*"} or set(text) == {"•"}
    return False


def find_secrets(value: Any, path: str = "$") -> list[str]:
    """JSON paths of sensitive keys holding something other than a redaction marker."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{path}.{key}"
            nested = isinstance(item, Mapping | list | tuple)
            if not nested and isinstance(key, str) and is_sensitive_key(key):
                if not is_redacted(item):
                    found.append(child)
            else:
                found.extend(find_secrets(item, child))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(find_secrets(item, f"{path}[{index}]"))
    return found


def ensure_no_secrets(value: Any, what: str) -> None:
    """Raise naming the offending paths (never the values)."""
    paths = find_secrets(value)
    if paths:
        raise SecretLeakError(
            f"{what} holds unredacted secret values at {', '.join(paths)}; "
            "redact them before saving"
        )

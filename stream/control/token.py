"""The operator API's bearer tokens, two per installation, kept in the data dir:

- `api-token`, the operator's: every route;
- `api-token-read-only`, for viewers (`csignal console --read-only`, dashboards, scripts that only
  look): every GET, and the POSTs that only read (`/sql`, a mapping preview, a replay's dry run);
  any other write is refused with 403, so read-only holds on the server whatever the client does.

Each is generated on first start so a fresh install is never open; the file is created with mode
0600 in one step (no window in which another user could read it) and tightened again if someone
loosened it. Comparison is constant-time so a token cannot be guessed byte by byte from response
times.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

TOKEN_BYTES = 32
FILE_MODE = 0o600
OPERATOR_TOKEN_FILE = "api-token"
READ_ONLY_TOKEN_FILE = "api-token-read-only"
OPERATOR = "operator"
READ_ONLY = "read-only"


class TokenFileError(RuntimeError):
    """The token file exists but cannot be used (unreadable or empty)."""


def generate_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def load_or_create_token(path: Path) -> str:
    """The token in `path`, creating the file (mode 0600) with a new token if it is missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = generate_token()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return _read_existing(path)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    os.chmod(path, FILE_MODE)  # the umask may have cleared bits O_CREAT asked for; never widens
    return token


def _read_existing(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, FILE_MODE)
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise TokenFileError(f"cannot read the API token file {path}: {error}") from None
    if not token:
        raise TokenFileError(f"the API token file {path} is empty; delete it to generate a new one")
    return token


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison; a missing token, or one that is not text (a header of
    undecodable bytes), never matches."""
    if not given:
        return False
    try:
        offered = given.encode()
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.encode(), offered)


def token_role(operator: str, read_only: str | None, given: str | None) -> str | None:
    """`OPERATOR` or `READ_ONLY` for the token a request carries, None when it is neither.
    Both comparisons always run, so the answer's timing does not tell which token was close."""
    is_operator = token_matches(operator, given)
    is_read_only = read_only is not None and token_matches(read_only, given)
    if is_operator:
        return OPERATOR
    return READ_ONLY if is_read_only else None


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()

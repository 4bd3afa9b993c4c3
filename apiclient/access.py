"""Where the operator API is, which token to send and who is acting (DESIGN 4.3).

The base URL is `--api`, else `SIGNAL_API` (host:port or a full URL), else the default. The
operator token is `SIGNAL_API_TOKEN`, else the file `SIGNAL_API_TOKEN_FILE` names, else
`$SIGNAL_DATA_DIR/api-token` (control writes it on its first start). The read-only token is
`SIGNAL_API_READ_ONLY_TOKEN`, else `$SIGNAL_DATA_DIR/api-token-read-only`; asking for it never
falls back to the operator's. A token file is UTF-8 text; one that is not, or cannot be read, is
an error that names the file rather than "no token". The token is only ever sent as a bearer
header: it never appears in a message or a repr.

The audit trail names the actor the client sends (`X-Signal-Actor`): the CLI's `$SIGNAL_ACTOR` or
login name, the console's `console:<login>`.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from apiclient.errors import TokenUnreadable
from config.settings import Settings

API_ENV = "SIGNAL_API"
TOKEN_ENV = "SIGNAL_API_TOKEN"
TOKEN_FILE_ENV = "SIGNAL_API_TOKEN_FILE"
READ_ONLY_TOKEN_ENV = "SIGNAL_API_READ_ONLY_TOKEN"
ACTOR_ENV = "SIGNAL_ACTOR"
ACTOR_MAX = 100
"""Control keeps at most this many characters of an actor."""


def api_base_url(api: str | None = None, settings: Settings | None = None) -> str:
    """`http://host:port` from `--api`, else `SIGNAL_API` (host:port or a full URL)."""
    value = (api or os.environ.get(API_ENV) or (settings or Settings()).api).strip().rstrip("/")
    if "://" not in value:
        value = f"http://{value}"
    return value


def token_env(*, read_only: bool = False) -> str:
    """The variable that holds the token directly."""
    return READ_ONLY_TOKEN_ENV if read_only else TOKEN_ENV


def token_file(settings: Settings | None = None, *, read_only: bool = False) -> Path:
    """The file read when the token's variable is not set."""
    if read_only:
        return (settings or Settings()).api_read_only_token_path
    named = os.environ.get(TOKEN_FILE_ENV, "").strip()
    return Path(named).expanduser() if named else (settings or Settings()).api_token_path


def read_token(settings: Settings | None = None, *, read_only: bool = False) -> str | None:
    """The token, or None when neither the variable nor the file holds one. Raises
    `TokenUnreadable` for a file that exists but is unreadable or not UTF-8."""
    env = os.environ.get(token_env(read_only=read_only), "").strip()
    if env:
        return env
    return read_token_file(token_file(settings, read_only=read_only))


def read_token_file(path: Path) -> str | None:
    """A token file's one line; None when the file does not exist or is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as error:
        raise TokenUnreadable(
            path, f"not UTF-8 text (byte {error.object[error.start]:#04x} at {error.start})"
        ) from None
    except OSError as error:
        raise TokenUnreadable(path, error.strerror or type(error).__name__) from None
    return text.strip() or None


def login_name() -> str:
    """The operator's login name: `$USER` or `$LOGNAME` when set and not empty, else the
    account's name from the password database, else `uid:<n>` (a container's user may have
    none), so the audit trail always names someone."""
    for variable in ("USER", "LOGNAME"):
        name = os.environ.get(variable, "").strip()
        if name:
            return name
    try:
        name = getpass.getuser().strip()
    except (OSError, KeyError):
        name = ""
    return name or f"uid:{os.getuid()}"


def cli_actor() -> str:
    """The CLI's actor: `$SIGNAL_ACTOR` (a script or shift names itself), else the login name."""
    name = (os.environ.get(ACTOR_ENV) or "").strip() or login_name()
    return name[:ACTOR_MAX]


def console_actor() -> str:
    """The console's actor: `console:<login>`, so the audit tells its changes from the CLI's."""
    return f"console:{login_name()}"[:ACTOR_MAX]

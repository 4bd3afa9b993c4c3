"""Connection secrets given literally (through the API or an imported file), kept outside DuckDB.

Every operator can read DuckDB through `/sql`, so a client secret must never land there. Secrets
named by an environment variable (`client_secret: ${VAR}`) are resolved from control's own
environment and never written anywhere; only literal ones are kept here, in a JSON file of mode
0600 next to the database, replaced atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600


class SecretStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._secrets: dict[str, str] = {}
        if path.exists():
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, FILE_MODE)
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a JSON object of connection id → secret")
            self._secrets = {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def get(self, connection_id: str) -> str | None:
        return self._secrets.get(connection_id)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._secrets

    def set(self, connection_id: str, secret: str) -> None:
        if self._secrets.get(connection_id) == secret:
            return
        self._secrets[connection_id] = secret
        self._write()

    def delete(self, connection_id: str) -> None:
        if self._secrets.pop(connection_id, None) is not None:
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".secrets-", suffix=".json", dir=self.path.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._secrets, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

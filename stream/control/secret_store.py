"""Connection secrets given literally (through the API or an imported file), kept outside DuckDB.

Every operator can read DuckDB through `/sql`, so a client secret must never land there. Secrets
named by an environment variable (`client_secret: ${VAR}`) are resolved from control's own
environment and never written anywhere; only literal ones are kept here, in a JSON file of mode
0600 next to the database, replaced atomically so a crash never leaves half a file.

Each secret is kept with the destination it was entered for (`SecretBinding`: the identity URL
and the client id); the config service uses it only for a connection that still has both, and
forgets it when either changes. A file written before secrets were bound holds bare strings:
those are bound to their connection as it stands when control next starts (`bind`).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.secret_refs import SecretBinding

FILE_MODE = 0o600


@dataclass(frozen=True)
class StoredSecret:
    value: str
    binding: SecretBinding | None
    """None: kept before secrets were bound (see `SecretStore.bind`)."""

    def to_json(self) -> Any:
        if self.binding is None:
            return self.value
        return {
            "secret": self.value,
            "identity_url": self.binding.identity_url,
            "client_id": self.binding.client_id,
            "service_url": self.binding.service_url,
        }

    @classmethod
    def from_json(cls, data: object) -> StoredSecret | None:
        if isinstance(data, str):
            return cls(data, None)
        if not isinstance(data, dict) or not isinstance(data.get("secret"), str):
            return None
        url, client = data.get("identity_url"), data.get("client_id")
        service = data.get("service_url")
        if not isinstance(url, str) or not (client is None or isinstance(client, str)):
            return None
        if not (service is None or isinstance(service, str)):
            return None
        return cls(data["secret"], SecretBinding(url, client, service))


class SecretStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._secrets: dict[str, StoredSecret] = {}
        if path.exists():
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, FILE_MODE)
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a JSON object of connection id → secret")
            for key, value in data.items():
                entry = StoredSecret.from_json(value)
                if entry is not None:
                    self._secrets[str(key)] = entry

    def get(self, connection_id: str) -> str | None:
        entry = self._secrets.get(connection_id)
        return entry.value if entry is not None else None

    def entry(self, connection_id: str) -> StoredSecret | None:
        return self._secrets.get(connection_id)

    def get_for(self, connection_id: str, binding: SecretBinding) -> str | None:
        """The secret when it was entered for `binding` (or predates binding), else None."""
        entry = self._secrets.get(connection_id)
        if entry is None or (
            entry.binding is not None and entry.binding.changes_to(binding) is not None
        ):
            return None
        return entry.value

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._secrets

    def unbound(self) -> list[str]:
        """Connections whose secret was kept before secrets were bound."""
        return [k for k, v in self._secrets.items() if v.binding is None]

    def set(self, connection_id: str, secret: str, binding: SecretBinding | None = None) -> None:
        entry = StoredSecret(secret, binding)
        if self._secrets.get(connection_id) == entry:
            return
        self._secrets[connection_id] = entry
        self._write()

    def bind(self, connection_id: str, binding: SecretBinding) -> None:
        """Bind a secret kept before secrets were bound to its connection's destination."""
        entry = self._secrets.get(connection_id)
        if entry is not None and entry.binding is None:
            self._secrets[connection_id] = StoredSecret(entry.value, binding)
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
                data = {k: v.to_json() for k, v in self._secrets.items()}
                json.dump(data, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

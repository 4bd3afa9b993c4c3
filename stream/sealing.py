"""Connection secrets sealed for `signal-config`: AES-256-GCM, a key only Signal's processes hold.

Workers need each connection's client secret to authenticate against Marketo, and they learn the
configuration from `signal-config`; any plain consumer of the broker can read that topic. So
control seals every secret before it publishes a snapshot, and workers open them with the same
key, kept in a file of mode 0600 (`<data dir>/config-key`, or `SIGNAL_CONFIG_KEY_FILE`). Control
creates the file when it first starts; `csignal run` starts the worker over the same data dir, and
a worker on another machine is given a copy of the file the way the API token is.

A sealed secret is bound to its destination: the associated data of the encryption is the
connection id, the identity URL the client sends the secret to and the client id. A worker opens
it only for a connection that still has those three, so a sealed secret can never be replayed to
another host, even by a snapshot that paired it with a changed URL.

Text form: `sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`; the key id (the first 8 hex
digits of the key's SHA-256) tells a worker holding another key why it cannot open a secret.

The same key authenticates whole snapshots. The embedded broker has no authentication: any local
user can produce to `signal-config`, and a forged snapshot (flows switched, filters emptied) would
be applied until control published again. So control tags every snapshot with HMAC-SHA256 over
its canonical bytes (`ConfigSnapshot.authenticated_bytes`), under a key derived from the sealing
key with HKDF-SHA256 and its own label (never the AES key itself), and a worker refuses a
snapshot whose tag is missing or does not verify. Text form: `hmac-sha256:v1:<key id>:<base64url
(tag)>`. An authentic older snapshot can still be produced again by a local user; control's next
publication (at every change, and at its start) replaces it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.secret_refs import SecretBinding

if TYPE_CHECKING:
    from stream.messages import ConfigSnapshot

log = logging.getLogger("signal.sealing")

__all__ = [
    "KEY_FILE_NAME",
    "AuthError",
    "KeyFile",
    "SealError",
    "SecretBox",
    "authenticate",
    "is_sealed",
]

KEY_FILE_NAME = "config-key"
KEY_BYTES = 32
NONCE_BYTES = 12
FILE_MODE = 0o600
PREFIX = "sealed:v1:"
AUTH_PREFIX = "hmac-sha256:v1:"
AUTH_LABEL = b"signal-config snapshot authentication v1"
"""HKDF `info` of the snapshot tag key: a key of its own, derived apart from the AES key."""


class SealError(ValueError):
    """A sealed secret that cannot be opened (another key, another destination, damaged)."""


class AuthError(ValueError):
    """A snapshot whose tag is missing, damaged, made with another key, or wrong."""


def _tag_key(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=AUTH_LABEL).derive(key)


def is_sealed(text: str) -> bool:
    return text.startswith(PREFIX)


def _aad(connection_id: str, binding: SecretBinding) -> bytes:
    return json.dumps(
        [
            "signal-connection-secret",
            connection_id,
            binding.identity_url,
            binding.client_id,
            binding.service_url,
        ],
        separators=(",", ":"),
    ).encode()


class SecretBox:
    """Seals and opens connection secrets with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a sealing key has {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._key = key
        self._tag_key = _tag_key(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"SecretBox(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> SecretBox:
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    # --- the key file ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> SecretBox:
        """The key in `path`; OSError when it cannot be read, ValueError when it is no key."""
        text = path.read_text(encoding="ascii").strip()
        try:
            key = base64.urlsafe_b64decode(text.encode())
        except (binascii.Error, ValueError):
            raise ValueError(f"{path} does not hold a sealing key") from None
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> SecretBox:
        """The key in `path`, created (mode 0600, atomically) when there is none yet."""
        try:
            return cls.load(path)
        except FileNotFoundError:
            pass
        box = cls.generate()
        try:
            box.save(path)
        except FileExistsError:
            return cls.load(path)
        log.info("created the key that seals connection secrets on signal-config: %s", path)
        return box

    def save(self, path: Path) -> None:
        """Write the key to `path` (mode 0600, whole or not at all); FileExistsError when there
        is a file already: a key is never replaced, or what it sealed could not be opened."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config-key-", dir=path.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(base64.urlsafe_b64encode(self._key).decode() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    # --- sealing -----------------------------------------------------------------------------

    def seal(self, secret: str, connection_id: str, binding: SecretBinding) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), _aad(connection_id, binding))
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{PREFIX}{self.key_id}:{body}"

    def open(self, sealed: str, connection_id: str, binding: SecretBinding) -> str:
        """The secret; `SealError` saying why when it cannot be opened for this destination."""
        key_id, body = _split(sealed)
        if key_id != self.key_id:
            raise SealError(f"sealed with another key ({key_id}; this process holds {self.key_id})")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
        except (binascii.Error, ValueError):
            raise SealError("damaged (not base64)") from None
        nonce, ciphertext = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, _aad(connection_id, binding)).decode()
        except (InvalidTag, ValueError):
            raise SealError("not sealed for this connection's identity URL and client id") from None

    # --- authenticating snapshots -------------------------------------------------------------

    def tag(self, data: bytes) -> str:
        """The tag of `data` (a snapshot's `authenticated_bytes`)."""
        mac = hmac.new(self._tag_key, data, hashlib.sha256).digest()
        return f"{AUTH_PREFIX}{self.key_id}:{base64.urlsafe_b64encode(mac).decode()}"

    def verify(self, data: bytes, tag: str | None) -> None:
        """Return when `tag` is this key's tag of `data`; `AuthError` saying why otherwise."""
        key_id, body = _split_tag(tag)
        if key_id != self.key_id:
            raise AuthError(f"tagged with another key ({key_id}; this process holds {self.key_id})")
        try:
            given = base64.urlsafe_b64decode(body.encode())
        except (binascii.Error, ValueError):
            raise AuthError("its tag is damaged (not base64)") from None
        expected = hmac.new(self._tag_key, data, hashlib.sha256).digest()
        if not hmac.compare_digest(given, expected):
            raise AuthError("its tag does not match its content (forged or altered)")


def authenticate(snapshot: ConfigSnapshot, box: SecretBox) -> ConfigSnapshot:
    """`snapshot` with `box`'s tag over its content, as control publishes it."""
    return snapshot.model_copy(update={"auth": box.tag(snapshot.authenticated_bytes())})


def _split_tag(tag: str | None) -> tuple[str, str]:
    if not tag:
        raise AuthError("it carries no tag (not published by control)")
    if not tag.startswith(AUTH_PREFIX):
        raise AuthError("its tag is not an hmac-sha256:v1 tag")
    key_id, sep, body = tag[len(AUTH_PREFIX) :].partition(":")
    if not sep or not key_id or not body:
        raise AuthError("its tag is damaged (no key id)")
    return key_id, body


def _split(sealed: str) -> tuple[str, str]:
    if not is_sealed(sealed):
        raise SealError("not a sealed secret")
    key_id, sep, body = sealed[len(PREFIX) :].partition(":")
    if not sep or not key_id or not body:
        raise SealError("damaged (no key id)")
    return key_id, body


class KeyFile:
    """A worker's view of the key file: read when first needed, read again when a secret was
    sealed with another key (control's data dir was set up anew)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._box: SecretBox | None = None
        self.problem: str | None = None

    @classmethod
    def of(cls, box: SecretBox) -> KeyFile:
        """A key file that is already read (tests, in-process services)."""
        keys = cls(Path("/nonexistent/config-key"))
        keys._box = box
        return keys

    def open(self, sealed: str, connection_id: str, binding: SecretBinding) -> str:
        key_id, _ = _split(sealed)
        box = self._box
        if box is None or box.key_id != key_id:
            box = self._reload() or box
        if box is None or (box.key_id != key_id and self.problem):
            raise SealError(f"no key {key_id} to open it: {self.problem}")
        return box.open(sealed, connection_id, binding)

    def verify(self, data: bytes, tag: str | None) -> None:
        """`SecretBox.verify` with this file's key, read again when the tag names another key
        (control's data dir was set up anew); `AuthError` saying why a snapshot is refused."""
        key_id, _ = _split_tag(tag)
        box = self._box
        if box is None or box.key_id != key_id:
            box = self._reload() or box
        if box is None:
            raise AuthError(f"no key to verify it: {self.problem}")
        box.verify(data, tag)

    def _reload(self) -> SecretBox | None:
        try:
            box = SecretBox.load(self.path)
        except FileNotFoundError:
            self.problem = f"{self.path} does not exist (it is control's {KEY_FILE_NAME})"
            return None
        except (OSError, ValueError) as error:
            self.problem = f"{self.path}: {error}"
            return None
        self._box = box
        self.problem = None
        return box

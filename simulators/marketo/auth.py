"""OAuth2 client-credentials tokens with Marketo's expiry semantics.

Asking again before expiry returns the same token with a falling `expires_in` (the floor of
the remaining seconds); a token is valid while `now < issued_at + lifetime` and expires exactly
when `expires_in` said — never earlier, so a client that trusts `expires_in` is never surprised.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Literal

TokenState = Literal["valid", "expired", "unknown"]


@dataclass
class Token:
    value: str
    client_id: str
    issued_at: float
    expires_at: float


class TokenStore:
    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._by_value: dict[str, Token] = {}
        self._current: dict[str, Token] = {}

    def issue(self, client_id: str, now: float) -> tuple[str, int]:
        """The client's live token (minting one only when none is live) and its `expires_in`."""
        token = self._current.get(client_id)
        if token is None or now >= token.expires_at:
            token = Token(
                value=f"{uuid.uuid4()}:sb",
                client_id=client_id,
                issued_at=now,
                expires_at=now + self.lifetime_s,
            )
            self._current[client_id] = token
            self._by_value[token.value] = token
        return token.value, max(0, math.floor(token.expires_at - now))

    def check(self, value: str | None, now: float) -> TokenState:
        token = self._by_value.get(value or "")
        if token is None:
            return "unknown"
        return "valid" if now < token.expires_at else "expired"

    def client_of(self, value: str) -> str | None:
        token = self._by_value.get(value)
        return None if token is None else token.client_id

    def revoke_all(self) -> int:
        """Forget every token: later calls carrying them get 601, as for a token never issued."""
        count = len(self._by_value)
        self._by_value.clear()
        self._current.clear()
        return count

    def expire_all(self, now: float) -> int:
        """Make every live token expired from now on (602), e.g. to test re-authentication."""
        count = 0
        for token in self._by_value.values():
            if token.expires_at > now:
                token.expires_at = now
                count += 1
        return count

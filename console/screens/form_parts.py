"""What the connection form and the Certain source form share: a failed Save & Test, how a test
result and a write-only secret read, and what counts as a URL.

A module of its own so both forms (console.screens.connections, console.screens.source_form)
say the same things in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from rich.text import Text
from textual.message import Message

from apiclient.rows import ConnectionRow, TestResult
from console import fmt


@dataclass
class CandidateFailed(Message, bubble=False):
    """A Save & Test whose test failed (`result`) or was refused (`result` None, e.g. no
    secret to send): nothing was saved; `body` and `secret` are what "save anyway" saves."""

    body: dict[str, Any]
    secret: str | None = field(repr=False)
    result: TestResult | None
    reason: str


READ_ONLY_KEYS = (
    "secret_set",
    "secret_source",
    "secret_updated_at",
    "secret_cleared",
    "client_secret_ref",
    "version",
)


def secret_text(row: ConnectionRow) -> Text:
    if not row.secret_set:
        return Text("✗ not set", style="bold yellow")
    source = (row.secret_source or "stored").split(":")[0]
    return Text(f"✓ {source}", style="green")


def test_text(result: TestResult) -> Text:
    if result.ok:
        text = f"✓ Connected in {result.elapsed_ms:.0f} ms — {result.message}"
        if result.released:
            many = "deliveries" if result.released > 1 else "delivery"
            text += f"; {result.released} parked {many} sent again now"
        return Text(text, style="green")
    return Text(f"✗ {result.message}", style="bold red")


def secret_label(row: ConnectionRow | None) -> str:
    """The secret field's label: whether a secret is set, what kind and where control keeps
    it (the value itself never reaches the console)."""
    if row is None:
        return "Client Secret"
    return secret_words(
        "Client Secret",
        is_set=row.secret_set,
        source=row.secret_source,
        updated_at=row.raw.get("secret_updated_at"),
        cleared=bool(row.secret_cleared),
    )


def secret_words(
    noun: str, *, is_set: bool, source: str | None, updated_at: str | None, cleared: bool
) -> str:
    """A secret's label (a connection's client secret, a Certain source's password), the
    same words for both."""
    if is_set:
        source = source or "stored"
        if source.startswith("env:"):
            where = f"read from control's environment variable {source.removeprefix('env:')}"
        else:
            when = fmt.short_stamp(updated_at)
            where = "entered here, kept in control's secret store" + (
                f" (replaced {when})" if when else ""
            )
        return fmt.esc(f"{noun} (set: {where}; type to replace)")
    if cleared:
        return f"{noun} (cleared: enter it again)"
    return f"{noun} (not set)"


def is_url(value: str) -> bool:
    parsed = urlparse(value.strip())
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)

"""The delivered-keys contract of `signal-delivered`, shared by the pipeline and control.

A key names one delivered (change, flow) pair: `change_id` + US + `flow_id`, and for a replay
(an operator sending again on purpose) US + "replay" + US + the replay id as well. The value is
one of:

- the delivery time as the text of a float of epoch seconds (`repr(float)`): delivered; a
  reader keeps the newest time per key;
- `b"sending:"` + such a time: a Marketo call completing the pair was started then, its answer
  not known yet (not a delivery);
- a tombstone: Marketo answered that call without running it; the "sending" mark is gone (a
  delivery is never withdrawn).

The pipeline writes a "sending" mark before each completing call and the key once Marketo
acknowledged it. Control keeps every record in its ledger (`delivery_marks`) as it reads the
topic, and writes the ledger's delivered keys and "sending" marks back on start, so a broker
that forgot the topic does not make a re-driven pair look undelivered, and a pair that was being
sent is counted as a possible repeat when it is delivered again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "SENDING",
    "SEP",
    "KeyParts",
    "Mark",
    "delivered_value",
    "delivery_key",
    "parse_key",
    "parse_value",
    "sending_value",
]

SEP = "\x1f"
SENDING = b"sending:"
"""Prefix of a "sending" mark's value (`b"sending:<epoch>"`)."""

MarkState = Literal["delivered", "sending", "withdrawn"]


def delivery_key(change_id: str, flow_id: str, replay_id: str | None = None) -> str:
    key = f"{change_id}{SEP}{flow_id}"
    if replay_id:
        key += f"{SEP}replay{SEP}{replay_id}"
    return key


def _epoch(when: datetime | float) -> float:
    return when.timestamp() if isinstance(when, datetime) else float(when)


def delivered_value(when: datetime | float) -> bytes:
    """The record value for a pair delivered at `when` (aware datetime or epoch seconds)."""
    return repr(_epoch(when)).encode()


def sending_value(when: datetime | float) -> bytes:
    """The record value for a pair whose completing call was started at `when`."""
    return SENDING + repr(_epoch(when)).encode()


@dataclass(frozen=True, slots=True)
class KeyParts:
    change_id: str
    flow_id: str
    replay_id: str | None = None


def parse_key(key: str) -> KeyParts:
    """The pair a key names; ValueError for anything `delivery_key` does not write."""
    parts = key.split(SEP)
    if len(parts) == 2 and all(parts):
        return KeyParts(parts[0], parts[1])
    if len(parts) == 4 and parts[2] == "replay" and parts[0] and parts[1] and parts[3]:
        return KeyParts(parts[0], parts[1], parts[3])
    raise ValueError(
        "not a delivery key (change id, flow id [, 'replay', replay id] separated by \\x1f)"
    )


@dataclass(frozen=True, slots=True)
class Mark:
    """One record of the log, read: its state and time (None for a tombstone)."""

    state: MarkState
    at: datetime | None


def parse_value(value: bytes | None) -> Mark:
    """A record value as a `Mark`; ValueError for a value no writer of the log produces."""
    if value is None:
        return Mark("withdrawn", None)
    sending = value.startswith(SENDING)
    text = value[len(SENDING) :] if sending else value
    try:
        stamp = float(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(
            "expected epoch seconds, 'sending:' and epoch seconds, or a tombstone"
        ) from None
    if not math.isfinite(stamp) or stamp < 0:
        raise ValueError(f"not a time: {stamp!r}")
    try:
        at = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"not a time: {stamp!r}") from None
    return Mark("sending" if sending else "delivered", at)

"""The delivered-keys contract of `signal-delivered`, shared by the pipeline and control.

A key names one delivered (change, flow) pair: `change_id` + US + `flow_id`, and for a replay
(an operator sending again on purpose) US + "replay" + US + the replay id as well. The value is
the delivery time as the text of a float of epoch seconds (`repr(float)`); a reader keeps the
newest time per key. The pipeline writes a key once Marketo acknowledged the pair; control
writes the ledger's delivered keys back on start, so a broker that forgot the topic does not
make a re-driven pair look undelivered.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["SEP", "delivered_value", "delivery_key"]

SEP = "\x1f"


def delivery_key(change_id: str, flow_id: str, replay_id: str | None = None) -> str:
    key = f"{change_id}{SEP}{flow_id}"
    if replay_id:
        key += f"{SEP}replay{SEP}{replay_id}"
    return key


def delivered_value(when: datetime | float) -> bytes:
    """The record value for a pair delivered at `when` (aware datetime or epoch seconds)."""
    stamp = when.timestamp() if isinstance(when, datetime) else float(when)
    return repr(stamp).encode()

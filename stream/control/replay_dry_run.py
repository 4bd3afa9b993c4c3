"""A replay's dry run: what a replay would send, evaluated in control with the pure core and the
configuration of now, published nowhere.

Apart from the replay service (`stream.control.replay`) because it shares only the scope with it
(`stream.control.replay_scope`): it runs within one request, holds no state and writes nothing.
It reports counts by decision, the most common reasons and a sample of the payloads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stream.control.preview import outcome_dict
from stream.control.redrive import ConfigSource, parse_archived
from stream.control.replay_scope import (
    ReplayError,
    ReplayScope,
    changes_in_scope,
    flow_refusal,
    undelivered,
)
from stream.core.evaluate import evaluate
from stream.core.results import DataFailure, FilteredOut, Mapped, NotActivated
from stream.store import Store

__all__ = ["SAMPLE_SIZE", "DryRunReport", "dry_run"]

SAMPLE_SIZE = 10


@dataclass
class DryRunReport:
    scope: ReplayScope
    scanned: int = 0
    in_scope: int = 0
    would_send: int = 0
    not_activated: int = 0
    filtered_out: int = 0
    data_failure: int = 0
    unreadable: int = 0
    only_undelivered: bool = False
    skipped_delivered: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "scope": self.scope.to_dict(),
            "scanned": self.scanned,
            "in_scope": self.in_scope,
            "counts": {
                "would_send": self.would_send,
                "not_activated": self.not_activated,
                "filtered_out": self.filtered_out,
                "data_failure": self.data_failure,
                "unreadable": self.unreadable,
            },
            "only_undelivered": self.only_undelivered,
            "skipped_delivered": self.skipped_delivered,
            "reasons": [{"reason": r, "count": n} for r, n in self.reasons.most_common(20)],
            "sample": self.sample,
            "warnings": self.warnings,
        }


async def dry_run(
    store: Store,
    config: ConfigSource,
    scope: ReplayScope,
    *,
    sample_size: int = SAMPLE_SIZE,
    only_undelivered: bool = False,
) -> DryRunReport:
    """What a replay would send, evaluated here with the current configuration and catalog."""
    account, catalog = config.account, config.catalog
    flow = account.flow(scope.flow_id)
    if flow is None:
        raise ReplayError(f"no flow {scope.flow_id!r}", 404)
    report = DryRunReport(scope, only_undelivered=only_undelivered)
    refusal = flow_refusal(flow, scope, config)
    if refusal is not None:
        report.warnings.append(f"{refusal}; a replay now would send nothing")
    if flow.source is None:
        return report
    async for scanned, rows in changes_in_scope(store, scope, flow.source.value):
        report.scanned += scanned
        report.in_scope += len(rows)
        if only_undelivered:
            kept = await undelivered(store, scope.flow_id, rows)
            report.skipped_delivered += len(rows) - len(kept)
            rows = kept
        for row in rows:
            change = parse_archived(row)
            if isinstance(change, str):
                report.unreadable += 1
                report.reasons[change] += 1
                continue
            result = evaluate(change, flow, account, catalog)
            if isinstance(result, Mapped):
                report.would_send += 1
                if len(report.sample) < sample_size:
                    report.sample.append(
                        {
                            "change_id": change.change_id,
                            "registration_code": change.registration_code,
                            "event_code": change.event_code,
                            **outcome_dict(result),
                        }
                    )
                continue
            if isinstance(result, NotActivated):
                report.not_activated += 1
            elif isinstance(result, FilteredOut):
                report.filtered_out += 1
            elif isinstance(result, DataFailure):
                report.data_failure += 1
            report.reasons[f"{result.status}: {result.reason}"] += 1
    return report

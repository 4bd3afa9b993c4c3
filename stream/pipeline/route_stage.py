"""The pipeline's `route` stage (`certain-changes`, `signal-redrive`): parse, apply event changes
to the local catalog, evaluate (pure, `route.py`), publish outcomes decided without Marketo and
`DeliveryRequest`s keyed by connection id.

Apart from the worker's wiring (`app.py`) because routing is a stage of its own: it shares with
the deliver stage only the configuration view, the counters and the publisher, which the worker
(`Pipeline`) holds. Nothing raises out of a batch: a change whose routing broke, and a redrive
that cannot be read but names its pair, become `failed` outcomes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from config.models import Source
from stream.certain.events import ChangeEvent
from stream.certain.parsing import Rejection
from stream.messages import OutcomeRecord, Redrive, utcnow
from stream.pipeline.records import (
    describe,
    parse_record,
    route_records,
    salvaged_failure,
    time_received,
    where,
)
from stream.pipeline.route import Routed, route_change, route_failure
from stream.pipeline.stage_base import StageBase

log = logging.getLogger("signal.pipeline")

__all__ = ["RouteStage"]


class RouteStage(StageBase):
    """The route stage of a `Pipeline` worker; its shared state is `StageBase`'s."""

    _waited: dict[str, float]
    """When this worker last waited for each unknown event (`_await_event`)."""

    async def route_events(self, events: Sequence[Any], *, redrive: bool) -> None:
        try:
            await self.view.wait_ready()
            rejected: list[OutcomeRecord] = []
            parsed = [(event, self._parse_one(event, redrive, rejected)) for event in events]
            # Event changes first: a registration taken in the same batch as its event's
            # create_update must not be held back as "event unknown".
            for _, item in parsed:
                if item is not None and item[0].type is Source.EVENT_CREATE_UPDATE:
                    self.view.apply_event(item[0])
            routed = Routed()
            for event, item in parsed:
                if item is not None:
                    routed.extend(await self._route_one(event, *item))
            routed.records.extend(rejected)
            await self.publish(route_records(routed))
            self.counters.outcomes += routed.pairs()
            self.counters.deliveries += len(routed.deliveries)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.counters.errors += 1
            log.exception("route batch failed unexpectedly; recording its changes as failed")
            await self._route_batch_failed(events, redrive, error)

    async def _route_batch_failed(
        self, events: Sequence[Any], redrive: bool, error: Exception
    ) -> None:
        """Failed outcomes for every change of a batch whose routing broke (`route_failure`)."""
        reason = f"internal error while routing: {describe(error)}"
        routed = Routed()
        lost = 0
        for event in events:
            try:
                parsed = parse_record(event.message.value, redrive)
                if isinstance(parsed, Rejection):
                    outcome = self._rejected_redrive(event, parsed) if redrive else None
                    if outcome is not None:
                        routed.records.append(outcome)
                    elif redrive:
                        lost += 1
                    continue
                change, why = parsed
                routed.extend(self._route_failure(event, change, why, reason))
            except Exception:
                lost += 1
                log.exception("cannot record the routing failure of %s", where(event))
        try:
            await self.publish(route_records(routed))
            self.counters.outcomes += routed.pairs()
            self.counters.failed += routed.pairs()
        except asyncio.CancelledError:
            raise
        except Exception:
            lost = len(events)
            log.exception("cannot publish the routing failures of a batch")
        if lost:
            self.counters.unrecorded += lost
            log.error(
                "%d records of a failed route batch reached no outcome (total %d)",
                lost,
                self.counters.unrecorded,
            )

    def _route_failure(
        self, event: Any, change: ChangeEvent, why: Redrive | None, reason: str
    ) -> Routed:
        account = self.view.account if self.view.ready else None
        return route_failure(
            change,
            account,
            reason=reason,
            now=utcnow(),
            received_at=time_received(event),
            redrive=why,
        )

    def _parse_one(
        self, event: Any, redrive: bool, rejected: list[OutcomeRecord]
    ) -> tuple[ChangeEvent, Redrive | None] | None:
        """The change (and redrive) of a record; None if unreadable, with the outcome of an
        unreadable redrive added to `rejected`."""
        message = event.message
        try:
            parsed = parse_record(message.value, redrive)
        except Exception as error:
            parsed = Rejection(None, "", f"unreadable record: {type(error).__name__}", None)
        if isinstance(parsed, Rejection):
            self.counters.rejected += 1
            log.warning(
                "rejected record at %s[%s]@%s: %s: %s",
                message.topic,
                message.partition,
                message.offset,
                parsed.path or "(record)",
                parsed.reason,
            )
            if redrive:
                # Control archived the change (it keeps unreadable input of certain-changes in
                # rejected_changes itself); a redrive the pipeline cannot read is its outcome.
                outcome = self._rejected_redrive(event, parsed)
                if outcome is not None:
                    rejected.append(outcome)
                else:
                    self.counters.unrecorded += 1
                    log.error(
                        "unreadable redrive at %s names no change and flow; not recorded",
                        where(event),
                    )
            return None
        if parsed[1] is None:
            self.counters.changes += 1
        else:
            self.counters.redrives += 1
        return parsed

    async def _route_one(self, event: Any, change: ChangeEvent, why: Redrive | None) -> Routed:
        try:
            if (
                change.type is not Source.EVENT_CREATE_UPDATE
                and change.event_code not in self.view.catalog
            ):
                await self._await_event(change.event_code)
            return route_change(
                change,
                self.view.account,
                self.view.catalog,
                now=utcnow(),
                received_at=time_received(event),
                redrive=why,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.counters.errors += 1
            log.exception("cannot route %s; recording it as failed", where(event))
            reason = f"internal error while routing: {describe(error)}"
            return self._route_failure(event, change, why, reason)

    def _rejected_redrive(self, event: Any, rejection: Rejection) -> OutcomeRecord | None:
        """The failed outcome of a redrive the pipeline cannot read, if it names its pair."""
        try:
            data = json.loads(event.message.value or b"")
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        change = data.get("change") if isinstance(data.get("change"), dict) else {}
        why = data.get("redrive") if isinstance(data.get("redrive"), dict) else {}
        assert isinstance(change, dict) and isinstance(why, dict)
        fields = {
            "change_id": change.get("changeId"),
            "flow_id": why.get("flow_id"),
            "occurred_at": change.get("occurredAt"),
            "event_code": change.get("eventCode"),
            "attempt": why.get("attempt"),
            "redrive_kind": why.get("kind"),
            "replay_id": why.get("replay_id"),
        }
        reason = f"redrive not readable by the pipeline: {rejection.path or '(record)'}: "
        return salvaged_failure(fields, reason + rejection.reason, retryable=False)

    async def _await_event(self, event_code: str) -> None:
        """Give control a moment to publish an event this worker has not seen (≤ 2 s, once per
        event and half minute, so a stream of changes for an unknown event does not stall)."""
        now = time.monotonic()
        last = self._waited.get(event_code)
        if last is not None and now - last < self.options.unknown_event_rewait_s:
            return
        self._waited[event_code] = now
        deadline = now + self.options.unknown_event_wait_s
        while event_code not in self.view.catalog:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self.view.wait_next(remaining):
                break

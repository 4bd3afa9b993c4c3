"""What the runtime must do with a set of changes, computed by the pure core.

The runtime (API → Kafka → pipeline → Marketo → control) must agree with
`stream.core.evaluate.evaluate_all` over the same account and catalog: one outcome per
(unique valid change, active complete flow), and in the sandbox exactly the leads, campaign
requests and form fills of the changes the core maps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from config.models import Account, Action
from simulators.certain.traffic import SimChange
from simulators.marketo.program_seed import DEFAULT_CHANNELS
from simulators.marketo.state import EMAIL_RE
from stream.certain.parsing import Rejection, parse_change
from stream.core.catalog import EventCatalog
from stream.core.evaluate import evaluate_all
from stream.core.results import DataFailure, FilteredOut, Mapped, NotActivated


@dataclass
class Expectation:
    outcomes: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    """(change id, flow id) → (status, category)."""
    change_ids: set[str] = field(default_factory=set)
    rejected_positions: list[int] = field(default_factory=list)
    lead_emails: set[str] = field(default_factory=set)
    campaign_requests: Counter[tuple[int, str]] = field(default_factory=Counter)
    form_fills: Counter[tuple[int, str]] = field(default_factory=Counter)
    program_members: dict[tuple[int, str], str] = field(default_factory=dict)
    """(program id, email) → the status the member ends in: the furthest along of those the
    changes set, as Marketo moves members forward only."""


def marketo_accepts(email: str) -> bool:
    return email.isascii() and EMAIL_RE.match(email) is not None


def expect(items: list[SimChange], account: Account) -> Expectation:
    result = Expectation()
    changes = []
    for position, item in enumerate(items):
        parsed = parse_change(item.body, position)
        if isinstance(parsed, Rejection):
            result.rejected_positions.append(position)
            continue
        if parsed.change_id in result.change_ids:
            continue
        result.change_ids.add(parsed.change_id)
        changes.append(parsed)
    catalog = EventCatalog().apply_all(changes)
    for change in changes:
        for flow, evaluation in evaluate_all(change, account, catalog):
            key = (change.change_id, flow.id)
            if isinstance(evaluation, NotActivated):
                result.outcomes[key] = ("not_activated", None)
            elif isinstance(evaluation, FilteredOut):
                result.outcomes[key] = ("filtered_out", None)
            elif isinstance(evaluation, DataFailure):
                result.outcomes[key] = ("failed", "data")
            else:
                assert isinstance(evaluation, Mapped)
                _delivery(result, key, evaluation)
    return result


def _delivery(result: Expectation, key: tuple[str, str], mapped: Mapped) -> None:
    email = mapped.payload.get("email", "")
    if not marketo_accepts(email):
        result.outcomes[key] = ("failed", "data")
        return
    result.outcomes[key] = ("delivered", None)
    result.lead_emails.add(email.lower())
    if mapped.action is Action.FORM_POST:
        assert mapped.form_id is not None
        result.form_fills[(mapped.form_id, email.lower())] += 1
    elif mapped.action is Action.UPDATE_PROGRAM_STATUS:
        assert mapped.program_id is not None and mapped.program_status is not None
        member = (mapped.program_id, email.lower())
        current = result.program_members.get(member)
        if current is None or _step(mapped.program_status) > _step(current):
            result.program_members[member] = mapped.program_status
    else:
        assert mapped.campaign_id is not None
        result.campaign_requests[(mapped.campaign_id, email.lower())] += 1


def sandbox_campaign_requests(
    runs: list[dict[str, Any]], leads: list[dict[str, Any]]
) -> Counter[tuple[int, str]]:
    email_of = {lead["id"]: str(lead.get("email", "")).lower() for lead in leads}
    found: Counter[tuple[int, str]] = Counter()
    for run in runs:
        for key in ("leadIds", "suppressedLeadIds", "unknownLeadIds"):
            for lead_id in run.get(key) or []:
                found[(int(run["campaignId"]), email_of.get(lead_id, f"#{lead_id}"))] += 1
    return found


def sandbox_form_fills(
    fills: list[dict[str, Any]], leads: list[dict[str, Any]]
) -> Counter[tuple[int, str]]:
    email_of = {lead["id"]: str(lead.get("email", "")).lower() for lead in leads}
    return Counter((int(f["formId"]), email_of.get(f["leadId"], "?")) for f in fills)


_STEPS = {s.name: s.step for c in DEFAULT_CHANNELS for s in c.statuses}


def _step(status: str) -> int:
    """The status's step in the sandbox's default channels (the demo's programs use them)."""
    return _STEPS[status]


def sandbox_program_members(
    programs: list[dict[str, Any]], leads: list[dict[str, Any]]
) -> dict[tuple[int, str], str]:
    """(program id, email) → status, from the sandbox's `/_sandbox/programs`."""
    email_of = {lead["id"]: str(lead.get("email", "")).lower() for lead in leads}
    return {
        (int(p["id"]), email_of.get(m["leadId"], f"#{m['leadId']}")): str(m["statusName"])
        for p in programs
        for m in p["members"]
    }

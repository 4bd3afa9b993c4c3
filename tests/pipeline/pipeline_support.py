"""Data shared by the pipeline tests: the example account pointed at a sandbox, Certain-shaped
changes, config snapshots and delivery requests.

Changes come from `tests.support.changes` with this folder's defaults: change `n` is
registration `R{n:06d}` of user `n` (email user{n}@example.com), complete, with a fresh change id
and, unless given, the real time as its moment (a worker handles it as it would a live change);
the event carries only the setup the example flows need, and no campaign question.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from config.models import Account
from config.secret_refs import secret_binding
from stream.certain.events import ChangeEvent
from stream.core.catalog import EventCatalog
from stream.messages import ConfigSnapshot, DeliveryRequest
from stream.sealing import SecretBox, authenticate
from tests.support import changes
from tests.support.accounts import example_account_data
from tests.support.clock import now

CONNECTION = "mkto-prod"
SECRET = "sandbox-secret"
SESSION_NAME = "Keynote"
EVENT_SETUP: dict[str, Any] = {
    "attendeeTypes": [{"code": "VIP", "tags": ["vip"]}],
    "registrationQuestions": [{"code": "DIET", "tags": ["diet"]}],
    "eventTags": ["signal_marketo"],
}
BOX = SecretBox.generate()
"""The key control would hold: the snapshots of these tests carry the secret sealed with it."""
_ids = itertools.count(1)


def write_key(path: Path) -> Path:
    """`BOX`'s key as a worker reads it (control's `config-key` file)."""
    BOX.save(path)
    return path


def account_data(
    service_url: str = "http://127.0.0.1:9", *, all_active: bool = True, force_update: bool = False
) -> dict[str, Any]:
    """The example account (no secret in it), its connection aimed at `service_url`; with
    `all_active` every flow is active and live (the form flow is a test flow in the example)."""
    raw = example_account_data()
    connection = raw["connections"][0]
    connection.update(service_url=service_url, client_id="sandbox-client")
    connection["force_update"] = force_update
    connection.pop("client_secret", None)
    # Form 1234 of the sandbox has no city field, and Marketo refuses fields not on the form.
    basic = raw["mappings"][0]
    fields = [f for f in basic["fields"] if f["target"] != "city"]
    raw["mappings"].append({"id": "form-fields", "name": "Form fields", "fields": fields})
    for flow in raw["flows"]:
        if flow["destination"].get("action") == "form_post":
            flow["destination"]["mapping"] = "form-fields"
    if all_active:
        for flow in raw["flows"]:
            flow["active"] = True
            flow["mode"] = "live"
    return raw


def account(service_url: str = "http://127.0.0.1:9", **options: Any) -> Account:
    built = Account.model_validate(account_data(service_url, **options))
    for connection in built.connections:
        connection.client_secret = SecretStr(SECRET)
    return built


def snapshot(
    service_url: str, version: int = 1, catalog: dict[str, Any] | None = None, **options: Any
) -> ConfigSnapshot:
    data = account_data(service_url, **options)
    [connection] = Account.model_validate(data).connections
    sealed = BOX.seal(SECRET, CONNECTION, secret_binding(connection))
    made = ConfigSnapshot(
        version=version, account=data, secrets={CONNECTION: sealed}, catalog=catalog or {}
    )
    return authenticate(made, BOX)  # as control tags it: workers refuse an untagged one


def event_json(
    code: str = changes.EVENT_CODE,
    *,
    change_id: str | None = None,
    is_test: bool = False,
    questions: dict[str, Any] | None = None,
    occurred_at: str = "2026-11-01T08:00:00Z",
) -> dict[str, Any]:
    return changes.event_json(
        code,
        change_id=change_id or f"evt-{next(_ids)}",
        occurred_at=occurred_at,
        is_test=is_test,
        questions=dict(questions or {}),
        setup=copy.deepcopy(EVENT_SETUP),
    )


def registration_json(
    n: int = 1,
    *,
    change_id: str | None = None,
    status: str = "New",
    email: str | None = None,
    country: str = "US",
    event_code: str = changes.EVENT_CODE,
    kind: str = "registration.status_change",
    session_status: str = "Attended",
    occurred_at: str | None = None,
) -> dict[str, Any]:
    session = {"sessionCode": "S1", "sessionName": SESSION_NAME, "regSessionStatus": session_status}
    return changes.registration_json(
        change_id or f"chg-{next(_ids)}",
        kind,
        event_code=event_code,
        occurred_at=occurred_at or now(),
        session=session,
        code=f"R{n:06d}",
        status=status,
        email=email if email is not None else f"user{n}@example.com",
        country=country,
        properties={"complete": True},
        profile={"firstName": "ana", "lastName": f"ruiz{n}"},
    )


def change(data: dict[str, Any]) -> ChangeEvent:
    return ChangeEvent.model_validate(copy.deepcopy(data))


def catalog_with(*events: dict[str, Any]) -> EventCatalog:
    return EventCatalog().apply_all(change(e) for e in events)


def request(
    action: str,
    payload: dict[str, str],
    *,
    campaign_id: int | None = 1001,
    form_id: int | None = None,
    tokens: dict[str, str] | None = None,
    change_id: str | None = None,
    flow_id: str = "flow-1",
) -> DeliveryRequest:
    return DeliveryRequest(
        change_id=change_id or f"chg-{next(_ids)}",
        flow_id=flow_id,
        flow_name="Flow one",
        mode="live",
        connection_id=CONNECTION,
        action=action,
        occurred_at=datetime.now(UTC),
        received_at=datetime.now(UTC),
        payload=payload,
        campaign_id=campaign_id,
        form_id=form_id,
        tokens=tokens or {},
    )


def lead(n: int, email: str | None = None, **extra: str) -> dict[str, str]:
    return {
        "email": email or f"user{n}@example.com",
        "firstName": "Ana",
        "lastName": f"Ruiz{n}",
        **extra,
    }

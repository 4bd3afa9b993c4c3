"""Shared data and small helpers of the operator API tests: the account they start from and its
secrets. Change events come from `tests.support.changes`, topic reads from `tests.support.topics`.
"""

from __future__ import annotations

import json
from typing import Any

SECRET_VAR = "SIGNAL_SECRET_TEST_MARKETO"
SECRET = "s3cr3t-from-env-7f1d"
LITERAL_SECRET = "literal-s3cret-9a2b"

ACCOUNT_YAML = """\
account: ACME
tags:
  - {name: registered, label: Registered, objects: [registration_status]}
  - {name: attended, label: Attended, objects: [registration_status, session_registration_status]}
  - {name: vip, label: VIP, objects: [attendee_type]}
  - {name: event_live, label: Event is live, objects: [event_status]}
assignments:
  registration_statuses: {New: [registered], Attended: [attended]}
  session_registration_statuses: {Attended: [attended]}
  event_statuses: {Active: [event_live]}
connections:
  - id: mkto-prod
    name: Marketo production
    target: marketo
    service_url: https://123-abc-456.mktorest.com/
    client_id: 3f1c0c1e-demo
    client_secret: ${SIGNAL_SECRET_TEST_MARKETO}
    primary: true
mappings:
  - id: lead-basic
    name: Lead basics
    fields:
      - {target: email, sources: [registration.profile.email], transforms: [trim, lower]}
      - {target: firstName, sources: [registration.profile.firstName]}
      - {target: lastName, sources: [registration.profile.lastName]}
flows:
  - id: registered-to-nurture
    name: Registered to nurture
    mode: live
    active: true
    source: registration.status_change
    activate_for: {registration_statuses: [registered]}
    destination:
      name: Leads
      connection: mkto-prod
      action: create_update_lead
      mapping: lead-basic
      campaign: {campaign_id: 1001}
  - id: half-built
    name: Half built
    mode: test
    active: false
    source: registration.create_update
"""


def snapshots(records: list[Any]) -> list[dict[str, Any]]:
    """The configuration snapshots in records read from a config topic."""
    return [json.loads(r.value) for r in records]

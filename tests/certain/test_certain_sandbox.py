"""The Certain sandbox over real HTTP: Basic auth, the collection envelope, paging to the end,
dateModified filters in both timestamp formats with ordering, 404/400 answers, the admin routes
(a 5,000-registration mass change seen through paging) and each fault; and `csignal
certain-sandbox` as a real process."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulators.certain.sandbox import V1, V2, CertainSandbox
from tests.support.processes import ServiceProcess, run_csignal

AUTH = aiohttp.encode_basic_auth("signal-api", "sandbox-password")
REGS = f"{V1}/Registration/ACME"


@dataclass
class Client:
    sandbox: CertainSandbox
    http: aiohttp.ClientSession

    async def get(
        self, path: str, params: dict[str, str] | None = None, auth: str | None = AUTH
    ) -> tuple[int, Any, dict[str, str]]:
        """GET with Basic credentials (`auth` is the Authorization header; None: none sent)."""
        headers = {"Authorization": auth} if auth else {}
        async with self.http.get(self.sandbox.url + path, params=params, headers=headers) as resp:
            body = await resp.json(content_type=None) if resp.status < 500 else await resp.text()
            return resp.status, body, dict(resp.headers)

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{self.sandbox.url}/_sandbox/{path}"
        async with self.http.request(method, url, json=body) as resp:
            return resp.status, await resp.json()

    async def page_all(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Page with max_results/start_index until the 404 that ends a filtered list."""
        records: list[dict[str, Any]] = []
        size = int(params["max_results"])
        while True:
            status, body, _ = await self.get(path, {**params, "start_index": str(len(records))})
            if status == 404:
                return records
            assert status == 200, body
            assert body["maxResults"] == size
            assert body["size"] == len(body["registrations"]) <= size
            records.extend(body["registrations"])


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with CertainSandbox(seed=5, per_event=12) as sandbox, aiohttp.ClientSession() as http:
        yield Client(sandbox, http)


def fmt(seconds: int, old: bool = False) -> str:
    pattern = "%Y/%m/%d %H:%M:%S" if old else "%Y-%m-%dT%H:%M:%S"
    return datetime.fromtimestamp(seconds, UTC).strftime(pattern)


def stamp(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())


# --- auth -----------------------------------------------------------------------------------------


async def test_basic_auth_is_required(client: Client) -> None:
    status, body, headers = await client.get(f"{REGS}/SUMMIT26", auth=None)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert body == {"message": "Authentication required"}
    status, body, _ = await client.get(
        f"{REGS}/SUMMIT26", auth=aiohttp.encode_basic_auth("signal-api", "wrong")
    )
    assert (status, body["message"]) == (401, "Invalid credentials")
    status, body, _ = await client.get(f"{V1}/Registration/OTHER/SUMMIT26")
    assert status == 403
    assert body["message"] == "User 'signal-api' has no access to account 'OTHER'"
    status, _, _ = await client.get(f"{REGS}/SUMMIT26")
    assert status == 200


async def test_a_password_change_makes_the_old_one_401(client: Client) -> None:
    status, _ = await client.admin("POST", "accounts/ACME/password", {"password": "new-one"})
    assert status == 200
    assert (await client.get(f"{REGS}/SUMMIT26"))[0] == 401
    new = aiohttp.encode_basic_auth("signal-api", "new-one")
    assert (await client.get(f"{REGS}/SUMMIT26", auth=new))[0] == 200


# --- envelope, paging, filters, ordering ----------------------------------------------------------


async def test_collection_envelope_and_include_list(client: Client) -> None:
    status, body, _ = await client.get(f"{REGS}/SUMMIT26", {"max_results": "5"})
    assert status == 200
    assert set(body) == {"size", "completeCollectionSize", "maxResults", "registrations"}
    assert (body["size"], body["completeCollectionSize"], body["maxResults"]) == (5, 12, 5)
    reg = body["registrations"][0]
    for key in ("pkRegId", "registrationCode", "registrationStatusLabel", "attendeeTypeCode"):
        assert key in reg
    assert {"dateCreated", "dateModified", "statusModified"} <= set(reg)
    assert "registrationQuestions" not in reg and "properties" not in reg
    status, body, _ = await client.get(
        f"{REGS}/SUMMIT26", {"includeList": "registration_questions,reg_properties"}
    )
    assert body["registrations"][0]["registrationQuestions"][0]["questionCode"] == "DIET"
    assert body["registrations"][0]["properties"]["complete"] is False
    assert body["maxResults"] == 100 and body["size"] == 12


async def test_paging_to_the_end_then_404(client: Client) -> None:
    records = await client.page_all(f"{REGS}/SUMMIT26", {"max_results": "5"})
    assert len(records) == 12
    assert len({r["registrationCode"] for r in records}) == 12
    assert [r["pkRegId"] for r in records] == sorted(r["pkRegId"] for r in records)
    status, body, _ = await client.get(f"{REGS}/SUMMIT26", {"start_index": "12"})
    assert (status, body) == (404, {"message": "No registrations found"})
    everything = await client.page_all(REGS, {"max_results": "25"})
    assert len(everything) == 12 * 5


async def test_date_modified_filters_in_both_formats_with_ordering(client: Client) -> None:
    _, body, _ = await client.get(f"{REGS}/SUMMIT26")
    codes = [r["registrationCode"] for r in body["registrations"]]
    seeded = stamp(body["registrations"][0]["dateModified"])
    client.sandbox.clock.skew_s = 100
    for code in codes[:3]:
        status, _ = await client.admin(
            "PATCH", f"registrations/ACME/SUMMIT26/{code}", {"registrationStatusLabel": "Attended"}
        )
        assert status == 200
    client.sandbox.clock.skew_s = 200
    await client.admin(
        "PATCH", f"registrations/ACME/SUMMIT26/{codes[5]}", {"registrationStatusLabel": "Cancelled"}
    )
    for old in (False, True):
        after = fmt(seeded + 50, old)
        status, body, _ = await client.get(
            f"{REGS}/SUMMIT26", {"dateModified_after": after, "orderBy": "dateModified_asc"}
        )
        assert status == 200, body
        got = [(r["registrationCode"], r["registrationStatusLabel"]) for r in body["registrations"]]
        assert got == [(c, "Attended") for c in codes[:3]] + [(codes[5], "Cancelled")]
        status, body, _ = await client.get(
            f"{REGS}/SUMMIT26",
            {
                "dateModified_after": after,
                "dateModified_before": fmt(seeded + 150, old),
                "orderBy": "dateModified_desc",
            },
        )
        assert [r["registrationCode"] for r in body["registrations"]] == codes[2::-1]
    stamps = [stamp(r["dateModified"]) for r in body["registrations"]]
    assert all(seeded + 100 <= s < seeded + 150 for s in stamps)
    status, body, _ = await client.get(
        f"{REGS}/SUMMIT26", {"dateModified_after": fmt(seeded + 500)}
    )
    assert (status, body["message"]) == (404, "No registrations found")


async def test_every_change_moves_date_modified(client: Client) -> None:
    _, body, _ = await client.get(f"{REGS}/SUMMIT26", {"max_results": "1"})
    code = body["registrations"][0]["registrationCode"]
    seen = [body["registrations"][0]["dateModified"]]
    for label in ("Attended", "Cancelled", "New"):
        _, reg = await client.admin(
            "PATCH", f"registrations/ACME/SUMMIT26/{code}", {"registrationStatusLabel": label}
        )
        seen.append(reg["dateModified"])
    assert seen == sorted(set(seen)), seen
    status, reg, _ = await client.get(f"{REGS}/SUMMIT26/{code}")
    assert (status, reg["registrationStatusLabel"], reg["dateModified"]) == (200, "New", seen[-1])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_results": "abc"}, "Invalid value 'abc' for max_results: expected an integer >= 1"),
        ({"max_results": "0"}, "Invalid value '0' for max_results: expected an integer >= 1"),
        ({"start_index": "-1"}, "Invalid value '-1' for start_index: expected an integer >= 0"),
        (
            {"dateModified_after": "2026-12-01T10:00:00Z"},
            "Invalid value '2026-12-01T10:00:00Z' for dateModified_after: expected "
            "yyyy-MM-ddTHH:mm:ss or yyyy/MM/dd HH:mm:ss (UTC)",
        ),
        (
            {"dateModified_before": "yesterday"},
            "Invalid value 'yesterday' for dateModified_before: expected "
            "yyyy-MM-ddTHH:mm:ss or yyyy/MM/dd HH:mm:ss (UTC)",
        ),
        ({"isActive": "maybe"}, "Invalid value 'maybe' for isActive: expected true or false"),
    ],
)
async def test_bad_parameters_answer_400_with_the_reason(
    client: Client, params: dict[str, str], message: str
) -> None:
    status, body, _ = await client.get(f"{REGS}/SUMMIT26", params)
    assert (status, body) == (400, {"message": message})


async def test_bad_order_by_names_the_choices(client: Client) -> None:
    status, body, _ = await client.get(f"{REGS}/SUMMIT26", {"orderBy": "dateModified_up"})
    assert status == 400
    assert body["message"].startswith("Invalid value 'dateModified_up' for orderBy: expected")
    assert "dateModified_asc|_desc" in body["message"]


async def test_unknown_event_and_registration_are_404(client: Client) -> None:
    status, body, _ = await client.get(f"{REGS}/NOPE")
    assert (status, body["message"]) == (404, "Event 'NOPE' not found in account 'ACME'")
    status, body, _ = await client.get(f"{REGS}/SUMMIT26/RNOTHERE")
    assert (status, body["message"]) == (
        404,
        "Registration 'RNOTHERE' not found in event 'SUMMIT26'",
    )


# --- events and sessions --------------------------------------------------------------------------


async def test_events_list_detail_and_changes(client: Client) -> None:
    status, body, _ = await client.get(f"{V1}/Event/ACME", {"includeList": "tags"})
    assert status == 200 and body["completeCollectionSize"] == 5
    summit = next(e for e in body["events"] if e["eventCode"] == "SUMMIT26")
    assert summit["tags"] == {"tag": [{"name": "signal_marketo"}]}
    status, event, _ = await client.get(f"{V1}/Event/ACME/SUMMIT26")
    labels = {s["label"] for s in event["setup"]["statuses"]}
    assert {"New", "Attended", "VIP Confirmed", "Need photo"} <= labels
    assert {"code": "VIP", "tags": ["vip"]} in event["setup"]["attendeeTypes"]
    assert event["eventQuestions"]["marketoCampaignId"] == 1002
    client.sandbox.clock.skew_s = 60
    status, created = await client.admin(
        "POST",
        "events",
        {"eventCode": "NEW27", "eventName": "New 2027", "sessions": [{"code": "S1"}]},
    )
    assert status == 201 and created["dateModified"] > event["dateModified"]
    setup = {**event["setup"], "eventTags": ["x"]}
    status, changed = await client.admin(
        "POST", "events", {"eventCode": "SUMMIT26", "setup": setup}
    )
    assert status == 200 and changed["setup"]["eventTags"] == ["x"]
    status, body, _ = await client.get(
        f"{V1}/Event/ACME",
        {"dateModified_after": event["dateModified"], "orderBy": "eventCode_asc"},
    )
    assert [e["eventCode"] for e in body["events"]] == ["NEW27", "SUMMIT26"]
    status, body, _ = await client.get(f"{V2}/accounts/ACME/events/NEW27/sessions")
    assert status == 200 and body["sessions"][0]["sessionCode"] == "S1"
    status, types, _ = await client.get(f"{V1}/AttendeeType/ACME/SUMMIT26")
    assert "Exhibitor" in {t["attendeeTypeCode"] for t in types["attendeeTypes"]}


async def test_an_inactive_event_drops_out_of_is_active_true(client: Client) -> None:
    _, active, _ = await client.get(f"{V1}/Event/ACME", {"isActive": "true"})
    assert active["completeCollectionSize"] == 5
    status, body = await client.admin(
        "POST", "events", {"eventCode": "DEVDAY26", "isActive": False}
    )
    assert status == 200 and body["isActive"] is False
    _, active, _ = await client.get(f"{V1}/Event/ACME", {"isActive": "true"})
    assert "DEVDAY26" not in {e["eventCode"] for e in active["events"]}
    status, body = await client.admin("POST", "events", {"eventCode": "DEVDAY26", "isActive": "no"})
    assert (status, body["message"]) == (400, "'isActive' is 'no': expected true or false")
    status, body = await client.admin("POST", "events", {"eventCode": "DEVDAY26", "colour": "red"})
    assert status == 400 and body["message"].startswith("unknown event field 'colour': expected")


async def test_session_registrations_follow_the_transitions(client: Client) -> None:
    _, body, _ = await client.get(f"{REGS}/SUMMIT26", {"max_results": "1"})
    code = body["registrations"][0]["registrationCode"]
    agendas = f"{V1}/RegistrationAgenda/ACME/SUMMIT26"
    assert (await client.get(agendas))[0] == 404
    move = {"eventCode": "SUMMIT26", "registrationCode": code, "sessionCode": "KEYNOTE"}
    status, first = await client.admin(
        "POST", "session-registrations", {**move, "regSessionStatus": "Attended"}
    )
    assert status == 400
    assert "a first assignment is Registered or Waitlisted" in first["message"]
    for state in ("Waitlisted", "Registered", "Attended"):
        status, agenda = await client.admin(
            "POST", "session-registrations", {**move, "regSessionStatus": state}
        )
        assert status == 200, agenda
    status, refused = await client.admin(
        "POST", "session-registrations", {**move, "regSessionStatus": "Registered"}
    )
    assert status == 400
    assert refused["message"] == (
        "'regSessionStatus' cannot move from Attended to Registered: expected one of none"
    )
    status, body, _ = await client.get(agendas, {"orderBy": "dateModified_desc"})
    assert status == 200 and body["size"] == 1
    item = body["registrationAgendas"][0]
    assert (item["registrationCode"], item["sessionCode"], item["regSessionStatus"]) == (
        code,
        "KEYNOTE",
        "Attended",
    )
    assert isinstance(item["instanceId"], int)
    client.sandbox.clock.skew_s = 90
    other = {**move, "sessionCode": "WS-DATA", "regSessionStatus": "Registered"}
    assert (await client.admin("POST", "session-registrations", other))[0] == 200
    status, body, _ = await client.get(
        agendas, {"dateModified_after": item["dateModified"], "orderBy": "dateModified_asc"}
    )
    assert [a["sessionCode"] for a in body["registrationAgendas"]] == ["WS-DATA"]


# --- admin routes ---------------------------------------------------------------------------------


async def test_create_change_and_soft_delete(client: Client) -> None:
    status, body = await client.admin(
        "POST",
        "registrations",
        {
            "eventCode": "DEVDAY26",
            "registrationCode": "RTEST0001",
            "isTest": True,
            "profile": {"email": "tess@example.com", "firstName": "Tess"},
        },
    )
    assert status == 201
    reg = body["registrations"][0]
    assert (reg["registrationStatusLabel"], reg["isTest"], reg["isActive"]) == ("New", True, True)
    assert reg["profile"]["email"] == "tess@example.com"
    status, again = await client.admin(
        "POST", "registrations", {"eventCode": "DEVDAY26", "registrationCode": "RTEST0001"}
    )
    assert status == 400 and "expected a new, non-blank code" in again["message"]
    status, bad = await client.admin(
        "PATCH", "registrations/ACME/DEVDAY26/RTEST0001", {"registrationStatusLabel": "Gone"}
    )
    assert status == 400
    assert bad["message"].startswith("'registrationStatusLabel' is 'Gone': not a status of event")
    status, bad = await client.admin(
        "PATCH", "registrations/ACME/DEVDAY26/RTEST0001", {"isTest": "yes"}
    )
    assert (status, bad["message"]) == (400, "'isTest' is 'yes': expected true or false")
    status, deleted = await client.admin("DELETE", "registrations/ACME/DEVDAY26/RTEST0001")
    assert status == 200 and deleted["isActive"] is False
    status, body, _ = await client.get(f"{REGS}/DEVDAY26", {"isActive": "false"})
    assert [r["registrationCode"] for r in body["registrations"]] == ["RTEST0001"]
    status, missing = await client.admin("DELETE", "registrations/ACME/DEVDAY26/RNOPE")
    assert (status, missing["message"]) == (
        404,
        "registration 'RNOPE' not found in event 'DEVDAY26'",
    )
    status, missing = await client.admin("POST", "registrations", {"eventCode": "NOPE"})
    assert (status, missing["message"]) == (404, "event 'NOPE' not found in account 'ACME'")


async def test_mass_change_of_5000_is_seen_through_paging(client: Client) -> None:
    status, _ = await client.admin("POST", "events", {"eventCode": "MASS26"})
    assert status == 201
    status, body = await client.admin(
        "POST", "registrations", {"eventCode": "MASS26", "count": 5000}
    )
    assert status == 201 and len(body["registrations"]) == 5000
    created = stamp(body["registrations"][-1]["dateModified"])
    client.sandbox.clock.skew_s = 120
    status, mass = await client.admin(
        "POST",
        "registrations/mass",
        {
            "eventCode": "MASS26",
            "where": {"registrationStatusLabel": "New"},
            "limit": 5000,
            "set": {"registrationStatusLabel": "Attended"},
        },
    )
    assert status == 200 and mass["changed"] == 5000
    assert len(mass["dateModified"]) == 1
    records = await client.page_all(
        f"{REGS}/MASS26",
        {
            "dateModified_after": fmt(created + 60),
            "orderBy": "dateModified_asc",
            "max_results": "1000",
        },
    )
    assert len(records) == 5000
    assert {r["registrationCode"] for r in records} == set(mass["registrationCodes"])
    assert {r["registrationStatusLabel"] for r in records} == {"Attended"}
    assert {r["dateModified"] for r in records} == set(mass["dateModified"])
    calls = [c for c in client.sandbox.calls if "/MASS26" in c["path"]]
    assert [c["records"] for c in calls] == [1000] * 5 + [0]
    assert calls[-1]["status"] == 404


async def test_a_mass_change_has_one_stamp_later_than_every_record(client: Client) -> None:
    """A record edited several times within a second runs ahead of the clock; a mass change that
    includes it still stamps every record with one time, later than each one's own."""
    await client.admin("POST", "events", {"eventCode": "FEW26"})
    _, body = await client.admin("POST", "registrations", {"eventCode": "FEW26", "count": 3})
    codes = [r["registrationCode"] for r in body["registrations"]]
    for label in ("Attended", "Cancelled", "New", "Attended", "Cancelled"):
        await client.admin(
            "PATCH", f"registrations/ACME/FEW26/{codes[0]}", {"registrationStatusLabel": label}
        )
    _, before, _ = await client.get(f"{REGS}/FEW26")
    previous = {r["registrationCode"]: stamp(r["dateModified"]) for r in before["registrations"]}
    status, mass = await client.admin(
        "POST",
        "registrations/mass",
        {"eventCode": "FEW26", "codes": codes, "set": {"registrationStatusLabel": "Attended"}},
    )
    assert status == 200 and len(mass["dateModified"]) == 1
    assert all(stamp(mass["dateModified"][0]) > seen for seen in previous.values())


async def test_admin_input_errors_name_the_field(client: Client) -> None:
    status, body = await client.admin(
        "POST", "registrations/mass", {"eventCode": "SUMMIT26", "set": {}}
    )
    assert (status, body["message"]) == (400, "'set' is {}: expected an object of fields to change")
    status, body = await client.admin(
        "POST",
        "registrations/mass",
        {"eventCode": "SUMMIT26", "where": {"colour": "red"}, "set": {"isTest": True}},
    )
    assert status == 400 and body["message"].startswith("unknown 'where' field 'colour'")
    status, body = await client.admin(
        "POST", "registrations", {"eventCode": "SUMMIT26", "count": 0}
    )
    assert (status, body["message"]) == (400, "'count' is 0: expected an integer 1..100000")
    status, body = await client.admin("POST", "clock", {"skewSeconds": "soon"})
    assert (status, body["message"]) == (400, "'skewSeconds' is 'soon': expected a number")
    async with client.http.post(f"{client.sandbox.url}/_sandbox/faults", data=b"[1]") as resp:
        assert resp.status == 400
        assert (await resp.json())["message"] == "the body is list: expected a JSON object"


async def test_clock_skew_shifts_date_modified(client: Client) -> None:
    status, body = await client.admin("POST", "clock", {"skewSeconds": -120})
    assert status == 200 and body["clockSkewSeconds"] == -120
    status, created = await client.admin("POST", "registrations", {"eventCode": "SUMMIT26"})
    written = stamp(created["registrations"][0]["dateModified"])
    assert abs(written - (time.time() - 120)) < 5


# --- faults ---------------------------------------------------------------------------------------


async def test_fault_5xx_for_the_next_calls_then_recovers(client: Client) -> None:
    status, body = await client.admin("POST", "faults", {"status": 503, "count": 2})
    assert status == 201 and body["statuses"] == [{"status": 503, "remaining": 2}]
    answers = [(await client.get(f"{REGS}/SUMMIT26"))[0] for _ in range(3)]
    assert answers == [503, 503, 200]
    assert [c["status"] for c in client.sandbox.calls] == [503, 503, 200]


async def test_fault_401_with_a_challenge_then_recovers(client: Client) -> None:
    await client.admin("POST", "faults", {"status": 401, "count": 1})
    status, body, headers = await client.get(f"{REGS}/SUMMIT26")
    assert (status, body["message"]) == (401, "Invalid credentials")
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert (await client.get(f"{REGS}/SUMMIT26"))[0] == 200


async def test_fault_latency(client: Client) -> None:
    status, _ = await client.admin("POST", "latency", {"ms": 300})
    assert status == 200
    started = time.monotonic()
    assert (await client.get(f"{REGS}/SUMMIT26"))[0] == 200
    assert time.monotonic() - started >= 0.3
    status, body = await client.admin("DELETE", "faults")
    assert body["latencyMs"] == 0


async def test_fault_malformed_records_then_clean_again(client: Client) -> None:
    status, _ = await client.admin("POST", "faults", {"malformed": 3})
    assert status == 201
    status, body, _ = await client.get(f"{REGS}/SUMMIT26", {"max_results": "4"})
    assert status == 200
    first, second, third, fourth = body["registrations"]
    assert "registrationCode" not in first
    assert second["dateModified"] == "31/13/2026 25:61"
    assert third["profile"] == "<profile unavailable>"
    assert isinstance(fourth["profile"], dict) and "registrationCode" in fourth
    assert len(client.sandbox.calls[-1]["malformed"]) == 3
    _, body, _ = await client.get(f"{REGS}/SUMMIT26", {"max_results": "4"})
    assert all("registrationCode" in r for r in body["registrations"])
    assert (await client.admin("GET", "faults"))[1]["malformed"] == 0


async def test_bad_fault_is_refused(client: Client) -> None:
    status, body = await client.admin("POST", "faults", {"status": 700})
    assert (status, body["message"]) == (400, "'status' is 700: expected an integer 400..599")
    status, body = await client.admin("POST", "faults", {})
    assert status == 400 and body["message"].startswith("give 'status'")


# --- the command ----------------------------------------------------------------------------------


async def test_command_serves_until_sigterm_and_never_logs_the_password(tmp_path: Path) -> None:
    service = ServiceProcess(
        ["certain-sandbox", "--seed", "3", "--password", "pw-42"], tmp_path / "sandbox.log"
    ).start()
    try:
        service.wait_for_log("Certain sandbox listening on")
        match = re.search(
            r"Certain sandbox listening on (http://127\.0\.0\.1:\d+) \(account ACME, user "
            r"signal-api\)",
            service.log(),
        )
        assert match, service.tail()
        auth = {"Authorization": aiohttp.encode_basic_auth("signal-api", "pw-42")}
        url = f"{match.group(1)}{REGS}/SUMMIT26"
        async with aiohttp.ClientSession() as http, http.get(url, headers=auth) as resp:
            assert resp.status == 200
            assert (await resp.json())["completeCollectionSize"] == 10
    finally:
        code = service.stop()
    assert code == 0, service.tail()
    assert "Certain sandbox stopping" in service.log()
    assert "pw-42" not in service.log()


async def test_command_bad_arguments_exit_2() -> None:
    code, _, err = await run_csignal("certain-sandbox", "--registrations", "-3", within=60)
    assert code == 2
    assert "'-3' is not a whole number >= 0" in err

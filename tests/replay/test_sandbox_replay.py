"""The same requests sent to the sandbox, its answers held against the recordings.

Host apps test against the sandbox instead of Zoho, so wherever it answers in another shape
than Zoho does, their tests pass against something Zoho never sends. Each test here sets the
sandbox up like the org in the recording (a record to read, a channel to disable...), sends
the recorded request on v8 and compares status, media type, and every key and JSON type of
the body, skipping what the recording marks as org-specific (see compare.py).

Today the sandbox answers every recording as Zoho did. A difference found later and not fixed
at once goes into KNOWN_DIFFERENCES, which marks it ``xfail(strict=True)`` with the difference
as the reason, so a fix turns the run red until the entry is removed.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from flask_zoho_sync.sandbox import SandboxHandle
from tests.sandbox.conftest import Api

from .compare import differences
from .recorded import Recording, load, names

#: Recordings whose bodies are record data, where a field's null says nothing about its shape.
RECORD_DATA = {"records_list", "record_get_one", "search_criteria", "search_email"}
#: Keys whose null the scenario cannot avoid: a one-page export has no next page token.
NULLABLE = {"bulk_read_completed": frozenset({"next_page_token"})}
#: Keys whose values are Zoho's vocabulary, not org data, so they must match as well.
VERDICT = frozenset({"code", "status", "message"})
SAME_VALUES: dict[str, frozenset[str]] = {
    **{
        name: VERDICT | {"error", "error_description"}
        for name in (
            "oauth_error_invalid_client",
            "oauth_error_invalid_code",
            "oauth_error_access_denied",
            "error_invalid_token",
            "error_authentication_failure",
            "error_discrete_pagination",
        )
    },
    # The 429 message was assembled from the status table, so only the code is held.
    "error_too_many_requests": frozenset({"code", "status"}),
    "oauth_grant": frozenset({"token_type"}),
    "oauth_refresh": frozenset({"token_type"}),
    **{
        name: VERDICT | {"action", "duplicate_field", "expected_data_type", "api_name"}
        for name in (
            "record_insert",
            "record_insert_invalid_phone",
            "record_update",
            "record_upsert",
            "record_delete",
        )
    },
    "records_deleted": frozenset({"type"}),
    "fields_leads": frozenset({"api_name", "data_type", "json_type", "system_mandatory"}),
    "watch_enable": VERDICT,
    "watch_disable": VERDICT,
    "notification_callback": frozenset({"operation", "module"}),
    "bulk_read_create": VERDICT | {"operation", "state"},
    "bulk_read_completed": frozenset({"operation", "state", "file_type"}),
    "bulk_write_upload": VERDICT,
    "bulk_write_create": VERDICT,
    "bulk_write_completed": frozenset({"status", "code", "type", "operation"}),
}
#: Lists whose elements are paired by a key rather than by position: (list key, pairing key).
PAIRED_BY = {"fields_leads": ("fields", "api_name"), "records_deleted": ("data", "type")}


@dataclass
class World:
    """The sandbox and an authorised client on it, for one scenario."""

    sandbox: SandboxHandle
    api: Api

    def crm(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A CRM call by v8 path (``/crm/v8/...`` or ``/crm/bulk/v8/...``), authorised."""
        headers = {
            "Authorization": f"Zoho-oauthtoken {self.api.token}",
            **kwargs.pop("headers", {}),
        }
        return self.api.session.request(
            method, self.sandbox.url + path, headers=headers, timeout=30, **kwargs
        )

    def token_call(self, **form: str) -> requests.Response:
        return self.api.session.post(f"{self.sandbox.url}/oauth/v2/token", data=form, timeout=10)

    def lead(self, **fields: Any) -> str:
        return str(self.sandbox.create_record("Leads", {"Last_Name": "Replay", **fields})["id"])

    def enable_watch(self, channel_id: str = "10000", **extra: Any) -> requests.Response:
        channel = {
            "channel_id": channel_id,
            "events": ["Leads.all"],
            "notify_url": "http://127.0.0.1:9/zoho/notify",
            "token": "TOKEN_FOR_VERIFICATION",
            **extra,
        }
        response = self.crm("POST", "/crm/v8/actions/watch", json={"watch": [channel]})
        assert response.status_code < 300, response.text
        return response


Scenario = Callable[[World, Recording], requests.Response]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = function
        return function

    return register


def recorded_request(world: World, recording: Recording, **kwargs: Any) -> requests.Response:
    return world.crm(recording.method, recording.v8_path(), params=recording.query, **kwargs)


# -- OAuth ------------------------------------------------------------------------------------


@scenario("oauth_grant")
def _grant(world: World, recording: Recording) -> requests.Response:
    redirect = "https://app.example/zoho/callback"
    consent = world.api.session.post(
        f"{world.sandbox.url}/oauth/v2/auth",
        data={
            "client_id": world.sandbox.client_id,
            "response_type": "code",
            "redirect_uri": redirect,
            "scope": "ZohoCRM.modules.ALL",
            "access_type": "offline",
            "prompt": "consent",
            "state": "replay",
            "decision": "authorise",
        },
        allow_redirects=False,
        timeout=10,
    )
    code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
    return world.token_call(
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect,
        client_id=world.sandbox.client_id,
        client_secret=world.sandbox.client_secret,
    )


@scenario("oauth_refresh")
def _refresh(world: World, recording: Recording) -> requests.Response:
    return world.token_call(
        grant_type="refresh_token",
        refresh_token=world.api.grant["refresh_token"],
        client_id=world.sandbox.client_id,
        client_secret=world.sandbox.client_secret,
    )


@scenario("oauth_error_invalid_client")
def _invalid_client(world: World, recording: Recording) -> requests.Response:
    return world.token_call(
        grant_type="authorization_code",
        code="1000.not-a-grant",
        client_id="1000.UNKNOWNCLIENT",
        client_secret="wrong",
    )


@scenario("oauth_error_invalid_code")
def _invalid_code(world: World, recording: Recording) -> requests.Response:
    return world.token_call(
        grant_type="authorization_code",
        code="1000.expired.grant",
        redirect_uri="https://app.example/zoho/callback",
        client_id=world.sandbox.client_id,
        client_secret=world.sandbox.client_secret,
    )


@scenario("oauth_error_access_denied")
def _access_denied(world: World, recording: Recording) -> requests.Response:
    response = _refresh(world, recording)
    for _ in range(12):  # the fixture's own refresh counts too; ten per ten minutes
        response = _refresh(world, recording)
        if "error" in response.json():
            break
    return response


# -- records ----------------------------------------------------------------------------------


@scenario("records_list")
def _records_list(world: World, recording: Recording) -> requests.Response:
    for name in ("First", "Second"):
        world.sandbox.convert_lead(world.lead(Last_Name=name, Email=f"{name}@example.com"))
    return world.crm("GET", recording.v8_path(), params={**recording.query, "per_page": "1"})


@scenario("record_get_one")
def _record_get_one(world: World, recording: Recording) -> requests.Response:
    record_id = world.lead(
        Last_Name="Sam",
        Company="SolutionsTech",
        Email="sam@example.com",
        Phone="555-555-5555",
        Lead_Source="Advertisement",
    )
    return world.crm("GET", f"/crm/v8/Leads/{record_id}")


@scenario("coql_select")
def _coql_select(world: World, recording: Recording) -> requests.Response:
    """The recorded query less its org's own multi-select field (Languages_Known), which
    the sandbox's Contacts do not have."""
    for first in ("Patricia", "Steve"):
        world.sandbox.create_record(
            "Contacts", {"First_Name": first, "Last_Name": "Boyle", "Lead_Source": "Advertisement"}
        )
    world.sandbox.create_record("Contacts", {"Last_Name": "Boyle", "Lead_Source": "Partner"})
    query = (
        "select Last_Name, First_Name, Full_Name, Lead_Source from Contacts "
        "where ((Last_Name = 'Boyle') and (Lead_Source = Advertisement)) limit 2"
    )
    return world.crm("POST", recording.v8_path(), json={"select_query": query})


@scenario("search_criteria")
def _search_criteria(world: World, recording: Recording) -> requests.Response:
    world.lead(Last_Name="Burns,B", First_Name="Mary", Email="burns.mary@example.com")
    return recorded_request(world, recording)


@scenario("search_email")
def _search_email(world: World, recording: Recording) -> requests.Response:
    world.lead(Email=recording.query["email"], Company="ABC")
    return recorded_request(world, recording)


@scenario("search_no_match")
def _search_no_match(world: World, recording: Recording) -> requests.Response:
    world.lead(Email="somebody@example.com")
    return recorded_request(world, recording)


@scenario("record_insert")
def _insert(world: World, recording: Recording) -> requests.Response:
    body = {"data": [{"Last_Name": "Boyle"}, {"Last_Name": "Smith"}], "trigger": []}
    return recorded_request(world, recording, json=body)


@scenario("record_insert_invalid_phone")
def _insert_invalid_phone(world: World, recording: Recording) -> requests.Response:
    body = {"data": [{"Last_Name": "Boyle", "Phone": "call me maybe"}], "trigger": []}
    return recorded_request(world, recording, json=body)


@scenario("record_update")
def _update(world: World, recording: Recording) -> requests.Response:
    record_id = world.lead()
    body = {"data": [{"id": record_id, "City": "Chennai"}], "trigger": []}
    return recorded_request(world, recording, json=body)


@scenario("record_upsert")
def _upsert(world: World, recording: Recording) -> requests.Response:
    world.lead(Email="known@example.com")
    body = {
        "data": [
            {"Last_Name": "Known", "Email": "known@example.com"},
            {"Last_Name": "New", "Email": "new@example.com"},
        ],
        "duplicate_check_fields": ["Email"],
        "trigger": [],
    }
    return recorded_request(world, recording, json=body)


@scenario("record_delete")
def _delete(world: World, recording: Recording) -> requests.Response:
    ids = ",".join([world.lead(), world.lead()])
    return world.crm("DELETE", recording.v8_path(), params={"ids": ids, "wf_trigger": "false"})


@scenario("records_deleted")
def _deleted(world: World, recording: Recording) -> requests.Response:
    world.sandbox.delete_record("Leads", world.lead())
    world.sandbox.delete_record("Leads", world.lead(), permanent=True)
    return recorded_request(world, recording)


# -- metadata ---------------------------------------------------------------------------------


@scenario("fields_leads")
def _fields(world: World, recording: Recording) -> requests.Response:
    return recorded_request(world, recording)


@scenario("org")
def _org(world: World, recording: Recording) -> requests.Response:
    world.sandbox.set_org(phone=recording.body["org"][0]["phone"])
    return recorded_request(world, recording)


@scenario("current_user")
def _current_user(world: World, recording: Recording) -> requests.Response:
    return recorded_request(world, recording)


# -- notifications ----------------------------------------------------------------------------


@scenario("watch_enable")
def _watch_enable(world: World, recording: Recording) -> requests.Response:
    return world.enable_watch()


CONDITION = [
    {
        "type": "field_selection",
        "module": {"api_name": "Leads"},
        "field_selection": {"group_operator": "or", "group": [{"field": {"api_name": "Email"}}]},
    }
]


@scenario("watch_details")
def _watch_details(world: World, recording: Recording) -> requests.Response:
    world.enable_watch(
        channel_id="1000000068001",
        notification_condition=CONDITION,
        return_affected_field_values=True,
        notify_on_related_action=False,
    )
    return world.crm("GET", "/crm/v8/actions/watch")


@scenario("watch_disable")
def _watch_disable(world: World, recording: Recording) -> requests.Response:
    world.enable_watch()
    return recorded_request(world, recording)


class Delivered:
    """A notification the sandbox sent, dressed as a response so it compares the same way."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.status_code = 200
        self.headers = {"Content-Type": "application/json"}

    def json(self) -> dict[str, Any]:
        return self.payload


@scenario("notification_callback")
def _notification(world: World, recording: Recording) -> Any:
    world.enable_watch(channel_id="1000000068001")
    world.lead(Email="notified@example.com")
    deliveries = world.sandbox.notifications(wait=5.0)
    assert deliveries, "the sandbox sent no notification"
    return Delivered(deliveries[0]["payload"])


# -- bulk -------------------------------------------------------------------------------------


def poll(world: World, path: str, done: Callable[[dict[str, Any]], bool]) -> requests.Response:
    response = world.crm("GET", path)
    for _ in range(20):
        if response.status_code == 200 and done(response.json()):
            return response
        world.sandbox.advance_clock(60)
        response = world.crm("GET", path)
    return response


@scenario("bulk_read_create")
def _bulk_read_create(world: World, recording: Recording) -> requests.Response:
    world.lead()
    return world.crm("POST", recording.v8_path(), json={"query": {"module": {"api_name": "Leads"}}})


@scenario("bulk_read_completed")
def _bulk_read_completed(world: World, recording: Recording) -> requests.Response:
    created = _bulk_read_create(world, load("bulk_read_create"))
    job_id = created.json()["data"][0]["details"]["id"]
    return poll(
        world,
        f"/crm/bulk/v8/read/{job_id}",
        lambda body: body["data"][0].get("state") == "COMPLETED",
    )


def upload(world: World) -> requests.Response:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Leads.csv", "Last_Name,Email\nBulk,bulk@example.com\n")
    zgid = world.crm("GET", "/crm/v8/org").json()["org"][0]["zgid"]
    return world.crm(
        "POST",
        "/crm/v8/upload",
        headers={"feature": "bulk-write", "X-CRM-ORG": str(zgid)},
        files={"file": ("Leads.zip", buffer.getvalue(), "application/zip")},
    )


def create_write_job(world: World) -> requests.Response:
    file_id = upload(world).json()["details"]["file_id"]
    resource = {
        "type": "data",
        "module": {"api_name": "Leads"},
        "file_id": file_id,
        "field_mappings": [
            {"api_name": "Last_Name", "index": 0},
            {"api_name": "Email", "index": 1},
        ],
    }
    body = {"operation": "insert", "character_encoding": "UTF-8", "resource": [resource]}
    return world.crm("POST", "/crm/bulk/v8/write", json=body)


@scenario("bulk_write_upload")
def _bulk_write_upload(world: World, recording: Recording) -> requests.Response:
    return upload(world)


@scenario("bulk_write_create")
def _bulk_write_create(world: World, recording: Recording) -> requests.Response:
    return create_write_job(world)


@scenario("bulk_write_completed")
def _bulk_write_completed(world: World, recording: Recording) -> requests.Response:
    job_id = create_write_job(world).json()["details"]["id"]
    return poll(world, f"/crm/bulk/v8/write/{job_id}", lambda body: body["status"] == "COMPLETED")


# -- errors -----------------------------------------------------------------------------------


@scenario("error_invalid_token")
def _invalid_token(world: World, recording: Recording) -> requests.Response:
    headers = {"Authorization": "Zoho-oauthtoken 1000.0123456789abcdef.0123456789abcdef"}
    return recorded_request(world, recording, headers=headers)


@scenario("error_authentication_failure")
def _authentication_failure(world: World, recording: Recording) -> requests.Response:
    return world.api.session.get(
        world.sandbox.url + recording.v8_path(), params=recording.query, timeout=10
    )


@scenario("error_discrete_pagination")
def _discrete_pagination(world: World, recording: Recording) -> requests.Response:
    return world.crm("GET", recording.v8_path(), params={"fields": "Last_Name", **recording.query})


@scenario("error_too_many_requests")
def _too_many_requests(world: World, recording: Recording) -> requests.Response:
    world.sandbox.faults(rate_429=1.0)
    return recorded_request(world, recording)


# -- the comparison ---------------------------------------------------------------------------

#: What the sandbox still answers differently from a recording (none today). Each reason is
#: the difference itself; remove the entry once the sandbox answers like Zoho.
KNOWN_DIFFERENCES: dict[str, str] = {}


def media_type(headers: Any) -> str:
    return str(headers.get("Content-Type", "")).split(";")[0].strip().lower()


def mismatches(recording: Recording, response: Any) -> list[str]:
    found: list[str] = []
    if response.status_code != recording.status:
        found.append(f"status {response.status_code} where Zoho answers {recording.status}")
    wanted_type = media_type(recording.headers) or "application/json"
    if media_type(response.headers) != wanted_type:
        found.append(
            f"Content-Type {media_type(response.headers) or 'missing'} where Zoho sends "
            f"{wanted_type}"
        )
    if recording.body is None:
        return found
    try:
        body = response.json()
    except ValueError:
        return [*found, "body is not JSON"]
    options: dict[str, Any] = {
        "skip": recording.org_specific_keys,
        "values_vary": recording.name in RECORD_DATA,
        "nullable": NULLABLE.get(recording.name, frozenset()),
        "same_values": SAME_VALUES.get(recording.name, frozenset()),
    }
    if recording.name not in PAIRED_BY:
        found.extend(differences(recording.body, body, **options))
        return collapsed(found)
    list_key, pair_key = PAIRED_BY[recording.name]
    recorded = recording.body[list_key]
    partners = paired_elements(recorded, body, list_key, pair_key)
    for element, partner in zip(recorded, partners, strict=True):
        where = f"$.{list_key}[{element[pair_key]}]"
        if partner is None:
            found.append(f"{where}: missing")
        else:
            found.extend(differences(element, partner, path=where, **options))
    return collapsed(found)


def collapsed(found: list[str]) -> list[str]:
    """One line per difference, not one per list element it repeats in."""
    return list(dict.fromkeys(re.sub(r"\[\d+\]", "[]", line) for line in found))


def paired_elements(
    recorded: list[dict[str, Any]], body: Any, list_key: str, pair_key: str
) -> list[Any]:
    """For each recorded element, the answer's element of the same kind (the same field,
    the same type of deletion), whatever order the answer lists them in; None if absent."""
    elements = body.get(list_key) if isinstance(body, dict) else None
    by_kind: dict[Any, Any] = {}
    for element in elements if isinstance(elements, list) else []:
        if isinstance(element, dict):
            by_kind.setdefault(element.get(pair_key), element)
    return [by_kind.get(element[pair_key]) for element in recorded]


def replay_cases() -> Iterator[Any]:
    for name in sorted(SCENARIOS):
        reason = KNOWN_DIFFERENCES.get(name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.fixture
def world(zoho_sandbox: SandboxHandle) -> Iterator[World]:
    api = Api(zoho_sandbox)
    try:
        yield World(zoho_sandbox, api)
    finally:
        api.close()


@pytest.mark.parametrize("name", list(replay_cases()))
def test_the_sandbox_answers_as_recorded(name: str, world: World) -> None:
    recording = load(name)
    response = SCENARIOS[name](world, recording)

    found = mismatches(recording, response)

    assert not found, f"{recording.title}: " + "; ".join(found)


def test_every_recording_is_replayed_to_the_sandbox() -> None:
    assert sorted(SCENARIOS) == names()
    assert set(KNOWN_DIFFERENCES) <= set(SCENARIOS)


def test_an_empty_answer_is_labelled_as_zoho_labels_it(world: World) -> None:
    """Zoho labels its empty 204 answers JSON (headers in search_no_match); a client that
    branches on Content-Type must see the same label from the sandbox."""
    recorded = load("search_no_match")

    response = world.crm("GET", "/crm/v8/Leads/deleted", params={"type": "all"})

    assert response.status_code == 204
    assert media_type(response.headers) == media_type(recorded.headers)


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_edit_and_delete_notifications_have_the_recorded_keys(operation: str, world: World) -> None:
    """Zoho documents one callback shape (recorded for an insert); edits and deletes carry
    the same keys, so a host's handler written against one reads them all."""
    recording = load("notification_callback")
    world.enable_watch(channel_id="1000000068001")
    record_id = world.lead(Email="notified@example.com")
    if operation == "update":
        world.sandbox.update_record("Leads", record_id, {"City": "Pune"})
    else:
        world.sandbox.delete_record("Leads", record_id)

    deliveries = world.sandbox.notifications(wait=5.0)
    [payload] = [d["payload"] for d in deliveries if d["operation"] == operation]

    assert payload["ids"] == [record_id]
    assert differences(recording.request_body, payload, same_values={"module"}) == []

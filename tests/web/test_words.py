"""No internal identifier reaches a page.

Every admin page is rendered in a variety of states (not connected; connected with a
mapping, runs of every kind, trigger and outcome, failures, an inverted opt-out; refusals
and error pages) and its visible text (what a reader sees, not attributes or scripts) is
scanned for the codes the sync stores (``since_last``, ``to_host``, ``pull · ids``, raw run
statuses, Zoho's type names), counts whose noun disagrees ("1 calls"), "a" before a vowel
sound ("a email") and template debris.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from werkzeug.test import TestResponse

from flask_zoho_sync.models import FieldMap, RecordHistory, Run
from flask_zoho_sync.sandbox.fields import standard_fields
from tests.web.conftest import PREFIX, Admin

#: Patterns that must never appear in a page's visible text.
FORBIDDEN = {
    "a stored mode": re.compile(r"\b(since_last|outbox)\b"),
    "a stored direction": re.compile(r"\b(to_zoho|to_host)\b"),
    "a stored policy": re.compile(r"\b(host_wins|zoho_wins)\b"),
    "a stored status": re.compile(r"\bneeds_confirmation\b"),
    "a stored trigger": re.compile(r"\badmin-(now|plan)\b"),
    "a stored count key": re.compile(r"\b(skipped_\w+|to_\w+\.\w+)\b"),
    "kind · mode": re.compile(r"\b(sync|push|pull) · (all|ids|outbox|since_last)\b"),
    "Zoho's type name": re.compile(
        r"\b(ownerlookup|userlookup|multiselectpicklist|picklist|bigint|textarea|datetime|"
        r"autonumber)\b"
    ),
    "a count whose noun disagrees": re.compile(
        r"(?<![\d,.])1 (calls|credits|records|runs|errors|contacts|fields|changes|links|"
        r"mappings|record changes|API calls)\b"
    ),
    "'a' before a vowel sound": re.compile(r"\b[Aa] (email|integer|error|update|item|API)\b"),
    "Python's None": re.compile(r"\bNone\b"),
    "template debris": re.compile(r"\{\{|\}\}|\{%|%\}"),
}
#: Codes that must never be the whole text of a cell, option or line.
BARE_CODES = {
    "succeeded",
    "partial",
    "failed",
    "running",
    "interrupted",
    "stopped",
    "paused",
    "create",
    "update",
    "delete",
    "link",
    "error",
    "sync",
    "push",
    "pull",
    "all",
    "ids",
    "schedule",
    "cli",
    "auto",
    "notify",
    "admin",
    "boolean",
    "both",
}


class _VisibleText(HTMLParser):
    """The text a reader sees: text nodes outside script and style, one per entry."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(" ".join(data.split()))


def visible_parts(html: str) -> list[str]:
    reader = _VisibleText()
    reader.feed(html)
    return reader.parts


def identifiers_in(html: str) -> list[str]:
    """What a page shows that it should not, each with the text around it."""
    parts = visible_parts(html)
    found = [f"bare code {part!r}" for part in parts if part.strip(" .,:;()") in BARE_CODES]
    text = " ".join(parts)
    for name, pattern in FORBIDDEN.items():
        for match in pattern.finditer(text):
            start = max(0, match.start() - 40)
            found.append(f"{name}: …{text[start : match.end() + 40]}…")
    return found


def test_the_scanner_catches_what_it_is_for() -> None:
    """The words test can fail: each kind of slip is seen, and attributes are not text."""
    slips = [
        "<td>pull · ids</td>",
        "<p>Modified since_last</p>",
        "<td>1 calls, 3 credits</td>",
        "<p>Enter a email</p>",
        "<td>succeeded</td>",
        "<option>ownerlookup</option>",
        "<p>{{ run.kind }}</p>",
    ]
    for slip in slips:
        assert identifiers_in(slip), slip
    clean = (
        '<td data-x="since_last"><a href="/h?direction=to_host">To this site</a></td>'
        "<td>1 call, 2 credits, 1,001 records</td><script>var a = 'to_zoho';</script>"
    )
    assert identifiers_in(clean) == []


def _zoho_field_metadata() -> list[dict[str, object]]:
    return [spec.metadata("Leads") for spec in standard_fields("Leads")]


def _seed_everything(admin: Admin) -> tuple[list[int], str]:
    """Connected, Leads mapped (an inverted opt-out included), runs of every kind, trigger
    and outcome with their record changes; returns the run ids and a contact id."""
    admin.store_connection(org={"domain_name": "org20051"})
    admin.update_settings(
        module="Leads",
        zoho_fields=_zoho_field_metadata(),
        zoho_fields_module="Leads",
        zoho_fields_fetched_at=datetime.now(timezone.utc),
        last_pull_at=datetime.now(timezone.utc) - timedelta(minutes=5),
    )
    host = admin.host
    with host.app.app_context():
        session = host.db.session
        session.add(host.Group(name="Newsletter"))
        contact = host.Contact(first_name="Ada", last_name="Lovelace", email="ada@example.org")
        session.add(contact)
        session.add_all(
            [
                FieldMap(kind="field", host_key="first_name", zoho_field="First_Name"),
                FieldMap(kind="field", host_key="email", zoho_field="Email"),
                FieldMap(
                    kind="field",
                    host_key="company",
                    zoho_field="Full_Name",
                    direction="to_host",
                    policy="zoho_wins",
                ),
                FieldMap(kind="group", host_key="Newsletter", zoho_field="Converted__s"),
                FieldMap(
                    kind="system",
                    host_key="subscription",
                    zoho_field="Email_Opt_Out",
                    inverted=True,
                ),
            ]
        )
        session.flush()
        contact_id = str(contact.id)
        start = datetime.now(timezone.utc) - timedelta(days=2)
        run_ids = []
        shapes = [
            ("sync", "since_last", "succeeded", "admin"),
            ("pull", "ids", "partial", "notify"),
            ("push", "outbox", "failed", "auto"),
            ("sync", "all", "needs_confirmation", "admin-now"),
            ("pull", "since_last", "paused", "schedule"),
            ("sync", "all", "interrupted", "cli"),
            ("push", "outbox", "stopped", "auto"),
            ("pull", "since_last", "running", "schedule"),
            ("pull", "since_last", "succeeded", "schedule"),  # changed nothing
        ]
        for n, (kind, mode, status, trigger) in enumerate(shapes):
            run = Run(
                kind=kind,
                mode=mode,
                status=status,
                trigger=trigger,
                started_at=start + timedelta(hours=n),
                finished_at=None if status == "running" else start + timedelta(hours=n, minutes=1),
                counts={
                    "to_zoho.create": 1,
                    "to_host.update": 1,
                    "to_host.error": 1,
                    "to_host.skipped_blank": 1,
                    "to_host.skipped_deleted": 2,
                }
                if n < 8
                else {},
                calls=1,
                credits=1,
                progress_done=1,
                progress_total=1,
                error="Zoho said no" if status not in ("succeeded", "running") else None,
            )
            session.add(run)
            session.flush()
            run_ids.append(run.id)
            if n == 8:
                continue
            for direction, action in (
                ("to_zoho", "create"),
                ("to_host", "update"),
                ("to_host", "link"),
                ("to_zoho", "delete"),
                ("to_host", "error"),
            ):
                session.add(
                    RecordHistory(
                        run_id=run.id,
                        contact_id=contact_id,
                        zoho_id="5001",
                        direction=direction,
                        action=action,
                        reason="DUPLICATE_DATA: the value exists" if action == "error" else None,
                        error_code="DUPLICATE_DATA" if action == "error" else None,
                        changes={
                            "fields": {
                                "First name (First_Name)": ["Ada", "Augusta"],
                                "Subscription status (Email_Opt_Out)": [True, False],
                            },
                            "conflicts": [
                                {
                                    "key": "field:first_name",
                                    "host": "Ada",
                                    "zoho": "Augusta",
                                    "winner": "zoho",
                                    "reason": "the newest change wins",
                                }
                            ],
                        },
                    )
                )
        session.add(
            RecordHistory(
                contact_id=None,
                zoho_id="5002",
                direction="to_host",
                action="error",
                reason="Zoho's record has no email",
                error_code="NO_EMAIL",
            )
        )
        session.commit()
    return run_ids, contact_id


def _pages(admin: Admin, run_ids: list[int], contact_id: str) -> Iterator[tuple[str, str]]:
    """(what, html) for every admin page of this state."""
    for path in (
        "/",
        "/settings",
        "/mapping",
        "/sync",
        "/history",
        "/history?quiet=1",
        "/history?direction=to_host&outcome=failed",
        f"/history/contacts/{contact_id}",
        "/history/contacts/404404",
    ):
        yield path, admin.text(path)
    for run_id in run_ids:
        for query in ("", "?outcome=failed", "?outcome=skipped", "?email=ada"):
            yield f"/history/runs/{run_id}{query}", admin.text(f"/history/runs/{run_id}{query}")
    yield (
        "overview fragment",
        admin.client.get(
            f"{PREFIX}/", headers={"HX-Request": "true", "HX-Target": "zs-overview"}
        ).get_data(as_text=True),
    )


def _refusals(admin: Admin) -> Iterator[tuple[str, TestResponse]]:
    yield "a bad history filter", admin.get("/history?from=yesterday")
    yield "a bad run filter", admin.get("/history/runs/1?outcome=sideways")
    yield "a bad page number", admin.get("/history?page=nope")
    yield "the consent declined", admin.get("/oauth/callback?error=access_denied")
    yield "a settings refusal", admin.post("/settings", {"module": "Deals", "time_zone": "Mars"})


@pytest.mark.parametrize("state", ["fresh", "in use"])
def test_no_internal_identifier_reaches_a_page(admin: Admin, state: str) -> None:
    run_ids: list[int] = []
    contact_id = "1"
    if state == "in use":
        run_ids, contact_id = _seed_everything(admin)
    pages = list(_pages(admin, run_ids, contact_id))
    pages += [(what, response.get_data(as_text=True)) for what, response in _refusals(admin)]
    if state == "in use":
        refused = admin.post(
            "/mapping/field/add",
            {"host_key": "phone", "zoho_field": "Converted__s", "direction": "both"},
        )
        pages.append(("a refused mapping", refused.get_data(as_text=True)))
        switch = admin.post(
            "/settings", {"module": "Contacts", "time_zone": "UTC", "conflict_policy": "newest"}
        )
        pages.append(("a module switch to confirm", switch.get_data(as_text=True)))
    problems = {what: found for what, html in pages if (found := identifiers_in(html))}
    assert problems == {}
    assert len(pages) >= (50 if state == "in use" else 15)

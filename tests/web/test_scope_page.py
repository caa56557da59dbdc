"""The "What syncs" page: the admin sees and saves the scope (groups, the app's named
filters, Zoho conditions, on-leave, match key), is told plainly what was refused, and sees
the records a first sync left unlinked as ambiguous."""

from __future__ import annotations

from flask_zoho_sync.models import RecordHistory
from flask_zoho_sync.scope import read_scope
from tests.web.conftest import Admin


def _groups(admin: Admin, *names: str) -> None:
    with admin.host.app.app_context():
        session = admin.host.db.session
        session.add_all([admin.host.Group(name=name) for name in names])
        session.commit()


def _scope(admin: Admin):  # type: ignore[no-untyped-def]
    with admin.host.app.app_context():
        return read_scope(admin.host.db.session, admin.host.app.config)


def test_the_page_is_in_the_nav_and_shows_the_app_s_groups_and_filters(admin: Admin) -> None:
    _groups(admin, "VIP", "Press")
    admin.state.adapter.add_scope_filter("Customers", admin.host.Contact.company.is_not(None))
    page = admin.text("/scope")
    assert 'href="/admin/zoho/scope"' in admin.text("/settings")
    assert 'value="VIP"' in page and 'value="Press"' in page
    assert '<option value="Customers"' in page


def test_saving_the_scope_by_htmx_swaps_the_form_and_stores_it(admin: Admin) -> None:
    _groups(admin, "VIP")
    admin.state.adapter.add_scope_filter("Customers", admin.host.Contact.company.is_not(None))
    answer = admin.htmx_post(
        "/scope",
        {
            "host_groups": ["VIP"],
            "host_filter": "Customers",
            "zoho_conditions": "Lead_Status != Junk Lead\nOwner = 4876876000000225001",
            "on_leave": "delete",
            "match_key": "field",
            "match_field": "phone",
        },
    )
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200, body
    assert 'id="zs-scope"' in body
    assert "<h1>" not in body  # the form only
    assert "The next sync reads everything again" in body
    scope = _scope(admin)
    assert scope.host_groups == ("VIP",) and scope.host_filter == "Customers"
    assert [c.text() for c in scope.zoho] == [
        "Lead_Status != Junk Lead",
        "Owner = 4876876000000225001",
    ]
    assert scope.on_leave == "delete" and scope.match_key == "field:phone"


def test_a_refused_scope_saves_nothing_and_says_why(admin: Admin) -> None:
    answer = admin.post("/scope", {"zoho_conditions": "Lead_Status is Junk", "on_leave": "unlink"})
    assert answer.status_code == 422
    assert "Nothing was saved" in answer.get_data(as_text=True)
    assert _scope(admin).zoho == ()
    unknown = admin.post("/scope", {"host_filter": "Nobody"})
    assert unknown.status_code == 422
    assert "no scope filter" in unknown.get_data(as_text=True)


def test_ambiguous_matches_are_listed(admin: Admin) -> None:
    with admin.host.app.app_context():
        session = admin.host.db.session
        session.add(
            RecordHistory(
                zoho_id="900077",
                direction="to_host",
                action="error",
                error_code="AMBIGUOUS_MATCH",
                changes={},
                reason="More than one record has the match key field:phone = '222'",
            )
        )
        session.commit()
    page = admin.text("/scope")
    assert "900077" in page and "field:phone = &#39;222&#39;" in page

"""The mapping editor: rows between host fields, system values and groups and Zoho fields."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import ApiUsage, FieldMap
from flask_zoho_sync.zoho.errors import ZohoReconnectRequired, ZohoUnavailable
from tests.web.conftest import Admin


def _rows(admin: Admin) -> list[tuple[str, str, str, str, str | None, bool]]:
    with admin.host.app.app_context():
        rows = admin.state.db.session.scalars(sa.select(FieldMap).order_by(FieldMap.id)).all()
        return [(r.kind, r.host_key, r.zoho_field, r.direction, r.policy, r.inverted) for r in rows]


def _row_id(admin: Admin, host_key: str) -> int:
    with admin.host.app.app_context():
        return int(
            admin.state.db.session.scalar(
                sa.select(FieldMap.id).where(FieldMap.host_key == host_key)
            )
        )


def _add_groups(admin: Admin, *names: str) -> None:
    with admin.host.app.app_context():
        session = admin.host.db.session
        session.add_all(admin.host.Group(name=name) for name in names)
        session.commit()


@pytest.fixture
def editor(connected_admin: Admin) -> Admin:
    """Connected to the sandbox, Leads chosen, Zoho's fields loaded through the page."""
    connected_admin.update_settings(module="Leads")
    response = connected_admin.post("/mapping/refresh")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return connected_admin


def test_without_a_module_the_editor_sends_the_admin_to_the_settings(admin: Admin) -> None:
    text = admin.text("/mapping")
    assert "Choose a Zoho module first" in text
    assert 'href="/admin/zoho/settings"' in text


def test_not_connected_the_editor_offers_to_connect(admin: Admin) -> None:
    admin.update_settings(module="Leads")
    text = admin.text("/mapping")
    assert "Connect Zoho CRM first" in text
    assert 'action="/admin/zoho/connect"' in text


def test_connected_without_zoho_fields_the_editor_offers_to_load_them(
    connected_admin: Admin,
) -> None:
    connected_admin.update_settings(module="Leads")
    text = connected_admin.text("/mapping")
    assert "Load the Zoho fields" in text
    assert 'action="/admin/zoho/mapping/refresh"' in text


def test_refreshing_fetches_the_modules_fields_from_zoho_and_records_the_calls(
    editor: Admin, zoho_sandbox: Any
) -> None:
    stored = editor.settings()
    assert stored.zoho_fields_module == "Leads"
    assert any(meta["api_name"] == "Email" for meta in stored.zoho_fields)
    assert stored.zoho_fields_fetched_at is not None
    with editor.host.app.app_context():
        calls = editor.state.db.session.scalar(sa.select(sa.func.sum(ApiUsage.calls)))
    assert calls and calls >= 1
    text = editor.text("/mapping")
    assert "Refresh Zoho fields" in text
    assert "Email (Email, email)" in text


def test_refreshing_picks_up_fields_added_in_zoho(editor: Admin, zoho_sandbox: Any) -> None:
    zoho_sandbox.add_custom_field("Leads", api_name="Newsletter", data_type="boolean")
    assert "Newsletter" not in editor.text("/mapping")
    editor.post("/mapping/refresh")
    assert "Newsletter (Newsletter, checkbox)" in editor.text("/mapping")


def test_a_compatible_pair_is_added(editor: Admin) -> None:
    response = editor.post(
        "/mapping/field/add",
        {
            "host_key": "first_name",
            "zoho_field": "First_Name",
            "direction": "both",
            "policy": "zoho_wins",
        },
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "Added." in response.get_data(as_text=True)
    assert _rows(editor) == [("field", "first_name", "First_Name", "both", "zoho_wins", False)]


def test_an_incompatible_pair_is_refused_with_the_reason_and_nothing_is_saved(
    editor: Admin,
) -> None:
    response = editor.post(
        "/mapping/field/add",
        {"host_key": "first_name", "zoho_field": "Email_Opt_Out", "direction": "both"},
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Not added: host field First name (text) cannot be stored in Zoho field " in text
    assert "Email_Opt_Out (boolean) and read back unchanged" in text
    assert _rows(editor) == []


def test_a_read_only_zoho_field_is_refused_both_ways_but_allowed_to_the_host(
    editor: Admin,
) -> None:
    refused = editor.post("/mapping/field/add", {"host_key": "company", "zoho_field": "Full_Name"})
    assert refused.status_code == 400
    assert "Zoho does not let the API write Full_Name" in refused.get_data(as_text=True)
    allowed = editor.post(
        "/mapping/field/add",
        {"host_key": "company", "zoho_field": "Full_Name", "direction": "to_host"},
    )
    assert allowed.status_code == 302
    assert _rows(editor) == [("field", "company", "Full_Name", "to_host", None, False)]


def test_a_zoho_field_can_be_used_only_once(editor: Admin) -> None:
    editor.post("/mapping/field/add", {"host_key": "email", "zoho_field": "Email"})
    response = editor.post("/mapping/field/add", {"host_key": "company", "zoho_field": "Email"})
    assert response.status_code == 400
    assert "a Zoho field can take only one value" in response.get_data(as_text=True)
    assert len(_rows(editor)) == 1


def test_unknown_values_in_the_form_are_refused(editor: Admin) -> None:
    for form in (
        {"host_key": "password", "zoho_field": "Email"},
        {"host_key": "email", "zoho_field": "No_Such_Field"},
        {"host_key": "email", "zoho_field": "Email", "direction": "sideways"},
        {"host_key": "email", "zoho_field": "Email", "policy": "loudest"},
    ):
        assert editor.post("/mapping/field/add", form).status_code == 400, form
    assert _rows(editor) == []


def test_a_lossy_pair_is_added_with_a_warning(editor: Admin) -> None:
    response = editor.post(
        "/mapping/field/add",
        {"host_key": "company", "zoho_field": "Designation"},
        follow_redirects=True,
    )
    text = response.get_data(as_text=True)
    assert "Added, with a warning" in text
    assert "values longer than 100 characters do not fit in Designation" in text
    assert "These rows sync, but some values may be cut or refused" in text


def test_with_htmx_an_added_row_swaps_its_section_and_the_summary(editor: Admin) -> None:
    response = editor.htmx_post(
        "/mapping/field/add", {"host_key": "company", "zoho_field": "Designation"}
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'id="zs-map-fields"' in text
    assert 'id="zs-mapping-summary"' in text and 'hx-swap-oob="true"' in text
    assert "<html" not in text and 'id="zs-map-groups"' not in text
    refused = editor.htmx_post(
        "/mapping/field/add", {"host_key": "first_name", "zoho_field": "Email_Opt_Out"}
    )
    assert refused.status_code == 200
    assert "Not added:" in refused.get_data(as_text=True)


def test_a_row_is_removed(editor: Admin) -> None:
    editor.post("/mapping/field/add", {"host_key": "email", "zoho_field": "Email"})
    row_id = _row_id(editor, "email")
    asked = editor.post(f"/mapping/rows/{row_id}/remove")
    assert asked.status_code == 200 and "Remove this mapping?" in asked.get_data(as_text=True)
    assert len(_rows(editor)) == 1  # nothing removed until confirmed
    response = editor.post(f"/mapping/rows/{row_id}/remove", {"confirm": "1"})
    assert response.status_code == 302
    assert _rows(editor) == []


def test_removing_or_changing_a_missing_row_is_not_found(editor: Admin) -> None:
    assert editor.post("/mapping/rows/999/remove").status_code == 404
    assert editor.post("/mapping/rows/999", {"direction": "both"}).status_code == 404


def test_direction_and_policy_of_a_row_can_be_changed(editor: Admin) -> None:
    editor.post("/mapping/field/add", {"host_key": "first_name", "zoho_field": "First_Name"})
    response = editor.htmx_post(
        f"/mapping/rows/{_row_id(editor, 'first_name')}",
        {"direction": "to_zoho", "policy": "host_wins"},
    )
    assert response.status_code == 200
    assert "Changed." in response.get_data(as_text=True)
    assert _rows(editor) == [("field", "first_name", "First_Name", "to_zoho", "host_wins", False)]


def test_a_change_that_would_not_sync_is_refused_and_the_row_kept(editor: Admin) -> None:
    editor.post(
        "/mapping/field/add",
        {"host_key": "company", "zoho_field": "Full_Name", "direction": "to_host"},
    )
    response = editor.post(f"/mapping/rows/{_row_id(editor, 'company')}", {"direction": "both"})
    assert response.status_code == 400
    assert "Not changed: Zoho does not let the API write Full_Name" in response.get_data(
        as_text=True
    )
    assert _rows(editor)[0][3] == "to_host"


def test_groups_map_only_to_zoho_checkboxes(editor: Admin, zoho_sandbox: Any) -> None:
    _add_groups(editor, "Newsletter", "VIP")
    zoho_sandbox.add_custom_field("Leads", api_name="VIP_Member", data_type="boolean")
    editor.post("/mapping/refresh")
    refused = editor.post("/mapping/group/add", {"host_key": "VIP", "zoho_field": "City"})
    assert refused.status_code == 400
    assert "Groups can map only to Zoho checkbox (boolean) fields" in refused.get_data(as_text=True)
    added = editor.post("/mapping/group/add", {"host_key": "VIP", "zoho_field": "VIP_Member"})
    assert added.status_code == 302
    assert _rows(editor) == [("group", "VIP", "VIP_Member", "both", None, False)]
    text = editor.text("/mapping")
    assert re.search(r'<option value="Newsletter"[^>]* selected>Newsletter</option>', text)


def test_subscription_maps_inverted_to_the_opt_out_checkbox(editor: Admin) -> None:
    response = editor.post(
        "/mapping/system/add",
        {"host_key": "subscription", "zoho_field": "Email_Opt_Out", "inverted": "on"},
    )
    assert response.status_code == 302
    assert _rows(editor) == [("system", "subscription", "Email_Opt_Out", "both", None, True)]
    text = editor.text("/mapping")
    assert "Subscription status" in text and "inverted (opt-out field)" in text


def test_only_a_checkbox_can_be_inverted(editor: Admin) -> None:
    response = editor.post(
        "/mapping/system/add",
        {"host_key": "subscription", "zoho_field": "City", "inverted": "on"},
    )
    assert response.status_code == 400
    assert _rows(editor) == []


def test_the_standard_fields_fill_only_what_is_not_mapped_yet(editor: Admin) -> None:
    editor.post(
        "/mapping/field/add", {"host_key": "email", "zoho_field": "Email", "direction": "to_zoho"}
    )
    response = editor.post("/mapping/defaults", follow_redirects=True)
    # Four standard fields, and the subscription to Zoho's Email_Opt_Out (matched by name).
    assert "Added 5 mappings" in response.get_data(as_text=True)
    assert sorted(row[:4] for row in _rows(editor) if row[0] == "field") == [
        ("field", "company", "Company", "both"),
        ("field", "email", "Email", "to_zoho"),
        ("field", "first_name", "First_Name", "both"),
        ("field", "last_name", "Last_Name", "both"),
        ("field", "phone", "Phone", "both"),
    ]
    again = editor.post("/mapping/defaults", follow_redirects=True)
    assert "mapped already" in again.get_data(as_text=True)


def test_problems_of_stored_rows_are_shown_at_the_top(editor: Admin) -> None:
    with editor.host.app.app_context():
        session = editor.state.db.session
        session.add(FieldMap(kind="field", host_key="company", zoho_field="Account_Name"))
        session.commit()
    text = editor.text("/mapping")
    assert "These rows are not synced until fixed" in text
    assert "Account_Name is a Contacts field; in Leads use Company" in text


def test_zoho_field_labels_are_escaped(editor: Admin, zoho_sandbox: Any) -> None:
    zoho_sandbox.add_custom_field(
        "Leads", api_name="Evil", field_label="<script>alert(1)</script>", data_type="text"
    )
    editor.post("/mapping/refresh")
    editor.post("/mapping/field/add", {"host_key": "company", "zoho_field": "Evil"})
    text = editor.text("/mapping")
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (Evil)" in text


def test_zoho_not_answering_says_to_try_again_in_a_minute(editor: Admin) -> None:
    class Silent:
        def fields(self, module: str) -> list[dict[str, Any]]:
            raise ZohoUnavailable("Zoho answered HTTP 503", http_status=503)

    editor.state.client = Silent  # type: ignore[method-assign]
    response = editor.post("/mapping/refresh")
    assert response.status_code == 503
    assert "Zoho did not answer; try again in a minute" in response.get_data(as_text=True)
    assert editor.settings().zoho_fields  # the cache from before is kept


def test_a_dead_connection_offers_to_connect_again(editor: Admin) -> None:
    class Revoked:
        def fields(self, module: str) -> list[dict[str, Any]]:
            raise ZohoReconnectRequired("Zoho says the token is invalid", code="INVALID_TOKEN")

    editor.state.client = Revoked  # type: ignore[method-assign]
    response = editor.htmx_post("/mapping/refresh")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert 'id="zs-error-message"' in text and "Connect Zoho CRM again" in text


def test_editing_before_the_zoho_fields_are_loaded_is_refused(connected_admin: Admin) -> None:
    connected_admin.update_settings(module="Leads")
    response = connected_admin.post(
        "/mapping/field/add", {"host_key": "email", "zoho_field": "Email"}
    )
    assert response.status_code == 400
    assert _rows(connected_admin) == []

"""The mapping editor's choices, as an admin meets them: the Zoho field it proposes, the
directions a read-only Zoho field allows, a refused form that keeps what was typed, a
removal that asks first, and an inverted opt-out told the right way round in history."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import FieldMap, RecordHistory
from tests.web.conftest import Admin


@pytest.fixture
def editor(connected_admin: Admin) -> Admin:
    """Connected to the sandbox, Leads chosen, Zoho's fields loaded through the page."""
    connected_admin.update_settings(module="Leads")
    assert connected_admin.post("/mapping/refresh").status_code == 302
    return connected_admin


def section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    return page[start : page.index("</section>", start)]


def select(html: str, name: str) -> str:
    match = re.search(rf'<select name="{name}"[^>]*>.*?</select>', html, re.S)
    assert match, f"no select {name!r}"
    return match.group(0)


def selected(html: str, name: str) -> str | None:
    found = re.search(r'<option value="([^"]*)"[^>]* selected[ >]', select(html, name))
    return found.group(1) if found else None


def proposals(fields: str) -> dict[str, str]:
    """host key -> the Zoho field picking it selects (the option's data-zs-propose)."""
    return dict(
        re.findall(r'<option value="([^"]*)" data-zs-propose="([^"]*)"', select(fields, "host_key"))
    )


def test_the_proposed_zoho_field_is_the_standard_pair_never_the_owner(editor: Admin) -> None:
    fields = section(editor.text("/mapping"), "zs-map-fields")
    assert selected(fields, "host_key") == "first_name"
    assert selected(fields, "zoho_field") == "First_Name"
    proposed = proposals(fields)
    assert proposed["company"] == "Company"
    assert proposed["phone"] == "Phone"
    assert proposed["email"] == "Email"
    assert "Owner" not in proposed.values()
    # Picking a host field selects its proposal in the browser, with no request in between.
    host_select = re.search(r'<select name="host_key"[^>]*>', fields).group(0)
    assert "dataset.zsPropose" in host_select and "hx-get" not in host_select


def test_a_field_with_no_good_match_proposes_nothing_rather_than_an_owner_or_a_stamp(
    editor: Admin,
) -> None:
    """The host's last_seen is a date-time; Zoho's date-times here are Created_Time,
    Modified_Time and Converted_Date_Time, all about the record: none is proposed."""
    proposed = proposals(section(editor.text("/mapping"), "zs-map-fields"))
    assert proposed["last_seen"] == ""


def test_a_custom_field_matching_by_name_and_type_is_proposed(
    editor: Admin, zoho_sandbox: Any
) -> None:
    zoho_sandbox.add_custom_field(
        "Leads", api_name="Last_Seen_At", field_label="Last seen", data_type="datetime"
    )
    zoho_sandbox.add_custom_field(
        "Leads", api_name="Last_Seen_Note", field_label="Last seen note", data_type="text"
    )
    editor.post("/mapping/refresh")
    proposed = proposals(section(editor.text("/mapping"), "zs-map-fields"))
    assert proposed["last_seen"] == "Last_Seen_At"


def test_read_only_zoho_fields_are_offered_to_this_site_only(editor: Admin) -> None:
    page = editor.text("/mapping")
    fields = section(page, "zs-map-fields")
    read_only_group = fields[fields.index("Read-only in Zoho: to this site only") :]
    assert 'value="Converted__s"' in read_only_group and 'value="Full_Name"' in read_only_group
    writable_group = fields[: fields.index("Read-only in Zoho: to this site only")]
    assert 'value="Converted__s"' not in writable_group
    # Owner: Zoho's metadata marks it field_read_only, so it is read-only here too.
    assert 'value="Owner"' in read_only_group
    # The system values are written to Zoho: no read-only field is offered there at all.
    system = section(page, "zs-map-system")
    assert 'value="Converted__s"' not in system and 'value="Full_Name"' not in system
    # Choosing a read-only field leaves only the direction it allows (in the browser).
    zoho_select = re.search(r'<select name="zoho_field"[^>]*>', fields, re.S).group(0)
    assert "zsReadOnly" in zoho_select and "'to_host'" in zoho_select
    assert '<option value="Converted__s" data-zs-read-only="1">' in read_only_group


def test_a_read_only_checkbox_maps_a_group_to_this_site_only(editor: Admin) -> None:
    with editor.host.app.app_context():
        editor.host.db.session.add(editor.host.Group(name="Converted"))
        editor.host.db.session.commit()
    refused = editor.post(
        "/mapping/group/add",
        {"host_key": "Converted", "zoho_field": "Converted__s", "direction": "both"},
    )
    assert refused.status_code == 400
    groups = section(refused.get_data(as_text=True), "zs-map-groups")
    assert "Zoho does not let the API write Converted__s" in groups
    assert 'name="direction" aria-invalid="true"' in groups
    assert selected(groups, "zoho_field") == "Converted__s"
    # The form now allows only the direction the field does, already chosen.
    directions = select(groups, "direction")
    assert '<option value="to_host" selected>' in directions
    assert '<option value="both" disabled>' in directions
    added = editor.post(
        "/mapping/group/add",
        {"host_key": "Converted", "zoho_field": "Converted__s", "direction": "to_host"},
    )
    assert added.status_code == 302
    with editor.host.app.app_context():
        row = editor.state.db.session.scalar(sa.select(FieldMap))
        assert (row.kind, row.zoho_field, row.direction) == ("group", "Converted__s", "to_host")


def test_a_refused_add_keeps_what_was_typed_and_marks_the_field(editor: Admin) -> None:
    form = {
        "host_key": "phone",
        "zoho_field": "Email_Opt_Out",
        "direction": "to_zoho",
        "policy": "zoho_wins",
    }
    for htmx in (False, True):
        answer = (
            editor.htmx_post("/mapping/field/add", form)
            if htmx
            else editor.post("/mapping/field/add", form)
        )
        fields = section(answer.get_data(as_text=True), "zs-map-fields")
        assert "Not added:" in fields
        assert selected(fields, "host_key") == "phone"
        assert selected(fields, "zoho_field") == "Email_Opt_Out"
        assert selected(fields, "direction") == "to_zoho"
        assert selected(fields, "policy") == "zoho_wins"
        assert re.search(r'<select name="zoho_field" aria-invalid="true"', fields)
        assert 'aria-describedby="zs-field-add-error"' in fields
        assert 'id="zs-field-add-error"' in fields
        assert 'name="host_key" aria-invalid' not in fields
    with editor.host.app.app_context():
        assert editor.state.db.session.scalar(sa.select(sa.func.count(FieldMap.id))) == 0


def test_a_refused_change_keeps_the_rows_typed_value_and_marks_it(editor: Admin) -> None:
    editor.post(
        "/mapping/field/add",
        {"host_key": "company", "zoho_field": "Full_Name", "direction": "to_host"},
    )
    with editor.host.app.app_context():
        row_id = editor.state.db.session.scalar(sa.select(FieldMap.id))
    answer = editor.post(f"/mapping/rows/{row_id}", {"direction": "both", "policy": "host_wins"})
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    direction_tag = re.search(rf'<select id="zs-dir-{row_id}"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in direction_tag
    direction = re.search(rf'id="zs-dir-{row_id}".*?</select>', page, re.S).group(0)
    assert '<option value="both" selected>' in direction
    policy = re.search(rf'id="zs-pol-{row_id}".*?</select>', page, re.S).group(0)
    assert '<option value="host_wins" selected>' in policy
    assert f'id="zs-row-error-{row_id}"' in page


def test_removing_a_row_asks_first(editor: Admin) -> None:
    editor.post("/mapping/field/add", {"host_key": "phone", "zoho_field": "Phone"})
    with editor.host.app.app_context():
        row_id = editor.state.db.session.scalar(sa.select(FieldMap.id))
    page = editor.text("/mapping")
    button = re.search(r"<button[^>]*mapping/rows/\d+/remove[^>]*>", page, re.S).group(0)
    assert 'hx-confirm="Remove the mapping Phone ↔ Phone (Phone)?' in button
    assert 'hx-vals=\'{"confirm": "1"}\'' in button
    asked = editor.htmx_post(f"/mapping/rows/{row_id}/remove")  # no confirmation sent
    assert "Remove this mapping?" in asked.get_data(as_text=True)
    keep = re.search(r'<a class="zs-button" href="([^"]+)">Keep it</a>', asked.get_data(True))
    assert keep and keep.group(1) == "/admin/zoho/mapping"
    with editor.host.app.app_context():
        assert editor.state.db.session.scalar(sa.select(sa.func.count(FieldMap.id))) == 1
    done = editor.post(f"/mapping/rows/{row_id}/remove", {"confirm": "1"}, follow_redirects=True)
    assert "Removed Phone ↔ Phone (Phone)." in done.get_data(as_text=True)


def test_an_inverted_opt_out_reads_the_right_way_round_in_history(admin: Admin) -> None:
    """The engine records the subscription (subscribed: true/false) under the opt-out's
    name; shown raw, "true → false" on Email_Opt_Out reads as the box being cleared."""
    with admin.host.app.app_context():
        session = admin.state.db.session
        session.add(
            FieldMap(
                kind="system",
                host_key="subscription",
                zoho_field="Email_Opt_Out",
                direction="both",
                inverted=True,
            )
        )
        session.add(
            RecordHistory(
                contact_id="41",
                zoho_id="9001",
                direction="to_host",
                action="update",
                changes={"fields": {"Subscription status (Email_Opt_Out)": [True, False]}},
            )
        )
        session.commit()
    text = admin.text("/history/contacts/41")
    assert "<strong>Subscription status</strong>: subscribed → unsubscribed" in text
    assert "in Zoho the opt-out box Email_Opt_Out is ticked: it is the inverse" in text
    assert "True → False" not in text

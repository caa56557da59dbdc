"""'Use the standard fields' also maps what matches by name, so a first setup is one click."""

from __future__ import annotations

import sqlalchemy as sa

from flask_zoho_sync.models import FieldMap
from flask_zoho_sync.preferences import (
    add_default_mappings,
    field_maps,
    get_settings,
    refresh_zoho_fields,
)
from tests.engine.conftest import Synced


def test_matching_names_are_mapped_and_nothing_mapped_is_changed(synced: Synced) -> None:
    synced.zoho.add_custom_field(
        "Leads", api_name="Last_Seen", field_label="Last seen", data_type="datetime"
    )
    synced.zoho.add_custom_field(
        "Leads", api_name="Company_Size", field_label="Size", data_type="integer"
    )
    with synced.host.app.app_context():
        session = synced.host.db.session
        session.execute(sa.delete(FieldMap).where(FieldMap.kind != "field"))
        session.execute(sa.delete(FieldMap).where(FieldMap.host_key == "phone"))
        session.add(
            FieldMap(kind="field", host_key="phone", zoho_field="Mobile", direction="to_zoho")
        )
        refresh_zoho_fields(session, synced.state.client(), get_settings(session))
        add_default_mappings(session, synced.state.adapter, "Leads")
        session.commit()
        rows = {(row.kind, row.host_key): row for row in field_maps(session)}
    assert rows[("field", "last_seen")].zoho_field == "Last_Seen"
    assert rows[("group", "VIP")].zoho_field == "VIP"
    assert rows[("system", "contact_id")].zoho_field == "Contact_Id"
    subscription = rows[("system", "subscription")]
    assert (subscription.zoho_field, subscription.inverted) == ("Email_Opt_Out", True)
    assert rows[("field", "phone")].zoho_field == "Mobile"  # the admin's choice stands
    assert rows[("field", "phone")].direction == "to_zoho"
    assert ("field", "company") in rows
    assert not any(row.zoho_field == "Company_Size" for row in rows.values())

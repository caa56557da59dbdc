"""Paused mapping rows (issue 19) on the overview and the mapping page; saving a row
resumes it; a picklist row takes a value map."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import FieldMap
from flask_zoho_sync.sandbox.handle import SandboxHandle
from tests.web.conftest import Admin

REASON = "paused: Zoho refused the field Tier itself (INVALID_DATA): it was deleted"


@pytest.fixture
def tier_row(connected_admin: Admin, zoho_sandbox: SandboxHandle) -> int:
    """Leads, a custom picklist Tier loaded from Zoho, and company mapped to it (paused)."""
    zoho_sandbox.add_custom_field(
        "Leads", api_name="Tier", data_type="picklist", pick_list_values=["Gold", "Silver"]
    )
    connected_admin.update_settings(module="Leads")
    assert connected_admin.post("/mapping/refresh").status_code == 302
    with connected_admin.host.app.app_context():
        session = connected_admin.state.db.session
        session.add(FieldMap(kind="field", host_key="last_name", zoho_field="Last_Name"))
        row = FieldMap(kind="field", host_key="company", zoho_field="Tier", paused_reason=REASON)
        session.add(row)
        session.commit()
        return row.id


def _stored(admin: Admin, row_id: int) -> FieldMap:
    with admin.host.app.app_context():
        session = admin.state.db.session
        row = session.scalars(sa.select(FieldMap).where(FieldMap.id == row_id)).one()
        session.expunge(row)
        return row


def test_a_paused_row_shows_its_reason_on_the_overview_and_the_mapping_page(
    connected_admin: Admin, tier_row: int
) -> None:
    overview = connected_admin.text("/")
    assert "Paused mapping rows" in overview and REASON in overview
    assert REASON in connected_admin.text("/mapping")


def test_saving_a_paused_row_resumes_it(connected_admin: Admin, tier_row: int) -> None:
    response = connected_admin.post(f"/mapping/rows/{tier_row}", {"direction": "both"})

    assert response.status_code in (200, 302), response.get_data(as_text=True)[:2000]
    row = _stored(connected_admin, tier_row)
    assert row.paused_reason is None
    assert row.remapped_at is not None  # older snapshots hold no base for it now
    assert "Paused mapping rows" not in connected_admin.text("/")


def test_a_value_map_is_saved_from_the_row_and_shown_again(
    connected_admin: Admin, tier_row: int
) -> None:
    connected_admin.post(
        f"/mapping/rows/{tier_row}", {"direction": "both", "value_map": "Acme=Gold; Initech=Silver"}
    )

    assert _stored(connected_admin, tier_row).value_map == {"Acme": "Gold", "Initech": "Silver"}
    assert 'value="Acme=Gold; Initech=Silver"' in connected_admin.text("/mapping")


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("Acme Gold", "is not a pair: write host value=Zoho value"),
        ("Acme=Platinum", "has no 'Platinum'; it offers Gold, Silver"),
    ],
)
def test_a_bad_value_map_is_refused_with_what_to_write(
    connected_admin: Admin, tier_row: int, typed: str, says: str
) -> None:
    response = connected_admin.post(
        f"/mapping/rows/{tier_row}", {"direction": "both", "value_map": typed}
    )

    assert says in html.unescape(response.get_data(as_text=True))
    row = _stored(connected_admin, tier_row)
    assert row.value_map is None and row.paused_reason == REASON  # nothing saved

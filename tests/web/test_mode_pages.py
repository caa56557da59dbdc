"""The sync mode on the settings page, and a row's overwrite policy in the mapping editor."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import FieldMap
from flask_zoho_sync.preferences import add_default_mappings, get_settings
from tests.web.conftest import Admin

VALID = {"module": "Leads", "time_zone": "UTC", "conflict_policy": "newest"}


def _overwrite(admin: Admin, host_key: str) -> str | None:
    with admin.host.app.app_context():
        return admin.state.db.session.scalar(
            sa.select(FieldMap.overwrite).where(FieldMap.host_key == host_key)
        )


def _row_id(admin: Admin, host_key: str) -> int:
    with admin.host.app.app_context():
        return int(
            admin.state.db.session.scalar(
                sa.select(FieldMap.id).where(FieldMap.host_key == host_key)
            )
        )


def test_the_settings_page_offers_the_modes_and_stores_the_choice(admin: Admin) -> None:
    text = admin.text("/settings")
    assert '<input type="radio" name="sync_mode" value="two_way" checked>' in text
    assert "Until saved here, ZOHO_SYNC_MODE decides (two_way)" in text
    assert "Import only: Zoho to this site; nothing is ever written to Zoho" in text
    response = admin.post("/settings", {**VALID, "sync_mode": "import_only"})
    assert response.status_code == 302
    assert admin.settings().sync_mode == "import_only"
    text = admin.text("/settings")
    assert '<input type="radio" name="sync_mode" value="import_only" checked>' in text
    assert "Until saved here" not in text
    # A form without the field (an older page, a script) keeps the stored mode.
    admin.post("/settings", VALID)
    assert admin.settings().sync_mode == "import_only"


def test_an_unknown_mode_is_refused_and_nothing_is_saved(admin: Admin) -> None:
    response = admin.post("/settings", {**VALID, "time_zone": "Asia/Tokyo", "sync_mode": "both"})
    assert response.status_code == 400
    assert "Choose one of the sync modes." in response.get_data(as_text=True)
    stored = admin.settings()
    assert (stored.sync_mode, stored.time_zone) == (None, "UTC")


@pytest.fixture
def editor(connected_admin: Admin) -> Admin:
    connected_admin.update_settings(module="Leads")
    assert connected_admin.post("/mapping/refresh").status_code == 302
    return connected_admin


def test_a_rows_overwrite_policy_is_chosen_in_the_editor(editor: Admin) -> None:
    editor.post("/mapping/field/add", {"host_key": "phone", "zoho_field": "Phone"})
    row = _row_id(editor, "phone")
    text = editor.text("/mapping")
    assert f'id="zs-ovr-{row}" name="overwrite"' in text
    assert '<option value="always" selected>Always overwrite</option>' in text
    response = editor.htmx_post(
        f"/mapping/rows/{row}", {"direction": "both", "policy": "", "overwrite": "fill_blanks"}
    )
    assert response.status_code == 200
    assert _overwrite(editor, "phone") == "fill_blanks"
    assert '<option value="fill_blanks" selected>Only fill blanks</option>' in editor.text(
        "/mapping"
    )
    refused = editor.post(
        f"/mapping/rows/{row}", {"direction": "both", "policy": "", "overwrite": "sometimes"}
    )
    assert refused.status_code == 400
    assert _overwrite(editor, "phone") == "fill_blanks"
    editor.post(f"/mapping/rows/{row}", {"direction": "both", "policy": "", "overwrite": "always"})
    assert _overwrite(editor, "phone") is None


def test_the_synchronise_plan_lists_what_the_mode_leaves_alone(
    connected_admin: Admin, zoho_sandbox: object
) -> None:
    host = connected_admin.host
    with host.app.app_context():
        session = host.db.session
        settings = get_settings(session)
        settings.module = "Leads"
        settings.sync_mode = "update_only"
        add_default_mappings(session, connected_admin.state.adapter, "Leads")
        session.add(host.Contact(first_name="Ann", last_name="Lee", email="ann@example.org"))
        session.commit()
    text = connected_admin.plan({"mode": "all"}).get_data(as_text=True)
    assert "In Zoho</dt><dd>1 left alone</dd>" in text
    assert "<td>Left alone</td>" in text
    assert "Not written: not in Zoho; update only mode does not create Zoho records" in text

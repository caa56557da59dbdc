"""``flask zoho-sync settings --mode / --overwrite / --winner``, and the plan that honours them."""

from __future__ import annotations

import sqlalchemy as sa

from flask_zoho_sync.models import FieldMap, SyncSettings
from tests.engine.conftest import Synced


def invoke(synced: Synced, *args: str):  # type: ignore[no-untyped-def]
    return synced.host.app.test_cli_runner().invoke(args=["zoho-sync", *args])


def stored(synced: Synced) -> tuple[str | None, dict[str, tuple[str | None, str | None]]]:
    with synced.host.app.app_context():
        session = synced.host.db.session
        mode = session.scalar(sa.select(SyncSettings.sync_mode))
        rows = {
            row.host_key: (row.overwrite, row.policy)
            for row in session.scalars(sa.select(FieldMap).where(FieldMap.kind == "field"))
        }
        return mode, rows


def test_settings_store_the_mode_and_the_field_policies(synced: Synced) -> None:
    shown = invoke(synced, "settings")
    assert "Sync mode: two_way (ZOHO_SYNC_MODE)" in shown.output
    result = invoke(
        synced,
        "settings",
        "--mode",
        "export_only",
        "--overwrite",
        "phone=fill_blanks",
        "--overwrite",
        "company=first_sync",
        "--winner",
        "phone=zoho",
    )
    assert result.exit_code == 0, result.output
    assert "Sync mode: export_only" in result.output
    assert "phone <-> Phone [overwrite: fill_blanks, winner: zoho]" in result.output
    assert "company <-> Company [overwrite: first_sync]" in result.output
    mode, rows = stored(synced)
    assert mode == "export_only"
    assert rows["phone"] == ("fill_blanks", "zoho_wins")
    assert rows["company"] == ("first_sync", None)
    # Back to the defaults.
    result = invoke(synced, "settings", "--overwrite", "phone=always", "--winner", "phone=default")
    assert result.exit_code == 0, result.output
    assert stored(synced)[1]["phone"] == (None, None)


def test_settings_refuse_bad_field_policies_and_change_nothing(synced: Synced) -> None:
    refused = invoke(synced, "settings", "--mode", "import_only", "--overwrite", "phone=sometimes")
    assert refused.exit_code == 2
    assert "always, fill_blanks, first_sync" in refused.output
    unmapped = invoke(synced, "settings", "--winner", "shoe_size=host")
    assert unmapped.exit_code == 2
    assert "'shoe_size' is not mapped" in unmapped.output
    assert invoke(synced, "settings", "--mode", "sideways").exit_code == 2
    assert stored(synced)[0] is None  # the refused command stored no mode either


def test_the_plan_lists_what_the_mode_leaves_alone_and_why(synced: Synced) -> None:
    synced.add_contact(last_name="Lee", email="ann@example.org", phone="111")
    assert invoke(synced, "sync", "--all").exit_code == 0
    zoho_id = synced.leads()["ann@example.org"]["id"]
    assert invoke(synced, "settings", "--mode", "export_only").exit_code == 0
    synced.zoho.update_record("Leads", zoho_id, {"Phone": "999"})
    result = invoke(synced, "sync", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "In this app it would: 1 left alone" in result.output
    assert (
        "to_host left alone contact 1 / Zoho "
        f"{zoho_id} {{'Phone (Phone)': '999'}}: export-only mode: Zoho never changes this site"
    ) in result.output
    assert synced.contacts()["ann@example.org"]["phone"] == "111"


def test_changing_the_mode_makes_the_next_sync_a_full_one(synced: Synced) -> None:
    """A Zoho edit export-only mode held back reaches the host once two-way is back, though
    the incremental pull's watermark has long passed it."""
    synced.add_contact(last_name="Lee", email="ann@example.org", first_name="Ann")
    synced.add_contact(last_name="Ray", email="bob@example.org", first_name="Bob")
    assert invoke(synced, "sync", "--all").exit_code == 0
    leads = synced.leads()
    assert invoke(synced, "settings", "--mode", "export_only").exit_code == 0
    synced.zoho.update_record("Leads", leads["ann@example.org"]["id"], {"First_Name": "Annie"})
    assert invoke(synced, "sync").exit_code == 0
    synced.zoho.advance_clock(900)  # a later edit moves the pull's watermark past Annie
    synced.zoho.update_record("Leads", leads["bob@example.org"]["id"], {"First_Name": "Bobby"})
    assert invoke(synced, "sync").exit_code == 0
    assert synced.contacts()["ann@example.org"]["first_name"] == "Ann"
    assert invoke(synced, "settings", "--mode", "export_only").exit_code == 0  # unchanged
    with synced.host.app.app_context():
        assert synced.host.db.session.scalar(sa.select(SyncSettings.pull_watermark))
    assert invoke(synced, "settings", "--mode", "two_way").exit_code == 0
    with synced.host.app.app_context():
        assert synced.host.db.session.scalar(sa.select(SyncSettings.pull_watermark)) is None
    assert invoke(synced, "sync").exit_code == 0
    contacts = synced.contacts()
    assert contacts["ann@example.org"]["first_name"] == "Annie"
    assert contacts["bob@example.org"]["first_name"] == "Bobby"

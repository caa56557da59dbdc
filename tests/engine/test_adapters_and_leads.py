"""A host with custom fields in a JSON column syncs through a small adapter subclass, and a
lead converted in Zoho is not mistaken for a deleted one."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_zoho_sync import SQLAlchemyContactAdapter, ZohoSync, get_state
from flask_zoho_sync.preferences import get_settings, set_field_map
from flask_zoho_sync.sync import HostField
from tests.engine.conftest import Synced
from tests.hostapp import TEST_ENCRYPTION_KEY


def test_a_lead_converted_in_zoho_keeps_its_contact(synced: Synced) -> None:
    contact_id = synced.add_contact(last_name="Lee", email="ann@example.org")
    synced.sync(mode="all")
    zoho_id = synced.leads()["ann@example.org"]["id"]
    synced.zoho.convert_lead(zoho_id)
    report = synced.sync()
    assert report.counts.get("to_host.delete", 0) == 0
    assert synced.contacts()["ann@example.org"]["id"] == contact_id


class JsonFieldsAdapter(SQLAlchemyContactAdapter):
    """Custom fields kept in one JSON column, the way many hosts store them."""

    CUSTOM = (HostField("loyalty_tier", "text", label="Loyalty tier", max_length=20),)

    def fields(self) -> list[HostField]:
        plain = [field for field in super().fields() if field.name != "extra"]
        return [*plain, *self.CUSTOM]

    def get_values(self, contact: Any) -> dict[str, Any]:
        values = {k: v for k, v in super().get_values(contact).items() if k != "extra"}
        extra = contact.extra or {}
        values.update({field.name: extra.get(field.name) for field in self.CUSTOM})
        return values

    def set_values(self, contact: Any, values: dict[str, Any]) -> None:
        custom = {field.name for field in self.CUSTOM}
        super().set_values(contact, {k: v for k, v in values.items() if k not in custom})
        extra = dict(contact.extra or {})
        extra.update({k: v for k, v in values.items() if k in custom})
        contact.extra = extra

    def capture_attributes(self) -> set[str]:
        return {*super().capture_attributes(), "extra"}


def test_custom_fields_in_a_json_column_sync_both_ways(synced: Synced, tmp_path) -> None:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Member(db.Model):  # type: ignore[name-defined]
        id: Mapped[int] = mapped_column(primary_key=True)
        last_name: Mapped[str | None] = mapped_column(sa.String(80))
        email: Mapped[str | None] = mapped_column(sa.String(120))
        extra: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    synced.zoho.add_custom_field(
        "Leads", api_name="Loyalty_Tier", field_label="Loyalty tier", data_type="text", length=20
    )
    app = Flask("json-host")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'json.sqlite3'}",
        ZOHO_SYNC_CLIENT_ID=synced.zoho.client_id,
        ZOHO_SYNC_CLIENT_SECRET=synced.zoho.client_secret,
        ZOHO_SYNC_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
        ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS=synced.zoho.accounts_server,
    )
    db.init_app(app)
    ZohoSync(app, db=db, adapter=JsonFieldsAdapter(Member))
    with app.app_context():
        db.create_all()
        state = get_state()
        token = synced.zoho.mint_refresh_token()
        state.connect_with_refresh_token(token["refresh_token"], synced.zoho.accounts_server)
        session = db.session
        get_settings(session).module = "Leads"
        for host_key, zoho_field in (
            ("last_name", "Last_Name"),
            ("email", "Email"),
            ("loyalty_tier", "Loyalty_Tier"),
        ):
            set_field_map(session, kind="field", host_key=host_key, zoho_field=zoho_field)
        session.add(
            Member(last_name="Kim", email="kim@example.org", extra={"loyalty_tier": "Gold"})
        )
        session.commit()
        assert state.run_sync(mode="all").status == "succeeded"
        lead = synced.leads()["kim@example.org"]
        assert lead["Loyalty_Tier"] == "Gold"
        synced.zoho.update_record("Leads", lead["id"], {"Loyalty_Tier": "Platinum"})
        assert state.run_sync().status == "succeeded"
        member = session.scalars(sa.select(Member)).one()
        assert member.extra == {"loyalty_tier": "Platinum"}
        session.remove()
        db.engine.dispose()

"""A host app connected to the Zoho sandbox, with a module and a mapping chosen."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from flask_zoho_sync.extension import ZohoSyncState, get_state
from flask_zoho_sync.preferences import add_default_mappings, get_settings, set_field_map
from flask_zoho_sync.sandbox.handle import SandboxHandle
from tests.conftest import TEST_REDIS_URL
from tests.hostapp import HostApp, make_host_app
from tests.tables import release_tables


@dataclass
class Synced:
    """Everything an engine test touches: the host app, its sync state, and Zoho."""

    host: HostApp
    zoho: SandboxHandle

    @property
    def state(self) -> ZohoSyncState:
        return get_state(self.host.app)

    def sync(self, **options: Any):  # type: ignore[no-untyped-def]
        with self.host.app.app_context():
            return self.state.run_sync(**options)

    def first_manual_sync(self) -> None:
        """What an admin does before automatic sync writes anything: run the first sync
        by hand (``flask zoho-sync sync`` or the Synchronise page), after its preview."""
        report = self.sync(mode="all", trigger="cli")
        assert report.status == "succeeded", report.message

    def contacts(self) -> dict[str, Any]:
        """Host contacts by email (detached snapshots of their values)."""
        with self.host.app.app_context():
            adapter = self.state.adapter
            found = {}
            for batch in adapter.iter_batches():
                for contact in batch:
                    values = adapter.get_values(contact)
                    values["groups"] = adapter.get_groups(contact)
                    values["subscribed"] = adapter.is_subscribed(contact)
                    values["id"] = contact.id
                    found[(values["email"] or "").lower()] = values
            return found

    def leads(self) -> dict[str, dict[str, Any]]:
        return {(r.get("Email") or "").lower(): r for r in self.zoho.records("Leads")}

    def calls(self) -> dict[str, int]:
        return self.zoho.stats()["calls"]

    def add_contact(self, **values: Any) -> int:
        groups = values.pop("groups", [])
        with self.host.app.app_context():
            db = self.host.db
            contact = self.host.Contact(**values)
            contact.groups = [self._group(name) for name in groups]
            db.session.add(contact)
            db.session.commit()
            return contact.id

    def edit_contact(self, contact_id: int, **values: Any) -> None:
        with self.host.app.app_context():
            db = self.host.db
            contact = db.session.get(self.host.Contact, contact_id)
            groups = values.pop("groups", None)
            for name, value in values.items():
                setattr(contact, name, value)
            if groups is not None:
                contact.groups = [self._group(name) for name in groups]
            db.session.commit()

    def delete_contact(self, contact_id: int) -> None:
        with self.host.app.app_context():
            db = self.host.db
            db.session.delete(db.session.get(self.host.Contact, contact_id))
            db.session.commit()

    def _group(self, name: str) -> Any:
        db = self.host.db
        group = db.session.scalar(db.select(self.host.Group).where(self.host.Group.name == name))
        if group is None:
            group = self.host.Group(name=name)
            db.session.add(group)
        return group


def connect_synced(database_url: str, zoho_sandbox: SandboxHandle, **config: Any) -> Synced:
    """Host connected to the sandbox; Leads; standard fields, VIP group, Contact Id, opt-out.

    A function as well as the ``synced`` fixture: fault tests build a fresh pair many times
    in one test (one per kill point), some with host ``config`` of their own.
    """
    zoho_sandbox.add_custom_field(
        "Leads",
        api_name="Contact_Id",
        field_label="Contact Id",
        data_type="text",
        length=50,
        unique=True,
    )
    zoho_sandbox.add_custom_field("Leads", api_name="VIP", field_label="VIP", data_type="boolean")
    host = make_host_app(
        database_url,
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        ZOHO_SYNC_CLIENT_ID=zoho_sandbox.client_id,
        ZOHO_SYNC_CLIENT_SECRET=zoho_sandbox.client_secret,
        ZOHO_SYNC_ACCOUNTS_URL=zoho_sandbox.accounts_server,
        ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS=zoho_sandbox.accounts_server,
        **config,
    )
    with host.app.app_context():
        state = get_state()
        token = zoho_sandbox.mint_refresh_token()
        state.connect_with_refresh_token(token["refresh_token"], zoho_sandbox.accounts_server)
        session = host.db.session
        session.add(host.Group(name="VIP"))
        settings = get_settings(session)
        settings.module = "Leads"
        settings.time_zone = "Australia/Sydney"
        add_default_mappings(session, state.adapter, "Leads")
        set_field_map(session, kind="group", host_key="VIP", zoho_field="VIP")
        set_field_map(session, kind="system", host_key="contact_id", zoho_field="Contact_Id")
        set_field_map(
            session,
            kind="system",
            host_key="subscription",
            zoho_field="Email_Opt_Out",
            inverted=True,
        )
        session.commit()
    return Synced(host=host, zoho=zoho_sandbox)


def dispose_synced(synced: Synced) -> None:
    host = synced.host
    with host.app.app_context():
        release_tables(host.db)


@pytest.fixture
def synced_config() -> dict[str, Any]:
    """Extra host-app config for ``synced``; a test module overrides it to change settings."""
    return {}


@pytest.fixture
def synced(
    database_url: str,
    redis_client: Any,
    zoho_sandbox: SandboxHandle,
    synced_config: dict[str, Any],
) -> Iterator[Synced]:
    """Host connected to the sandbox; Leads; standard fields, VIP group, Contact Id, opt-out."""
    built = connect_synced(database_url, zoho_sandbox, **synced_config)
    yield built
    dispose_synced(built)


def connected_host(
    database_url: str, zoho_sandbox: SandboxHandle, **config: Any
) -> Iterator[Synced]:
    """The ``synced`` set-up as a generator, so other suites can add host ``config``."""
    built = connect_synced(database_url, zoho_sandbox, **config)
    yield built
    dispose_synced(built)

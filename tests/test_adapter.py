"""The default adapter reads and writes a plain SQLAlchemy contact model and its groups."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from flask_zoho_sync.adapter import HostGroup, SQLAlchemyContactAdapter
from flask_zoho_sync.extension import get_state


@pytest.fixture
def adapter(host):
    with host.app.app_context():
        yield get_state().adapter


@pytest.fixture
def people(host, adapter):
    vip, news = host.Group(name="VIP"), host.Group(name="Newsletter")
    ann = host.Contact(first_name="Ann", last_name="Lee", email="Ann@Example.org", groups=[vip])
    bob = host.Contact(first_name="Bob", last_name="Ray", email="bob@example.org", subscribed=False)
    host.db.session.add_all([vip, news, ann, bob])
    host.db.session.commit()
    return {"ann": ann, "bob": bob}


def test_fields_are_described_from_the_model_without_keys_or_system_columns(adapter) -> None:
    fields = {field.name: field for field in adapter.fields()}
    assert set(fields) == {"first_name", "last_name", "email", "phone", "company", "last_seen"}
    assert fields["last_seen"].type == "datetime"
    assert fields["last_seen"].datetime_aware is False
    assert fields["email"].type == "email"
    assert fields["phone"].type == "phone"
    assert fields["first_name"].type == "text"
    assert fields["first_name"].max_length == 40
    assert fields["last_name"].label == "Last name"


def test_values_are_read_and_written_by_field_name(host, adapter, people) -> None:
    ann = people["ann"]
    assert adapter.get_values(ann)["email"] == "Ann@Example.org"
    adapter.set_values(ann, {"company": "Harbour Bakery"})
    host.db.session.commit()
    assert adapter.get(adapter.contact_id(ann)).company == "Harbour Bakery"
    with pytest.raises(KeyError, match="no mappable field 'password'"):
        adapter.set_values(ann, {"password": "x"})


def test_groups_are_listed_read_and_changed_by_name(host, adapter, people, caplog) -> None:
    assert adapter.groups() == [HostGroup("Newsletter", "Newsletter"), HostGroup("VIP", "VIP")]
    ann = people["ann"]
    assert adapter.get_groups(ann) == {"VIP"}
    with caplog.at_level(logging.WARNING):
        adapter.set_groups(ann, add={"Newsletter", "Ghosts"}, remove={"VIP"})
    host.db.session.commit()
    assert adapter.get_groups(adapter.get(adapter.contact_id(ann))) == {"Newsletter"}
    assert "Ghosts" in caplog.text


def test_subscription_status_is_read_and_set(host, adapter, people) -> None:
    assert adapter.is_subscribed(people["ann"]) is True
    assert adapter.is_subscribed(people["bob"]) is False
    adapter.set_subscribed(people["bob"], True)
    host.db.session.commit()
    assert adapter.is_subscribed(adapter.get(adapter.contact_id(people["bob"]))) is True


def test_email_lookup_ignores_case_and_blanks(adapter, people) -> None:
    assert adapter.find_by_email("  ann@EXAMPLE.org ") is people["ann"]
    assert adapter.find_by_email("") is None
    assert adapter.find_by_email("nobody@example.org") is None


def test_ids_are_text_and_bad_ids_find_nothing(adapter, people) -> None:
    ann_id = adapter.contact_id(people["ann"])
    assert isinstance(ann_id, str)
    assert adapter.get("not-a-number") is None
    found = adapter.get_many([ann_id, "999999", "x"])
    assert list(found) == [ann_id]


def test_batches_cover_every_contact_once_in_key_order(host, adapter, people) -> None:
    for index in range(5):
        host.db.session.add(host.Contact(last_name=f"Extra {index}"))
    host.db.session.commit()
    batches = list(adapter.iter_batches(batch_size=2))
    assert [len(batch) for batch in batches] == [2, 2, 2, 1]
    ids = [contact.id for batch in batches for contact in batch]
    assert ids == sorted(ids)
    assert adapter.count() == 7


def test_contact_ids_come_in_the_batches_iter_batches_gives(host, adapter, people) -> None:
    for index in range(5):
        host.db.session.add(host.Contact(last_name=f"Extra {index}"))
    host.db.session.commit()
    expected = [
        [adapter.contact_id(contact) for contact in batch]
        for batch in adapter.iter_batches(batch_size=2)
    ]
    assert list(adapter.iter_contact_ids(batch_size=2)) == expected
    latest = max(contact.updated_at for batch in adapter.iter_batches() for contact in batch)
    recent = [
        [adapter.contact_id(contact) for contact in batch]
        for batch in adapter.iter_batches(modified_since=latest)
    ]
    assert list(adapter.iter_contact_ids(modified_since=latest)) == recent


def test_contact_ids_keep_a_subclasses_choice_of_contacts(host, people) -> None:
    class OnlyAnn(SQLAlchemyContactAdapter):
        def iter_batches(self, *, modified_since=None, batch_size=500):  # type: ignore[no-untyped-def]
            for batch in super().iter_batches(modified_since=modified_since, batch_size=batch_size):
                yield [contact for contact in batch if contact.first_name == "Ann"]

    adapter = OnlyAnn(host.Contact)
    adapter.bind(lambda: host.db.session)
    assert list(adapter.iter_contact_ids()) == [[str(people["ann"].id)]]


def test_create_and_delete_go_through_the_hosts_session(host, adapter) -> None:
    contact = adapter.create()
    adapter.set_values(contact, {"last_name": "New"})
    host.db.session.commit()
    assert adapter.count() == 1
    adapter.delete(contact)
    host.db.session.commit()
    assert adapter.count() == 0


def test_contact_url_comes_from_a_callable(host) -> None:
    adapter = SQLAlchemyContactAdapter(host.Contact, contact_url=lambda c: f"https://x/c/{c.id}")
    contact = host.Contact(id=5)
    assert adapter.contact_url(contact) == "https://x/c/5"
    assert SQLAlchemyContactAdapter(host.Contact).contact_url(contact) is None


def test_contact_url_outside_a_request_is_built_on_the_base_url(host) -> None:
    """The worker has no request: the link back to the contact uses ZOHO_SYNC_BASE_URL."""
    host.app.add_url_rule("/people/<int:contact_id>", "people.show", lambda contact_id: "")
    adapter = SQLAlchemyContactAdapter(host.Contact, contact_url="people.show")
    # Bound the way init_app binds the adapter it builds: to the current app's base URL.
    adapter.bind(lambda: host.db.session, base_url=lambda: get_state().config.base_url)
    contact = host.Contact(id=7)
    with host.app.app_context():
        state = get_state()
        assert adapter.contact_url(contact) is None  # no base URL: none sent, and logged
        state.config = replace(state.config, base_url="https://crm.example.com/app")
        assert adapter.contact_url(contact) == "https://crm.example.com/app/people/7"
    with host.app.test_request_context("/", base_url="http://localhost:5000"):
        assert adapter.contact_url(contact) == "http://localhost:5000/people/7"

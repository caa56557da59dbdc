"""The "Merged in Zoho" section: the admin sees each pair of contacts a Zoho merge left on
one record, and merges them through the host's adapter or keeps both; never a lost contact."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flask_zoho_sync.adapter import SQLAlchemyContactAdapter
from flask_zoho_sync.models import Link, RecordHistory
from tests.web.conftest import Admin


def _pair(admin: Admin) -> tuple[int, int, int]:
    """Contacts A (linked) and B (unlinked), and the open MERGED_PAIR error of B."""
    with admin.host.app.app_context():
        session = admin.host.db.session
        a = admin.host.Contact(last_name="Anna", email="anna@example.org")
        b = admin.host.Contact(last_name="Anne", email="anne@example.org", phone="555")
        session.add_all([a, b])
        session.flush()
        session.add(Link(module="Leads", contact_id=str(a.id), zoho_id="900001", snapshot={}))
        error = RecordHistory(
            contact_id=str(b.id),
            zoho_id="900001",
            direction="to_host",
            action="error",
            error_code="MERGED_PAIR",
            changes={"pair_contact_id": str(a.id), "former_zoho_id": "900002"},
            reason="Zoho merged record 900002 into record 900001",
        )
        session.add(error)
        session.commit()
        return a.id, b.id, error.id


def _contact_ids(admin: Admin) -> list[int]:
    with admin.host.app.app_context():
        return sorted(admin.host.db.session.scalars(sa.select(admin.host.Contact.id)))


def test_the_overview_and_the_page_show_the_pair_and_keep_both_closes_it(admin: Admin) -> None:
    a, b, error_id = _pair(admin)
    overview = admin.text("/")
    assert "Merged in Zoho" in overview and "now stand for one Zoho record" in overview
    page = admin.text("/identity")
    assert "Anna (anna@example.org)" in page and "Anne (anne@example.org)" in page
    assert "Keep both" in page
    assert "Merge the contacts" not in page  # the host's adapter has no merge_contacts
    refused = admin.post(f"/identity/{error_id}/merge", follow_redirects=True)
    assert "has not said how two of its contacts merge" in refused.get_data(as_text=True)
    kept = admin.post(f"/identity/{error_id}/keep", follow_redirects=True)
    assert "Kept both" in kept.get_data(as_text=True)
    assert _contact_ids(admin) == sorted([a, b])
    assert "No pairs to decide." in admin.text("/identity")
    assert "now stand for one Zoho record" not in admin.text("/")
    again = admin.post(f"/identity/{error_id}/keep", follow_redirects=True)
    assert "decided already" in again.get_data(as_text=True)


class _MergingAdapter(SQLAlchemyContactAdapter):
    """A host that merges contacts: the kept one takes the other's phone, the other goes."""

    def merge_contacts(self, keep: Any, other: Any) -> None:
        keep.phone = keep.phone or other.phone
        self.session.delete(other)


def test_merge_goes_through_the_hosts_adapter(admin: Admin) -> None:
    a, _b, error_id = _pair(admin)
    admin.state.adapter.__class__ = _MergingAdapter
    assert "Merge the contacts" in admin.text("/identity")
    merged = admin.post(f"/identity/{error_id}/merge", follow_redirects=True)
    assert "Merged contact" in merged.get_data(as_text=True)
    assert _contact_ids(admin) == [a]
    with admin.host.app.app_context():
        session = admin.host.db.session
        assert session.get(admin.host.Contact, a).phone == "555"
        assert session.scalar(sa.select(Link.contact_id)) == str(a)
        assert session.get(RecordHistory, error_id).resolved_at is not None
        assert (
            session.scalar(sa.select(RecordHistory.action).where(RecordHistory.action == "merge"))
            == "merge"
        )

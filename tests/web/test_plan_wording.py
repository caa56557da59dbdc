"""Issue 16: a plan with nothing in it must not claim agreement it did not check."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.web.conftest import Admin
from tests.web.test_sync_page import ready

__all__ = ["ready"]


def test_an_empty_since_last_plan_does_not_say_both_sides_agree_when_the_host_is_blank(
    ready: Admin, zoho_sandbox: Any
) -> None:
    host = ready.host
    with host.app.app_context():
        assert ready.state.run_sync(mode="all").status == "succeeded"
    # A since-last plan looks at changes only: with none, it says so, and claims no more.
    since_last = ready.plan({"mode": "since_last"}).get_data(as_text=True)
    assert "both sides agree" not in since_last
    assert "Nothing changed on either side since the last sync" in since_last
    assert "compare every record field by field" in since_last

    with host.app.app_context():
        # Blanked on the host side, as the pull left its contacts.
        host.db.session.execute(sa.text("UPDATE contact SET first_name = NULL"))
        host.db.session.commit()
    assert {r["First_Name"] for r in zoho_sandbox.records("Leads")} == {"Ann", "<script>x</script>"}
    full = ready.plan({"mode": "all"}).get_data(as_text=True)
    assert "every mapped field agrees" not in full
    assert "2 record changes" in full

"""The ``zoho_sync`` blueprint object that every view module adds its routes to, and the
one place the views read the per-app sync state from.

It is rooted at the package folder so its templates (``templates/zoho_sync/``) and static
files (``static/zoho_sync/``) are found next to the rest of the package. Blueprint templates
come after the app's own in Flask's search order, which is what lets a host override any of
them (most usefully ``zoho_sync/layout.html``) from its own templates folder.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app

from ..state import ZohoSyncState, state_of

PACKAGE_ROOT = Path(__file__).resolve().parent.parent

bp = Blueprint(
    "zoho_sync",
    __name__,
    root_path=str(PACKAGE_ROOT),
    template_folder="templates",
    static_folder="static",
    # Under the prefix, so it can never collide with the host's own /static.
    static_url_path="/static",
)


def sync_state() -> ZohoSyncState:
    """The sync state of the app serving this request (``app.extensions["zoho_sync"]``).

    One blueprint object serves any number of apps, so a view asks for the state of the
    app it runs in, once, and passes it to the helpers it calls.
    """
    return state_of(current_app)


def notify_preferences_changed(state: ZohoSyncState) -> None:
    """Tell the extension the settings or mapping changed, so change capture stops using its
    short-lived cache of watched fields and the auto-sync flag at once."""
    state.preferences_changed()

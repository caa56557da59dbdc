"""The admin pages: a ``zoho_sync`` blueprint mounted at ``ZOHO_SYNC_URL_PREFIX``.

``ZohoSync.init_app`` calls :func:`register_admin`; each view reads the state of the app it
serves (``blueprint.sync_state``), so one blueprint object serves any number of apps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from .blueprint import bp
from .url_values import ID_CONVERTER, DatabaseIdConverter

if TYPE_CHECKING:
    from ..state import ZohoSyncState

_wired = False


def _wire_blueprint() -> None:
    """Attach the views, guard and helpers to the blueprint, once per process.

    Done lazily rather than at import so that importing ``flask_zoho_sync.web`` (for
    ``public`` or the helpers) has no side effects on the blueprint.
    """
    global _wired
    if _wired:
        return
    from . import (  # noqa: F401  (routes register on import)
        connect,
        history_page,
        hooks,
        identity,
        mapping,
        operations,
        overview,
        revert_page,
        scope_page,
        settings,
        sync_page,
    )
    from .rendering import template_helpers
    from .security import guard

    bp.before_request(guard)
    bp.context_processor(template_helpers)
    _wired = True


def register_admin(app: Flask, state: ZohoSyncState) -> None:
    """Mount the admin pages (and their static files) under ``state.config.url_prefix``.

    Idempotent, so a host (or a test) that calls it after ``init_app`` already did is fine.
    """
    if bp.name in app.blueprints:
        return
    _wire_blueprint()
    # Before the blueprint's rules are added: they are compiled against the app's map.
    app.url_map.converters.setdefault(ID_CONVERTER, DatabaseIdConverter)
    app.register_blueprint(bp, url_prefix=state.config.url_prefix or None)
    host_csrf = app.extensions.get("csrf")
    if host_csrf is not None:
        # Machines call these with their own secret; they carry no form token. A host that
        # sets up CSRFProtect after ZohoSync must exempt them itself (see README).
        from .hooks import cron, notify

        host_csrf.exempt(cron)
        host_csrf.exempt(notify)


__all__ = ["register_admin"]

"""Who may use the admin pages, and the check of every form they post.

The extension cannot know the host's login system (there may be none), so the host says who
is an admin through ``admin_check``; without one the pages refuse everyone rather than guess.
Every POST must carry the session's CSRF token (``csrf``), checked here before any view runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import current_app, g, request
from flask.typing import ResponseReturnValue

from ..errors import ZohoSyncError
from ..schema import require_tables
from .blueprint import sync_state
from .csrf import csrf_problem
from .rendering import render_refusal

_PUBLIC_MARK = "_zoho_sync_public"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


def public(view: View) -> View:
    """Exempt a view from the admin check and the session CSRF check.

    For endpoints machines call with their own secret (the cron tick, Zoho notifications)
    and for the OAuth callback's sibling pages; a public POST must authenticate itself.
    """
    setattr(view, _PUBLIC_MARK, True)
    return view


def guard() -> ResponseReturnValue | None:
    """``before_request`` of the blueprint: admins only, and a valid token on every POST."""
    view = current_app.view_functions.get(request.endpoint or "")
    if request.endpoint == "zoho_sync.static" or getattr(view, _PUBLIC_MARK, False):
        return None
    if not current_app.secret_key:
        return render_refusal("zoho_sync/setup_needed.html", 500, problem="secret_key")
    state = sync_state()
    if state.admin_check is None:
        return render_refusal("zoho_sync/setup_needed.html", 403, problem="admin_check")
    if state.admin_check() is not True:
        return render_refusal(
            "zoho_sync/error.html",
            403,
            title="Administrators only",
            message="These pages are for administrators of this site. Sign in as an "
            "administrator, or ask one for access.",
        )
    if state.tenant_resolver is not None and not g.get("zoho_sync_tenant_named"):
        # Tenants are in use and this request belongs to none: showing the default
        # tenant's sync would show nobody's, or somebody else's.
        return render_refusal(
            "zoho_sync/error.html",
            403,
            title="No site chosen",
            message="These pages show the Zoho sync of one site or account, and this "
            "request names none. Open them from the site you administer.",
        )
    try:
        # After the admin check, so visitors learn nothing about the schema.
        require_tables(state.db.engine, state.adapter)
    except ZohoSyncError as exc:
        return render_refusal(
            "zoho_sync/error.html", 503, title="The database is not ready", message=str(exc)
        )
    if request.method not in _SAFE_METHODS:
        problem = csrf_problem()
        if problem is not None:
            return render_refusal(
                "zoho_sync/error.html", 400, title="Request refused", message=problem
            )
    return None

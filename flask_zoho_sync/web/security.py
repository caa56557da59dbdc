"""Who may use the admin pages, and CSRF protection for every form they post.

The extension cannot know the host's login system (there may be none), so the host says who
is an admin through ``admin_check``; without one the pages refuse everyone rather than guess.

CSRF: a host that already runs Flask-WTF's ``CSRFProtect`` protects every POST app-wide,
and the pages then use its token so there is one token per session, not two. The token is
still validated here (with Flask-WTF's own ``validate_csrf``), because a host may have
exempted this blueprint or turned ``WTF_CSRF_CHECK_DEFAULT`` off, and the pages must not be
left unprotected by a setting made for the host's own views. Without Flask-WTF the extension
keeps its own random per-session token. Either way the token is accepted from the
``csrf_token`` form field (forms work without JavaScript) or from the ``X-CSRFToken``
header, which htmx adds from ``hx-headers`` on ``<body>``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, request, session
from flask.typing import ResponseReturnValue

from ..errors import ZohoSyncError
from ..extension import get_state
from ..schema import require_tables
from .rendering import render_refusal

CSRF_FIELD = "csrf_token"
CSRF_HEADERS = ("X-CSRFToken", "X-CSRF-Token")
_CSRF_SESSION_KEY = "_zoho_sync_csrf"
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


def host_csrf_active() -> bool:
    """Whether the host runs Flask-WTF's ``CSRFProtect`` (whose token the pages then use)."""
    return "csrf" in current_app.extensions


def csrf_token() -> str:
    """The token forms and htmx requests must send back (created on first use)."""
    if host_csrf_active():
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())
    token = session.get(_CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_CSRF_SESSION_KEY] = token
    return token


def _csrf_problem() -> str | None:
    """Why this POST must be refused, or None when its token is right."""
    sent = request.form.get(CSRF_FIELD) or next(
        (request.headers[name] for name in CSRF_HEADERS if request.headers.get(name)), None
    )
    if not sent:
        return "The request carried no CSRF token. Reload the page and submit the form again."
    if host_csrf_active():
        from flask_wtf.csrf import validate_csrf
        from wtforms import ValidationError

        try:
            validate_csrf(sent)
        except ValidationError as exc:
            return f"{exc} Reload the page and try again."
        return None
    expected = session.get(_CSRF_SESSION_KEY)
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        return (
            "The CSRF token did not match this session (the page may be old, or the request "
            "came from another site). Reload the page and try again."
        )
    return None


def guard() -> ResponseReturnValue | None:
    """``before_request`` of the blueprint: admins only, and a valid token on every POST."""
    view = current_app.view_functions.get(request.endpoint or "")
    if request.endpoint == "zoho_sync.static" or getattr(view, _PUBLIC_MARK, False):
        return None
    if not current_app.secret_key:
        return render_refusal("zoho_sync/setup_needed.html", 500, problem="secret_key")
    state = get_state()
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
    try:
        # After the admin check, so visitors learn nothing about the schema.
        require_tables(state.db.engine, state.adapter)
    except ZohoSyncError as exc:
        return render_refusal(
            "zoho_sync/error.html", 503, title="The database is not ready", message=str(exc)
        )
    if request.method not in _SAFE_METHODS:
        problem = _csrf_problem()
        if problem is not None:
            return render_refusal(
                "zoho_sync/error.html", 400, title="Request refused", message=problem
            )
    return None

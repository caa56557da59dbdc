"""CSRF protection for every form the admin pages post.

A host that already runs Flask-WTF's ``CSRFProtect`` protects every POST app-wide, and the
pages then use its token so there is one token per session, not two. The token is still
validated here (with Flask-WTF's own ``validate_csrf``), because a host may have exempted
this blueprint or turned ``WTF_CSRF_CHECK_DEFAULT`` off, and the pages must not be left
unprotected by a setting made for the host's own views. Without Flask-WTF the extension
keeps its own random per-session token. Either way the token is accepted from the
``csrf_token`` form field (forms work without JavaScript) or from the ``X-CSRFToken``
header, which htmx adds from ``hx-headers`` on ``<body>``.

Its own module because both the guard (``security``, which checks the token) and the page
helpers (``rendering``, which put it in every form) need it, and the guard renders its
refusals with ``rendering``.
"""

from __future__ import annotations

import hmac
import secrets

from flask import current_app, request, session

CSRF_FIELD = "csrf_token"
CSRF_HEADERS = ("X-CSRFToken", "X-CSRF-Token")
_CSRF_SESSION_KEY = "_zoho_sync_csrf"


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


def csrf_problem() -> str | None:
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

"""Connecting to Zoho (OAuth consent and callback) and disconnecting.

The callback URL is public by nature, so everything it receives is distrusted: the ``state``
must be the one this session started (compared in constant time, usable once), and the
``accounts-server`` Zoho names must be one of Zoho's or one the operator listed, because the
code exchange sends the client secret there. ``ZohoOAuth.exchange_code`` enforces the latter
before any request; this module turns every refusal into a page that says what to do.
"""

from __future__ import annotations

import hmac
import secrets

from flask import current_app, make_response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from ..connection import describe_connection, forget_connection, refresh_token_warning
from ..state import ZohoSyncState
from ..zoho.datacentres import DATA_CENTRES, data_centre_for
from ..zoho.errors import ZohoError
from ._htmx import announce_change, hx_redirect, is_htmx
from .blueprint import bp, sync_state
from .messages import tell
from .overview import overview_fragment
from .rendering import render_refusal, render_zoho_error

_STATE_KEY = "_zoho_sync_oauth_state"
#: Zoho's grant codes, states and server names are well under this; longer is not Zoho's.
MAX_CALLBACK_VALUE = 2048
_CALLBACK_PARAMS = ("code", "state", "accounts-server", "location", "error")


def redirect_uri(state: ZohoSyncState) -> str:
    """The callback URL registered in the Zoho API console (configured, or our own)."""
    return state.config.redirect_uri or url_for("zoho_sync.oauth_callback", _external=True)


@bp.post("/connect")
def connect() -> ResponseReturnValue:
    """Send the admin to Zoho's consent page with a fresh one-time ``state``."""
    state = sync_state()
    oauth_state = secrets.token_urlsafe(32)
    session[_STATE_KEY] = oauth_state
    try:
        url = state.oauth(redirect_uri(state)).authorization_url(oauth_state)
    except ZohoError as exc:  # ZOHO_SYNC_ACCOUNTS_URL itself is not trusted
        session.pop(_STATE_KEY, None)
        return render_zoho_error(exc)
    return hx_redirect(url)


def _refuse_callback(title: str, message: str) -> ResponseReturnValue:
    return render_refusal(
        "zoho_sync/error.html", 400, title=title, message=message, action="connect"
    )


@bp.get("/oauth/callback")
def oauth_callback() -> ResponseReturnValue:
    """Zoho sends the admin back here with a grant code (or an error)."""
    expected = session.pop(_STATE_KEY, None)  # one-time, whatever happens next
    too_long = [
        name for name in _CALLBACK_PARAMS if len(request.args.get(name, "")) > MAX_CALLBACK_VALUE
    ]
    if too_long:
        return _refuse_callback(
            "This is not an answer from Zoho",
            f"The {too_long[0]!r} parameter is longer than the {MAX_CALLBACK_VALUE} "
            "characters Zoho sends. Nothing was stored; start again with Connect.",
        )
    error = request.args.get("error")
    if error:
        message = (
            "You declined access in Zoho, so nothing was connected."
            if error == "access_denied"
            else f"Zoho answered the consent with the error {error!r}; nothing was connected."
        )
        return _refuse_callback("Zoho did not grant access", message)
    sent = request.args.get("state", "")
    if (
        not isinstance(expected, str)
        or not sent
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        return _refuse_callback(
            "This sign-in is not one we started",
            "The answer from Zoho did not carry the state this browser session started "
            "(it may have expired, been used already, or come from another browser). "
            "Nothing was stored; start again with Connect.",
        )
    code = request.args.get("code")
    if not code:
        return _refuse_callback(
            "Zoho sent no grant code", "Nothing was stored; start again with Connect."
        )
    state = sync_state()
    accounts_server = request.args.get("accounts-server") or state.config.accounts_url
    oauth = state.oauth(redirect_uri(state))
    try:
        tokens = oauth.exchange_code(code, accounts_server, redirect_uri=redirect_uri(state))
        connection = state.connect(tokens, location=_location(tokens.accounts_server))
    except ZohoError as exc:
        current_app.logger.warning("Zoho connection failed: %s", exc)
        return render_zoho_error(exc)
    finally:
        state.record_usage(state.db.session)
    who = connection.zoho_user_email or connection.zoho_user_name or "your Zoho user"
    org = connection.org_name or "your Zoho organisation"
    tell(f"Connected to {org} as {who}. Now choose what to sync.", "success")
    warning = refresh_token_warning(state.db.session, connection)
    if warning:
        tell(warning, "warning")
    return redirect(url_for("zoho_sync.settings"))


def _location(accounts_server: str) -> str | None:
    """The data centre's code: Zoho's ``location`` when it names one of its data centres,
    else the one the (already trusted, normalised) accounts server belongs to."""
    named = request.args.get("location", "").strip().lower()
    if named in DATA_CENTRES:
        return named
    centre = data_centre_for(accounts_server)
    return centre.location if centre else None


@bp.post("/disconnect")
def disconnect() -> ResponseReturnValue:
    """Revoke the refresh token at Zoho, then forget the connection whatever Zoho said.

    A failed revoke must not keep the admin connected against their wish; it is reported
    so they can revoke the grant in Zoho's "Connected apps" themselves.
    """
    state = sync_state()
    db_session = state.db.session
    tokens = state.token_store().load() if describe_connection(db_session) else None
    if tokens is None:
        tell("Zoho CRM was not connected.", "info")
        return _after_disconnect(state)
    try:
        revoked = state.oauth().revoke(tokens)
    except ZohoError as exc:
        current_app.logger.warning("Revoking the Zoho token failed: %s", exc)
        tell(
            "Disconnected here, but Zoho could not be told to revoke the access "
            f"({exc.message}). Remove the app under Connected apps in your Zoho account.",
            "warning",
        )
    else:
        tell(
            "Disconnected from Zoho CRM; the access was revoked at Zoho."
            if revoked
            else "Disconnected from Zoho CRM (Zoho already considered the access revoked).",
            "success",
        )
    forget_connection(db_session)
    db_session.commit()
    state.record_usage(db_session)
    return _after_disconnect(state)


def _after_disconnect(state: ZohoSyncState) -> ResponseReturnValue:
    """The overview as it now stands, swapped in place with the message, and every other
    panel told to refresh; without JavaScript, back to the overview page."""
    if not is_htmx():
        return redirect(url_for("zoho_sync.overview"))
    body = overview_fragment(state) + render_template("zoho_sync/_messages_oob.html")
    return announce_change(make_response(body))

"""Zoho Accounts' OAuth endpoints: consent page, token exchange, refresh, revoke.

The token endpoint answers errors with HTTP 200 and an ``error`` key (reference §1.6),
which is the trap a client must not fall into; the sandbox reproduces it faithfully.
``api_domain`` and ``accounts-server`` are the sandbox's own base URL, so a client that
follows them (as it must with multi-DC Zoho) ends up talking to the sandbox.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, redirect, render_template, request

from . import tokens
from .responses import json_response
from .state import SandboxState


def base_url() -> str:
    return request.host_url.rstrip("/")


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def oauth_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint("sandbox_oauth", __name__)

    def _page_error(message: str) -> tuple[str, int]:
        return render_template("oauth_error.html", message=message), 400

    def _auth_params() -> dict[str, str]:
        source = request.form if request.method == "POST" else request.args
        keys = (
            "client_id",
            "response_type",
            "redirect_uri",
            "scope",
            "state",
            "access_type",
            "prompt",
        )
        return {k: source.get(k, "") for k in keys}

    def _validate(params: dict[str, str]) -> str | None:
        if params["client_id"] != state.client_id:
            return "Invalid Client: the client_id is not registered with this sandbox."
        if params["response_type"] != "code":
            return "Invalid response_type: only 'code' is supported."
        if not params["redirect_uri"]:
            return "Invalid Redirect Uri: redirect_uri is required."
        if state.redirect_uris is not None and params["redirect_uri"] not in state.redirect_uris:
            return "Invalid Redirect Uri: redirect_uri does not match the registered one."
        if not tokens.parse_scopes(params["scope"]):
            return "Invalid OAuth Scope: scope is required."
        return None

    @bp.get("/oauth/v2/auth")
    def consent() -> Response | tuple[str, int] | str:
        params = _auth_params()
        problem = _validate(params)
        if problem:
            return _page_error(problem)
        with state.lock:
            users = list(state.data["users"])
            company = state.data["org"]["company_name"]
        return render_template(
            "consent.html",
            params=params,
            users=users,
            company=company,
            scopes=tokens.parse_scopes(params["scope"]),
        )

    @bp.post("/oauth/v2/auth")
    def decide() -> Response | tuple[str, int]:
        params = _auth_params()
        problem = _validate(params)
        if problem:
            return _page_error(problem)
        extra = {"state": params["state"]} if params["state"] else {}
        if request.form.get("decision") != "authorise":
            return redirect(
                _with_query(params["redirect_uri"], {"error": "access_denied", **extra})
            )
        with state.lock:
            user = state.find_user(request.form.get("user_id")) or state.data["users"][0]
            code = tokens.create_grant(
                state,
                user_id=user["id"],
                redirect_uri=params["redirect_uri"],
                scopes=tokens.parse_scopes(params["scope"]),
                access_type=params["access_type"] or "online",
                prompt=params["prompt"] or None,
            )
            state.save()
        if code is None:
            return redirect(
                _with_query(params["redirect_uri"], {"error": "access_denied", **extra})
            )
        query = {"code": code, **extra, "location": state.location, "accounts-server": base_url()}
        return redirect(_with_query(params["redirect_uri"], query))

    @bp.post("/oauth/v2/token")
    def token() -> Response:
        form = {**request.args.to_dict(), **request.form.to_dict()}
        if (
            form.get("client_id") != state.client_id
            or form.get("client_secret") != state.client_secret
        ):
            return json_response({"error": "invalid_client"})
        grant_type = form.get("grant_type")
        with state.lock:
            if grant_type == "authorization_code":
                outcome = tokens.redeem_grant(
                    state, form.get("code", ""), form.get("redirect_uri", "")
                )
            elif grant_type == "refresh_token":
                outcome = tokens.refresh(state, form.get("refresh_token", ""))
            else:
                outcome = "unsupported_grant_type"
            state.save()
        if outcome == "Access Denied":
            return json_response(
                {
                    "error_description": "You have made too many requests continuously. "
                    "Please try again after some time.",
                    "error": "Access Denied",
                    "status": "failure",
                }
            )
        if isinstance(outcome, str):
            return json_response({"error": outcome})
        outcome["api_domain"] = base_url()
        return json_response(outcome)

    @bp.post("/oauth/v2/token/revoke")
    def revoke() -> Response:
        value = request.args.get("token") or request.form.get("token", "")
        with state.lock:
            revoked = tokens.revoke_refresh_token(state, value)
            state.save()
        if not revoked:
            return json_response({"status": "failure", "error": "invalid_token"}, 400)
        return json_response({"status": "success"})

    @bp.get("/oauth/serverinfo")
    def serverinfo() -> Response:
        """Zoho's DC lookup (§1.3): every location points at this sandbox."""
        url = base_url()
        return json_response(
            {"result": "success", "locations": {state.location: url}, "locations_url": {}}
        )

    return bp

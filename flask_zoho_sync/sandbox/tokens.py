"""OAuth grants and tokens with Zoho's lifetimes and caps (reference §1.2, §1.7).

Kept apart from the HTTP views so the control API can mint a refresh token exactly the way
the consent flow does, and so the caps that bite real integrations (10 refreshes per 10
minutes, 15 live access tokens, 20 refresh tokens per user, one-time 2-minute codes) live
in one place. Callers hold ``state.lock``.
"""

from __future__ import annotations

import secrets
from typing import Any

from .state import SandboxState

GRANT_CODE_TTL = 120
REFRESH_WINDOW = 600
MAX_REFRESHES_PER_WINDOW = 10
MAX_ACCESS_TOKENS = 15
MAX_REFRESH_TOKENS_PER_USER = 20
MAX_GRANTS_PER_WINDOW = 10

_WRITE_OPS = {"CREATE", "UPDATE", "DELETE", "WRITE"}


def _token() -> str:
    """Zoho's token look: ``1000.<32 hex>.<32 hex>``."""
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


def parse_scopes(raw: str | list[str] | None) -> list[str]:
    """Scopes arrive comma-separated in the authorize URL; accept spaces as well."""
    if raw is None:
        return []
    parts = raw if isinstance(raw, list) else raw.replace(",", " ").split()
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def scope_allows(
    scopes: list[str], resource: tuple[str, ...], operation: str, service: str = "ZohoCRM"
) -> bool:
    """Does any granted ``{service}.{resource}.{op}`` cover the needed resource and op?

    A broader resource covers a narrower one (``modules`` covers ``modules.leads``) and
    ``ALL`` covers every operation, as Zoho's scope grammar does (reference §1.8). The
    service is ``ZohoCRM`` except for the bulk-write upload, which is ``ZohoFiles``.
    """
    need = [r.lower() for r in resource]
    for scope in scopes:
        parts = scope.split(".")
        if len(parts) < 3 or parts[0].lower() != service.lower():
            continue
        granted, op = [p.lower() for p in parts[1:-1]], parts[-1].upper()
        if need[: len(granted)] != granted:
            continue
        if op == "ALL" or op == operation or (op == "WRITE" and operation in _WRITE_OPS):
            return True
    return False


def create_grant(
    state: SandboxState,
    *,
    user_id: str,
    redirect_uri: str,
    scopes: list[str],
    access_type: str,
    prompt: str | None,
) -> str | None:
    """A one-time grant code, or None when the client asked for too many (§1.7)."""
    now = state.timestamp()
    log = [t for t in state.data["grant_log"] if t > now - REFRESH_WINDOW]
    if len(log) >= MAX_GRANTS_PER_WINDOW:
        state.data["grant_log"] = log
        return None
    log.append(now)
    state.data["grant_log"] = log
    code = _token()
    state.data["codes"][code] = {
        "client_id": state.client_id,
        "user_id": user_id,
        "redirect_uri": redirect_uri,
        "scopes": scopes,
        "access_type": access_type,
        "prompt": prompt,
        "expires_at": now + GRANT_CODE_TTL,
    }
    return code


def redeem_grant(state: SandboxState, code: str, redirect_uri: str) -> dict[str, Any] | str:
    """Exchange a code: the token body, or the error string Zoho would send."""
    grant = state.data["codes"].pop(code, None)  # one-time, even when it fails below
    if grant is None or state.timestamp() >= grant["expires_at"]:
        return "invalid_code"
    if grant["redirect_uri"] != redirect_uri:
        return "invalid_redirect_uri"
    user_id, scopes = grant["user_id"], grant["scopes"]
    first_time = not any(
        r["user_id"] == user_id and not r["revoked"] for r in state.data["refresh_tokens"].values()
    )
    offline = grant["access_type"] == "offline"
    if offline and (first_time or grant["prompt"] == "consent"):
        refresh = mint_refresh_token(state, user_id, scopes)
        body = issue_access_token(state, refresh)
        return {"refresh_token": refresh, **body}
    return issue_access_token(state, None, user_id=user_id, scopes=scopes)


def mint_refresh_token(state: SandboxState, user_id: str, scopes: list[str]) -> str:
    """A new refresh token; the 21st live one for the user silently kills the oldest."""
    live = sorted(
        (
            r
            for r in state.data["refresh_tokens"].values()
            if r["user_id"] == user_id and not r["revoked"]
        ),
        key=lambda r: r["created_at"],
    )
    while len(live) >= MAX_REFRESH_TOKENS_PER_USER:
        revoke_refresh_token(state, live.pop(0)["token"])
    token = _token()
    state.data["refresh_tokens"][token] = {
        "token": token,
        "user_id": user_id,
        "scopes": scopes,
        "created_at": state.timestamp(),
        "revoked": False,
        "refreshes": [],
    }
    return token


def issue_access_token(
    state: SandboxState,
    refresh_token: str | None,
    *,
    user_id: str | None = None,
    scopes: list[str] | None = None,
) -> dict[str, Any]:
    """Mint an access token; past 15 live ones per refresh token the oldest is invalidated."""
    now = state.timestamp()
    if refresh_token is not None:
        parent = state.data["refresh_tokens"][refresh_token]
        user_id, scopes = parent["user_id"], parent["scopes"]
        live = sorted(
            (
                a
                for a in state.data["access_tokens"].values()
                if a["refresh_token"] == refresh_token
                and a["state"] == "active"
                and a["expires_at"] > now
            ),
            key=lambda a: a["issued_at"],
        )
        while len(live) >= MAX_ACCESS_TOKENS:
            live.pop(0)["state"] = "invalidated"
    _forget_dead_tokens(state, now)
    token = _token()
    state.data["access_tokens"][token] = {
        "token": token,
        "refresh_token": refresh_token,
        "user_id": user_id,
        "scopes": scopes,
        "issued_at": now,
        "expires_at": now + state.token_ttl,
        "state": "active",
    }
    return {
        "access_token": token,
        "scope": " ".join(scopes or []),
        "api_domain": None,  # filled with the request's base URL by the view
        "token_type": "Bearer",
        "expires_in": state.token_ttl,
    }


def _forget_dead_tokens(state: SandboxState, now: float) -> None:
    """Drop tokens long past expiry so a long demo does not grow without bound."""
    stale = [k for k, a in state.data["access_tokens"].items() if a["expires_at"] < now - 86_400]
    for key in stale:
        del state.data["access_tokens"][key]


def refresh(state: SandboxState, refresh_token: str) -> dict[str, Any] | str:
    """Use a refresh token: a new access token, ``invalid_code`` or the throttle body key."""
    parent = state.data["refresh_tokens"].get(refresh_token)
    if parent is None or parent["revoked"]:
        return "invalid_code"  # Zoho answers a revoked refresh token this way (§1.6)
    now = state.timestamp()
    recent = [t for t in parent["refreshes"] if t > now - REFRESH_WINDOW]
    if len(recent) >= MAX_REFRESHES_PER_WINDOW:
        parent["refreshes"] = recent
        return "Access Denied"
    recent.append(now)
    parent["refreshes"] = recent
    return issue_access_token(state, refresh_token)


def revoke_refresh_token(state: SandboxState, token: str) -> bool:
    """Revoke a refresh token (and its access tokens) or a single access token."""
    parent = state.data["refresh_tokens"].get(token)
    if parent is not None and not parent["revoked"]:
        parent["revoked"] = True
        for access in state.data["access_tokens"].values():
            if access["refresh_token"] == token:
                access["state"] = "revoked"
        return True
    access = state.data["access_tokens"].get(token)
    if access is not None and access["state"] == "active":
        access["state"] = "revoked"
        return True
    return False


def check_access_token(state: SandboxState, token: str) -> dict[str, Any] | str:
    """The token's record, or the error code a CRM call with it gets (§4.5)."""
    access = state.data["access_tokens"].get(token)
    if access is None or access["state"] == "revoked":
        return "INVALID_TOKEN"
    if access["state"] == "invalidated":
        return "INVALID_OAUTHTOKEN"
    if state.timestamp() >= access["expires_at"]:
        return "INVALID_TOKEN"
    return access


def expire_all(state: SandboxState) -> None:
    now = state.timestamp()
    for access in state.data["access_tokens"].values():
        access["expires_at"] = min(access["expires_at"], now)


def revoke_all(state: SandboxState) -> None:
    for token in list(state.data["refresh_tokens"]):
        revoke_refresh_token(state, token)
    for access in state.data["access_tokens"].values():
        access["state"] = "revoked"

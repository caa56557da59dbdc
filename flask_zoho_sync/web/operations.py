"""Endpoints for monitors: ``GET {prefix}/health`` (JSON) and ``GET {prefix}/metrics``.

A monitor has no admin session, so both take ZOHO_SYNC_HEALTH_TOKEN as a Bearer token
(compared in constant time); a signed-in admin needs none. On a multi-tenant host the token
holder names the tenant with ``?tenant=KEY``, or every tenant at once with ``?tenant=*``;
an admin sees the tenant of their request and no other. Refusals are JSON: 401 when no
credentials came, 403 when they are wrong.
"""

from __future__ import annotations

import hmac
import logging

from flask import Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from ..errors import ZohoSyncError
from ..health import all_tenants_health, health_report
from ..jobs import known_tenants
from ..metrics import INSTALL_HINT, metrics_available, render_metrics
from ..schema import require_tables
from ..state import ZohoSyncState
from ..tenancy import TenantKeyError, checked_tenant, current_tenant, tenant_context
from .blueprint import bp, sync_state
from .security import public

log = logging.getLogger(__name__)

#: ``?tenant=*``: every tenant with settings or a connection, in one answer (no tenant key
#: can be ``*``, so it names no tenant by mistake).
EVERY_TENANT = "*"


def _refuse(status: int, message: str) -> ResponseReturnValue:
    response = jsonify({"ok": False, "error": message})
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="zoho-sync"'
    return response, status


def _is_admin(state: ZohoSyncState) -> bool:
    if state.admin_check is None or not current_app.secret_key:
        return False
    try:
        return state.admin_check() is True
    except Exception:  # a host check that needs a login system the monitor does not have
        log.debug("admin_check raised for a monitor's request", exc_info=True)
        return False


def refusal(state: ZohoSyncState) -> ResponseReturnValue | None:
    """Why this request may not read health or metrics (None: it may)."""
    token = state.config.operations.health_token
    header = request.headers.get("Authorization", "")
    scheme, _, sent = header.partition(" ")
    if scheme.lower() == "bearer" and sent.strip():
        if token and hmac.compare_digest(sent.strip().encode(), token.encode()):
            return None
        if not token:
            return _refuse(403, "No token is accepted: ZOHO_SYNC_HEALTH_TOKEN is not set.")
        return _refuse(403, "The bearer token is not ZOHO_SYNC_HEALTH_TOKEN.")
    if _is_admin(state):
        return None
    if header:
        return _refuse(401, "Send the token as 'Authorization: Bearer <ZOHO_SYNC_HEALTH_TOKEN>'.")
    how = (
        "send 'Authorization: Bearer <ZOHO_SYNC_HEALTH_TOKEN>'"
        if token
        else "set ZOHO_SYNC_HEALTH_TOKEN and send it as 'Authorization: Bearer <token>'"
    )
    return _refuse(401, f"Sign in as an administrator, or {how}.")


def _chosen_tenant() -> tuple[str | None, ResponseReturnValue | None]:
    """The tenant a monitor asks about with ``?tenant=KEY`` (multi-tenant hosts), or None;
    :data:`EVERY_TENANT` for ``?tenant=*``.

    Only the operator's bearer token may name one, or all: an admin signed in to one site
    reads that site's figures, whatever the query says."""
    asked = request.args.get("tenant")
    if asked is None:
        return None, None
    if not request.headers.get("Authorization", "").lower().startswith("bearer "):
        return None, _refuse(403, "Only ZOHO_SYNC_HEALTH_TOKEN may name a tenant.")
    if asked.strip() == EVERY_TENANT:
        return EVERY_TENANT, None
    try:
        return checked_tenant(asked), None
    except TenantKeyError as exc:
        return None, _refuse(400, str(exc))


def _not_ready(state: ZohoSyncState) -> ResponseReturnValue | None:
    try:
        require_tables(state.db.engine, state.adapter)
    except ZohoSyncError as exc:
        return _refuse(503, str(exc))
    return None


@bp.get("/health")
@public
def health() -> ResponseReturnValue:
    """200 with the figures when healthy; 503 with the same figures and ``problems`` when
    not, so a plain HTTP check alarms without reading the body. With ``?tenant=*``, 503
    when any tenant is unhealthy (``health.all_tenants_health``)."""
    state = sync_state()
    refused = refusal(state) or _not_ready(state)
    if refused is not None:
        return refused
    tenant, refused = _chosen_tenant()
    if refused is not None:
        return refused
    if tenant == EVERY_TENANT:
        report = all_tenants_health(state, known_tenants(state))
        return jsonify(report), 200 if report["healthy"] else 503
    with tenant_context(tenant or current_tenant()):
        report = health_report(state)
    return jsonify(report), 200 if report["healthy"] else 503


@bp.get("/metrics")
@public
def metrics() -> ResponseReturnValue:
    """Prometheus' text format, from the database (``metrics.SyncCollector``); with
    ``?tenant=*`` every tenant's, each series labelled ``tenant``."""
    state = sync_state()
    refused = refusal(state)
    if refused is not None:
        return refused
    if not metrics_available():
        return _refuse(404, INSTALL_HINT)
    not_ready = _not_ready(state)
    if not_ready is not None:
        return not_ready
    tenant, refused = _chosen_tenant()
    if refused is not None:
        return refused
    if tenant == EVERY_TENANT:
        body, content_type = render_metrics(state, known_tenants(state))
        return Response(body, content_type=content_type)
    with tenant_context(tenant or current_tenant()):
        body, content_type = render_metrics(state)
    return Response(body, content_type=content_type)

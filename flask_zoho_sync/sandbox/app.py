"""Assemble the sandbox WSGI app from its parts.

One function builds the Flask app around a ``SandboxState`` so the same emulator can run
in-process for tests (``SandboxServer``), in the foreground for the demo
(``run_sandbox``), or be mounted by anything that speaks WSGI.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .api import crm_blueprint
from .bulk import bulk_blueprint
from .control import control_blueprint
from .guard import install_guard, method_not_allowed, not_found
from .notifications import attach
from .oauth import oauth_blueprint
from .responses import internal_error
from .seed import seeded_state
from .state import SandboxState
from .ui import ui_blueprint
from .watch import watch_blueprint


def create_sandbox_app(state: SandboxState | None = None, **options: Any) -> Flask:
    """Build the sandbox app; ``options`` configure a new ``SandboxState`` when none is given
    (``seed=N`` among them fills it with demo data)."""
    if state is None:
        state = seeded_state(**options)
    elif options:
        raise TypeError("pass options either to SandboxState or to create_sandbox_app, not both")
    attach(state)
    app = Flask(__name__)
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["zoho_sandbox"] = state
    install_guard(app, state)
    app.register_blueprint(oauth_blueprint(state))
    app.register_blueprint(watch_blueprint(state))
    app.register_blueprint(crm_blueprint(state))
    app.register_blueprint(bulk_blueprint(state))
    app.register_blueprint(control_blueprint(state))
    app.register_blueprint(ui_blueprint(state))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response | HTTPException:
        """Under /crm, routing errors wear Zoho's JSON; elsewhere Flask's pages are fine."""
        if not request.path.startswith("/crm/"):
            return error
        if error.code == 405:
            return method_not_allowed()
        if error.code == 404:
            return not_found()
        return error

    @app.errorhandler(Exception)
    def _crash(error: Exception) -> Response:
        app.logger.exception("sandbox error", exc_info=error)
        return internal_error()

    return app


def sandbox_state(app: Flask) -> SandboxState:
    """The state behind an app built by ``create_sandbox_app``."""
    return app.extensions["zoho_sandbox"]

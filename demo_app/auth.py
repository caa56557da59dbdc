"""A deliberately small login for the demo: one table of users, a session cookie, CSRF.

A real host would use Flask-Login or its own auth; what matters for the extension is the
``admin_check`` callable it is given (``current_user_is_admin`` here).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from .models import User, db

auth = Blueprint("auth", __name__)

#: Blueprints whose POSTs carry the demo's CSRF token (the extension checks its own).
_PROTECTED_BLUEPRINTS = {"auth", "contacts"}


def current_user() -> User | None:
    if "user" not in g:
        user_id = session.get("user_id")
        g.user = db.session.get(User, user_id) if user_id else None
    return g.user


def current_user_is_admin() -> bool:
    user = current_user()
    return bool(user and user.is_admin)


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def csrf_token() -> str:
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def _check_csrf() -> None:
    if request.method != "POST" or request.blueprint not in _PROTECTED_BLUEPRINTS:
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf_token", "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        abort(400, "The form expired or came from another site; reload the page and try again.")


#: Characters browsers and Werkzeug drop or rewrite inside a URL (tab, newline, CR, other
#: controls) and the backslash browsers read as "/": each can turn "/x" into "//host".
_REWRITTEN = re.compile(r"[\x00-\x1f\x7f\\]")


def _is_local_path(target: str) -> bool:
    """Whether ``target`` can only mean a path on this site, however it is normalised."""
    if _REWRITTEN.search(target):
        return False
    parts = urlsplit(target)
    return (
        target.startswith("/")
        and not target.startswith("//")
        and not parts.scheme
        and not parts.netloc
    )


def _safe_next(target: str | None) -> str:
    """Where to go after login: ``next`` when it stays on this site, else the contacts.

    An open redirect hides in the forms a URL takes on its way to the browser, so every
    form must be local: as sent and percent-decoded (``/%2F%2Fhost``, ``/%09/host``,
    ``/%5Chost``), repeatedly, since each hop may decode once more. A form holding a tab,
    newline or backslash is refused outright rather than stripped the way Werkzeug and
    browsers would (``/<tab>/host`` becomes ``//host``), so what is checked is what is sent.
    """
    fallback = url_for("contacts.index")
    if not target or len(target) > 2048:
        return fallback
    forms = [target]
    decoded = target
    for _ in range(5):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
        forms.append(decoded)
    else:
        return fallback  # still encoded after five rounds: nobody means that
    if all(_is_local_path(form) for form in forms):
        return target
    return fallback


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        user = db.session.scalar(db.select(User).where(User.email == email))
        if user and user.check_password(request.form.get("password", "")):
            session.clear()
            session["user_id"] = user.id
            return redirect(_safe_next(request.args.get("next")))
        flash("That email and password do not match an account.", "error")
    return render_template("login.html")


@auth.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))


def install_auth(app: Flask) -> None:
    app.register_blueprint(auth)
    app.before_request(_check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_user"] = current_user

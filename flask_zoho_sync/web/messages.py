"""One-time messages of the admin pages, kept apart from the host's ``flash()``.

Flask's flashed messages belong to the whole app: a host layout that shows
``get_flashed_messages()`` (most do, the demo's included) showed ours too, and our own
navigation showed them again, so every message appeared twice. Ours live under their own
session key, and only the admin pages' header takes them.
"""

from __future__ import annotations

from flask import session

_SESSION_KEY = "_zoho_sync_messages"
LEVELS = ("success", "info", "warning", "error")


def tell(text: str, level: str = "success") -> None:
    """Show ``text`` once, on the next admin page this browser renders."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    session[_SESSION_KEY] = [*session.get(_SESSION_KEY, []), [level, text]]


def take() -> list[tuple[str, str]]:
    """The messages waiting for this browser, as (level, text); each is handed out once."""
    waiting = session.pop(_SESSION_KEY, None) or []
    return [(str(level), str(text)) for level, text in waiting if level in LEVELS]

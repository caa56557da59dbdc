"""The handful of htmx helpers the admin pages need, kept private on purpose.

Depending on flask-htmx or htmx-flask would impose a request class or a global context
processor on the host app (reference/ecosystem.md §1); these few functions read the htmx 2
request headers directly and touch nothing outside the request.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, make_response, redirect, request

#: htmx stops polling when a response carries this status.
STOP_POLLING = 286
#: The event an answer fires (``HX-Trigger``) when what the panels show has changed:
#: connected or not, the module, a run that ended. Every panel that shows such state
#: listens for it (``hx-trigger="zs-changed from:body"``) and fetches itself again.
STATE_CHANGED = "zs-changed"


def is_htmx() -> bool:
    """Whether this request was sent by htmx (and so wants a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def hx_target() -> str | None:
    """The id of the element htmx will swap the answer into, if any."""
    return request.headers.get("HX-Target")


def hx_trigger(response: Response, events: str | dict[str, Any]) -> Response:
    """Ask htmx to fire client-side events once the answer is swapped in."""
    response.headers["HX-Trigger"] = events if isinstance(events, str) else json.dumps(events)
    return response


def hx_redirect(url: str) -> Response:
    """Send the browser to ``url``: a plain redirect, or ``HX-Redirect`` for htmx.

    htmx follows a 302 inside its XHR and would swap the whole next page into the target;
    ``HX-Redirect`` makes it navigate the window instead.
    """
    if not is_htmx():
        return redirect(url)
    response = make_response("", 200)
    response.headers["HX-Redirect"] = url
    return response


def announce_change(response: Response) -> Response:
    """Tell every panel on the page to show the new state (see ``STATE_CHANGED``)."""
    return hx_trigger(response, STATE_CHANGED)

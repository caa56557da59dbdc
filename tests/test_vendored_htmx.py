"""The vendored htmx is exactly the 2.0.11 release (no CDN, no accidental edits)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import flask_zoho_sync

HTMX = Path(flask_zoho_sync.__file__).parent / "static" / "zoho_sync" / "htmx-2.0.11.min.js"
#: sha384 of package/dist/htmx.min.js in the npm tarball htmx.org@2.0.11.
HTMX_2_0_11_SHA384 = "2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"


def test_vendored_htmx_is_the_pinned_release() -> None:
    digest = base64.b64encode(hashlib.sha384(HTMX.read_bytes()).digest()).decode()
    assert digest == HTMX_2_0_11_SHA384
    assert HTMX.with_name("htmx-LICENSE.txt").exists()

"""The recordings in ``recordings/``, read into one shape the replay tests share.

A recording keeps the path Zoho was called on in its own API version (v2 or v7 pages, for
example); the client and the sandbox speak v8, whose shapes for these endpoints are the same
(reference §0), so :meth:`Recording.v8_path` is what the tests call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).parent / "recordings"

_VERSIONED = re.compile(r"^/crm/(bulk/)?v\d+(?=/)")


@dataclass(frozen=True)
class Recording:
    name: str
    title: str
    source: dict[str, Any]
    api_version: str
    method: str
    path: str
    query: dict[str, str]
    request_body: Any
    status: int
    headers: dict[str, str]
    body: Any
    org_specific_keys: frozenset[str] = field(default_factory=frozenset)

    def v8_path(self) -> str:
        """The recorded path on the v8 API (``/crm/v7/Leads`` becomes ``/crm/v8/Leads``)."""
        return _VERSIONED.sub(lambda match: f"/crm/{match.group(1) or ''}v8", self.path)

    def body_text(self) -> str:
        return "" if self.body is None else json.dumps(self.body)

    def content_type(self) -> str:
        return self.headers.get("Content-Type", "application/json;charset=utf-8")


def load(name: str) -> Recording:
    raw = json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))
    request = raw["request"]
    response = raw["response"]
    return Recording(
        name=name,
        title=raw["title"],
        source=raw["source"],
        api_version=raw["api_version"],
        method=request["method"],
        path=request["path"],
        query=dict(request.get("query") or {}),
        request_body=request.get("body"),
        status=int(response["status"]),
        headers=dict(response.get("headers") or {}),
        body=response.get("body"),
        org_specific_keys=frozenset(raw.get("org_specific_keys") or ()),
    )


def names() -> list[str]:
    return sorted(path.stem for path in RECORDINGS.glob("*.json"))

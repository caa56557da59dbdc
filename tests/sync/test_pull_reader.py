"""Which reader a pull uses: COQL when the setting is on and it can select every pulled
field, REST otherwise, and REST again when Zoho refuses the first COQL query."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from flask_zoho_sync.sync.coercion import ZohoField
from flask_zoho_sync.sync.context import EngineOptions
from flask_zoho_sync.sync.pull import PullPass
from flask_zoho_sync.zoho.errors import ZohoRequestError, ZohoScopeMismatch

SINCE = datetime(2026, 12, 1, tzinfo=timezone.utc)


class _Client:
    """Records which reader was asked for; COQL fails with ``coql_error`` if one is set."""

    def __init__(self, coql_error: Exception | None = None) -> None:
        self.coql_error = coql_error
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def iter_pages(self, module: str, fields: list[str], **kw: Any):  # type: ignore[no-untyped-def]
        self.asked.append(("rest", kw))
        yield [{"id": "1", "via": "rest"}]

    def iter_coql_pages(self, module: str, fields: list[str], **kw: Any):  # type: ignore[no-untyped-def]
        self.asked.append(("coql", kw))
        if self.coql_error is not None:
            raise self.coql_error
        yield [{"id": "1", "via": "coql"}]


def _pull(client: _Client, types: dict[str, str], *, coql: bool = True) -> PullPass:
    mapping = SimpleNamespace(
        zoho_fields=[ZohoField(name, name, kind) for name, kind in types.items()],
        zoho_api_names=lambda: list(types),
    )
    engine = SimpleNamespace(
        client=client,
        mapping=mapping,
        adapter=None,
        ledger=SimpleNamespace(module="Leads"),
        options=EngineOptions(pull_with_coql=coql, max_concurrency=3),
    )
    return PullPass(engine, SimpleNamespace())  # type: ignore[arg-type]


def _via(pull: PullPass) -> list[str]:
    return [record["via"] for page in pull._changed_pages(SINCE) for record in page]


def test_coql_reads_when_on_with_the_concurrency_and_since() -> None:
    client = _Client()
    assert _via(_pull(client, {"Email": "email", "Modified_Time": "datetime"})) == ["coql"]
    # Converted leads stay in the pages (the pull settles linked ones): converted=both.
    assert client.asked == [
        ("coql", {"modified_since": SINCE, "concurrency": 3, "keep_converted": True})
    ]


def test_on_by_default_and_off_reads_by_rest() -> None:
    client = _Client()
    assert _via(_pull(client, {"Email": "email"}, coql=False)) == ["rest"]
    assert EngineOptions().pull_with_coql is True


@pytest.mark.parametrize("kind", ["multiselectlookup", "subform", "fileupload", "imageupload"])
def test_a_field_coql_cannot_select_keeps_the_pull_on_rest(kind: str) -> None:
    client = _Client()
    assert _via(_pull(client, {"Email": "email", "Odd": kind})) == ["rest"]
    assert [reader for reader, _ in client.asked] == ["rest"]


def test_more_fields_than_a_select_takes_keeps_the_pull_on_rest() -> None:
    client = _Client()
    many = {f"Field_{n}": "text" for n in range(49)}  # with id and Converted__s: 51
    assert _via(_pull(client, many)) == ["rest"]


@pytest.mark.parametrize(
    "refusal",
    [
        ZohoScopeMismatch("Unauthorized", code="OAUTH_SCOPE_MISMATCH", http_status=401),
        ZohoRequestError("data type not supported", code="INVALID_QUERY", http_status=400),
    ],
)
def test_a_refused_first_query_falls_back_to_rest(refusal: Exception) -> None:
    client = _Client(coql_error=refusal)
    assert _via(_pull(client, {"Email": "email"})) == ["rest"]
    assert [reader for reader, _ in client.asked] == ["coql", "rest"]

"""The same import and export done the way others do it, for comparison.

* ``naive``: what Zapier-style tools do, one call per record: list the ids, then fetch each
  record on its own; create each record with its own POST.
* ``sdk``: Zoho's official Python SDK (``zohocrmsdk8_0``, ``pip install -e .[bench]``) with
  its batch calls: pages of 200 read with ``page_token``, upserts of 100 on Email.

Both write into (or read from) the same host contacts table our sync uses, with one
multi-row INSERT per page, so the database work is the same or less than ours (ours also
keeps links, snapshots and per-record history); the difference is the API traffic.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import requests
import sqlalchemy as sa

from bench.harness import HostApp
from flask_zoho_sync.sandbox.handle import SandboxHandle

FIELDS = ["id", "First_Name", "Last_Name", "Email"]


def _token(zoho: SandboxHandle) -> tuple[str, str]:
    """A refresh token and an access token for a script of our own."""
    refresh = zoho.mint_refresh_token()["refresh_token"]
    reply = requests.post(
        f"{zoho.accounts_server}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": zoho.client_id,
            "client_secret": zoho.client_secret,
        },
        timeout=30,
    )
    reply.raise_for_status()
    return refresh, reply.json()["access_token"]


def _insert_page(host: HostApp, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    rows = [
        {
            "first_name": record.get("First_Name"),
            "last_name": record.get("Last_Name"),
            "email": record.get("Email"),
        }
        for record in records
    ]
    with host.app.app_context(), host.db.engine.begin() as connection:
        connection.execute(sa.insert(host.Contact.__table__), rows)


def _host_pages(host: HostApp, size: int) -> Iterator[list[dict[str, Any]]]:
    table = host.Contact.__table__
    last = 0
    with host.app.app_context():
        engine = host.db.engine
        while True:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.select(table.c.id, table.c.first_name, table.c.last_name, table.c.email)
                    .where(table.c.id > last)
                    .order_by(table.c.id)
                    .limit(size)
                ).all()
            if not rows:
                return
            last = rows[-1].id
            yield [
                {"First_Name": r.first_name, "Last_Name": r.last_name, "Email": r.email}
                for r in rows
            ]


# -- naive: one call per record --------------------------------------------------------------


def naive_import(zoho: SandboxHandle, host: HostApp) -> None:
    _, access = _token(zoho)
    session = requests.Session()
    headers = {"Authorization": f"Zoho-oauthtoken {access}"}
    base = f"{zoho.api_domain}/crm/v8/Leads"
    ids: list[str] = []
    params: dict[str, Any] = {"fields": "id", "per_page": 200, "page": 1}
    while True:
        reply = session.get(base, params=params, headers=headers, timeout=60)
        if reply.status_code == 204:
            break
        body = reply.json()
        ids.extend(record["id"] for record in body["data"])
        info = body["info"]
        if not info["more_records"]:
            break
        params = {"fields": "id", "per_page": 200, "page_token": info["next_page_token"]}
    page: list[dict[str, Any]] = []
    for record_id in ids:
        reply = session.get(f"{base}/{record_id}", headers=headers, timeout=60)
        page.append(reply.json()["data"][0])
        if len(page) == 200:
            _insert_page(host, page)
            page = []
    _insert_page(host, page)
    session.close()


def naive_export(zoho: SandboxHandle, host: HostApp) -> None:
    _, access = _token(zoho)
    session = requests.Session()
    headers = {"Authorization": f"Zoho-oauthtoken {access}"}
    base = f"{zoho.api_domain}/crm/v8/Leads"
    for page in _host_pages(host, 500):
        for record in page:
            reply = session.post(base, json={"data": [record]}, headers=headers, timeout=60)
            if reply.status_code >= 300:
                raise RuntimeError(f"naive export: HTTP {reply.status_code}")
    session.close()


# -- the official SDK, batch calls ------------------------------------------------------------


def load_sdk() -> None:
    """Import the SDK's modules before the clock starts, as ours are: a process pays for
    its imports once, and the first timed SDK run was paying for them (about a second of
    CPU, most of its 10,000-record import), which flattered our ratio."""
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken  # noqa: F401
    from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore  # noqa: F401
    from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter  # noqa: F401
    from zohocrmsdk.src.com.zoho.crm.api.header_map import HeaderMap  # noqa: F401
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer  # noqa: F401
    from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap  # noqa: F401
    from zohocrmsdk.src.com.zoho.crm.api.record import RecordOperations  # noqa: F401
    from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig  # noqa: F401


class SdkSession:
    """The SDK initialised against the sandbox (reference §9.3): a custom Environment whose
    URLs are the sandbox's, ``find_user=False`` (no users call), and a FileStore and field
    cache in a temporary directory. The sandbox's token reply names its own address as
    ``api_domain``, an unknown host, so the SDK keeps our Environment instead of switching
    to Zoho's US data centre."""

    def __init__(self, zoho: SandboxHandle) -> None:
        from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
        from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
        from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
        from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
        from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

        self._scratch = tempfile.TemporaryDirectory()
        refresh, _ = _token(zoho)
        environment = DataCenter.Environment(
            zoho.api_domain, f"{zoho.accounts_server}/oauth/v2/token", zoho.api_domain
        )
        token = OAuthToken(
            client_id=zoho.client_id,
            client_secret=zoho.client_secret,
            refresh_token=refresh,
            find_user=False,
        )
        Initializer.initialize(
            environment=environment,
            token=token,
            store=FileStore(f"{self._scratch.name}/tokens.txt"),
            sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
            resource_path=self._scratch.name,
        )

    def close(self) -> None:
        self._scratch.cleanup()


def sdk_import(zoho: SandboxHandle, host: HostApp) -> None:
    from zohocrmsdk.src.com.zoho.crm.api.header_map import HeaderMap
    from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap
    from zohocrmsdk.src.com.zoho.crm.api.record import (
        GetRecordsParam,
        RecordOperations,
        ResponseWrapper,
    )

    sdk = SdkSession(zoho)
    try:
        operations = RecordOperations("Leads")
        page_token: str | None = None
        page = 1
        while True:
            params = ParameterMap()
            params.add(GetRecordsParam.fields, ",".join(FIELDS))
            params.add(GetRecordsParam.per_page, 200)
            if page_token:
                params.add(GetRecordsParam.page_token, page_token)
            else:
                params.add(GetRecordsParam.page, page)
            response = operations.get_records(params, HeaderMap())
            wrapper = response.get_object() if response is not None else None
            if not isinstance(wrapper, ResponseWrapper):
                break
            records = wrapper.get_data()
            _insert_page(
                host,
                [{name: record.get_key_value(name) for name in FIELDS[1:]} for record in records],
            )
            info = wrapper.get_info()
            if not info.get_more_records():
                break
            page_token = info.get_next_page_token()
            page += 1
    finally:
        sdk.close()


def sdk_export(zoho: SandboxHandle, host: HostApp) -> None:
    from zohocrmsdk.src.com.zoho.crm.api.header_map import HeaderMap
    from zohocrmsdk.src.com.zoho.crm.api.record import (
        ActionWrapper,
        BodyWrapper,
        Record,
        RecordOperations,
    )

    sdk = SdkSession(zoho)
    try:
        operations = RecordOperations("Leads")
        for page in _host_pages(host, 100):
            body = BodyWrapper()
            batch = []
            for values in page:
                record = Record()
                for name, value in values.items():
                    record.add_key_value(name, value)
                batch.append(record)
            body.set_data(batch)
            body.set_duplicate_check_fields(["Email"])
            body.set_trigger([])
            response = operations.upsert_records(body, HeaderMap())
            if not isinstance(response.get_object(), ActionWrapper):
                raise RuntimeError(f"SDK upsert failed: HTTP {response.get_status_code()}")
    finally:
        sdk.close()

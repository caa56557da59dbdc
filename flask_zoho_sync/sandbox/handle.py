"""A client for the sandbox's control API, used by the pytest fixture and scripts.

It talks HTTP rather than touching ``SandboxState`` so the same handle can drive an
in-process sandbox or one running elsewhere (``--zoho-sandbox-url``). Only ``requests`` is
imported, so loading the pytest plugin stays cheap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests


class SandboxControlError(RuntimeError):
    """The control API refused a request; the message carries its answer."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"sandbox control API answered {status}: {body}")
        self.status = status
        self.body = body


class SandboxHandle:
    """Drive a running sandbox: tokens, faults, clock, records as a Zoho user, logs."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        info = self._call("GET", "/info")
        self.client_id: str = info["client_id"]
        self.client_secret: str = info["client_secret"]
        self.accounts_server: str = info["accounts_server"]
        self.api_domain: str = info["api_domain"]

    def _call(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        response = self.session.request(
            method,
            f"{self.url}/__sandbox__{path}",
            json=json,
            params=params or None,
            timeout=self.timeout,
        )
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise SandboxControlError(response.status_code, body)
        return body

    # ------------------------------------------------------------------ tokens
    def mint_refresh_token(
        self, scope: str | list[str] | None = None, user: str | None = None
    ) -> dict[str, Any]:
        """A refresh token for the sandbox's client (skips the browser consent flow)."""
        payload: dict[str, Any] = {}
        if scope is not None:
            payload["scope"] = scope
        if user is not None:
            payload["user"] = user
        return self._call("POST", "/tokens", payload)

    # --------------------------------------------------------- meters and faults
    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def reset(self, **options: Any) -> None:
        """Back to the start state (``keep_custom_fields``, ``keep_tokens``, ``seed``)."""
        self._call("POST", "/reset", options)

    def faults(self, **settings: Any) -> dict[str, Any]:
        """Set faults: latency_ms, rate_429, rate_5xx, seed, fail_next, delay_next,
        garble_next, fail_records, page_token_ttl, token_ttl, daily_credits,
        concurrency_limit, expire_access_tokens, revoke_all_tokens, consume_credits, clear."""
        return self._call("POST", "/faults", settings)

    # --------------------------------------------------------------------- clock
    def now(self) -> datetime:
        return datetime.fromisoformat(self._call("GET", "/clock")["now"])

    def advance_clock(self, seconds: float) -> datetime:
        return datetime.fromisoformat(
            self._call("POST", "/clock", {"advance_seconds": seconds})["now"]
        )

    def set_clock(self, moment: datetime | str) -> datetime:
        value = moment.isoformat() if isinstance(moment, datetime) else moment
        return datetime.fromisoformat(self._call("POST", "/clock", {"set": value})["now"])

    # ---------------------------------------------------- records as a Zoho user
    def create_record(
        self, module: str, fields: dict[str, Any], user: str | None = None
    ) -> dict[str, Any]:
        return self._call("POST", f"/records/{module}", {"fields": fields, "user": user})["record"]

    def generate_records(self, module: str, count: int, start: int = 1) -> list[str]:
        """Quickly add ``count`` synthetic records (for pagination tests); returns ids."""
        return self._call("POST", f"/records/{module}", {"generate": count, "start": start})["ids"]

    def update_record(
        self, module: str, record_id: str, fields: dict[str, Any], user: str | None = None
    ) -> dict[str, Any]:
        body = self._call(
            "PATCH", f"/records/{module}/{record_id}", {"fields": fields, "user": user}
        )
        return body["record"]

    def delete_record(
        self, module: str, record_id: str, user: str | None = None, permanent: bool = False
    ) -> dict[str, Any]:
        return self._call(
            "DELETE",
            f"/records/{module}/{record_id}",
            {"user": user},
            permanent="true" if permanent else "false",
        )

    def convert_lead(
        self, record_id: str, *, deal: dict[str, Any] | None = None, user: str | None = None
    ) -> dict[str, Any]:
        """Convert a lead as a Zoho user would (no credits): the answer's ``details``, the
        new Contact, Account (from the lead's Company) and Deal (when ``deal`` is given)."""
        body: dict[str, Any] = {"user": user}
        if deal is not None:
            body["Deals"] = deal
        return self._call("POST", f"/records/Leads/{record_id}/convert", body)

    def merge_records(
        self,
        module: str,
        master_id: str,
        child_ids: list[str],
        take: dict[str, list[str]] | None = None,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Merge ``child_ids`` into ``master_id`` as a Zoho user would; ``take`` names, per
        child id, the fields whose values the master takes from it."""
        take = take or {}
        data = [
            {"id": child, "_fields": [{"api_name": name} for name in take.get(child, [])]}
            for child in child_ids
        ]
        return self._call(
            "POST",
            f"/records/{module}/{master_id}/merge",
            {"merge": [{"data": data}], "user": user},
        )

    def refuse_duplicate_email(self, module: str, refuse: bool = True) -> None:
        """Tick Email's "Do not allow duplicate values" in ``module``: a create or update
        repeating another record's Email is then refused with DUPLICATE_DATA."""
        self._call("POST", f"/unique-email/{module}", {"refuse": refuse})

    def records(self, module: str) -> list[dict[str, Any]]:
        """Every live record, converted leads included, at no credit cost."""
        return self._call("GET", f"/records/{module}")["data"]

    def record(self, module: str, record_id: str) -> dict[str, Any]:
        return self._call("GET", f"/records/{module}/{record_id}")["record"]

    def deleted(self, module: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/deleted/{module}")["data"]

    # ---------------------------------------------------------- metadata and logs
    def add_custom_field(self, module: str, **spec: Any) -> dict[str, Any]:
        return self._call("POST", f"/fields/{module}", spec)["field"]

    def change_field(self, module: str, field_name: str, /, **changes: Any) -> dict[str, Any]:
        """As a Zoho admin: rename (``api_name=``), retype (``data_type=``), lock
        (``read_only=True``) or drop picklist values (``remove_pick_list_values=[...]``)."""
        return self._call("PATCH", f"/fields/{module}/{field_name}", changes)["field"]

    def delete_field(self, module: str, api_name: str) -> None:
        """As a Zoho admin: delete a custom field (and the values records held in it)."""
        self._call("DELETE", f"/fields/{module}/{api_name}", {})

    def set_org(self, **settings: Any) -> dict[str, Any]:
        return self._call("POST", "/org", settings)["org"]

    def notifications(self, wait: float = 5.0) -> list[dict[str, Any]]:
        """Deliveries so far, after waiting up to ``wait`` s for queued ones to be sent."""
        return self._call("GET", "/notifications", wait=wait)["deliveries"]

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

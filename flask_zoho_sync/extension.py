"""``ZohoSync``: the Flask extension object, and where the faces are wired to an app.

Following Flask's extension guide, the extension object holds no app; everything an app
needs lives in ``app.extensions["zoho_sync"]`` (a :class:`~flask_zoho_sync.state.ZohoSyncState`),
built once in ``init_app`` from validated settings. ``init_app`` is the top of the house: it
mounts the admin pages, adds the CLI and connects change capture to the jobs, and nothing
in the package imports it back.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, g

from .adapter import ContactAdapter, SQLAlchemyContactAdapter
from .alerts import connect_alerts
from .capture import CaptureHandle, TenantLookup, install_capture
from .cli import zoho_sync_cli
from .config import read_config
from .crypto import TokenVault
from .errors import ConfigurationError
from .jobs import schedule_push
from .models import attach_tables
from .scope import scope_from_config
from .state import EXTENSION_KEY, AdminCheck, SendMail, ZohoSyncState, state_of
from .sync.scope import ScopeRefused
from .tenancy import TenantResolver, enter_tenant, install_tenant_filter, leave_tenant
from .web import register_admin

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

__all__ = ["EXTENSION_KEY", "ZohoSync", "ZohoSyncState", "get_state"]


#: One capture per Flask-SQLAlchemy object: several apps (an app factory, tests) may share
#: one ``db``; the listeners look up the current app's state when they fire.
_CAPTURES: weakref.WeakKeyDictionary[Any, CaptureHandle] = weakref.WeakKeyDictionary()


class ZohoSync:
    """Flask-Zoho-Sync. ``ZohoSync(app, db=db)`` or ``ext = ZohoSync(db=db)`` then
    ``ext.init_app(app)``.

    :param db: the host's Flask-SQLAlchemy object; the extension's tables join its metadata.
    :param contact_model: the host's contact model, read through the default
        :class:`~flask_zoho_sync.adapter.SQLAlchemyContactAdapter`.
    :param adapter: a :class:`~flask_zoho_sync.adapter.ContactAdapter` instead, for hosts
        whose contacts need custom reading and writing (custom-field tables, JSON columns).
    :param admin_check: a callable returning True when the current user may use the admin
        pages. Without one the pages refuse everyone.
    :param tenant: for a multi-tenant host, a callable returning the tenant key (the current
        site, account or organisation) of the request being served, or None when the
        request belongs to no tenant; each tenant then has its own Zoho connection,
        settings, mapping, outbox and history (``flask_zoho_sync.tenancy``). Without one
        the app is a single tenant, ``default``.
    :param send_mail: how alert emails go out:
        ``send_mail(subject=..., body=..., recipients=[...])``. Without one, Flask-Mail is
        used when the app has it; with neither, incidents show on the admin pages only.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        contact_model: type[Any] | None = None,
        adapter: ContactAdapter | None = None,
        admin_check: AdminCheck | None = None,
        send_mail: SendMail | None = None,
        tenant: TenantResolver | None = None,
    ) -> None:
        self.db = db
        self.contact_model = contact_model
        self.adapter = adapter
        self.admin_check = admin_check
        self.send_mail = send_mail
        self.tenant = tenant
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        *,
        db: SQLAlchemy | None = None,
        contact_model: type[Any] | None = None,
        adapter: ContactAdapter | None = None,
        admin_check: AdminCheck | None = None,
        send_mail: SendMail | None = None,
        tenant: TenantResolver | None = None,
    ) -> None:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("Flask-Zoho-Sync is already registered on this app.")
        database = db or self.db
        if database is None:
            raise ConfigurationError(
                "Flask-Zoho-Sync needs the app's Flask-SQLAlchemy object: ZohoSync(app, db=db)."
            )
        config = read_config(app.config)
        try:  # what syncs, from config: refused at start-up like any malformed key
            scope_from_config(app.config)
        except ScopeRefused as exc:
            raise ConfigurationError(f"ZOHO_SYNC_SCOPE_* / ZOHO_SYNC_MATCH_KEY: {exc}") from exc
        vault = TokenVault(config.encryption_keys)
        adapter = adapter or self.adapter
        model = contact_model or self.contact_model
        if adapter is None and model is None:
            raise ConfigurationError(
                "Flask-Zoho-Sync needs to know the host's contacts: pass "
                "ZohoSync(app, db=db, contact_model=Contact) or adapter=YourContactAdapter()."
            )
        if adapter is None:
            adapter = SQLAlchemyContactAdapter(model)  # type: ignore[arg-type]
        adapter.bind(lambda: database.session, base_url=_base_url)
        attach_tables(database.metadata)
        install_tenant_filter()
        app.extensions[EXTENSION_KEY] = ZohoSyncState(
            config,
            database,
            vault,
            adapter=adapter,
            admin_check=admin_check or self.admin_check,
            send_mail=send_mail or self.send_mail,
            tenant_resolver=tenant or self.tenant,
        )
        if tenant or self.tenant:
            # App-wide, not only the admin pages: a host view editing contacts writes its
            # outbox rows, and schedules its push, as the tenant of that request.
            app.before_request(_enter_request_tenant)
            app.teardown_request(_leave_request_tenant)
        connect_alerts()
        model = getattr(adapter, "model", None)
        if model is not None and database not in _CAPTURES:
            _CAPTURES[database] = install_capture(
                database.session,
                model=model,
                watched_attributes=_watched_attributes,
                on_commit=_after_host_commit,
                tenant_lookup=_tenant_lookup(adapter),
            )
        app.cli.add_command(zoho_sync_cli)
        register_admin(app, app.extensions[EXTENSION_KEY])


def get_state(app: Flask | None = None) -> ZohoSyncState:
    """The current app's sync state, or a message saying the extension is not set up.

    For host code and tests (``flask_zoho_sync.get_state``). The package's own rooms never
    call it: the faces read the state of the app they serve, and hand it down.
    """
    return state_of(app or current_app)


def _watched_attributes() -> frozenset[str]:
    """Capture's question, asked of the app whose session is committing."""
    return get_state().watched_attributes()


def _after_host_commit(contact_ids: list[str]) -> None:
    """Schedule the debounced push for a host commit that changed contacts.

    Capture logs and swallows a failure (Redis down): the outbox row is kept and the next
    tick schedules it."""
    state = get_state()
    if contact_ids and state.auto_sync_enabled():
        schedule_push(state)


def _tenant_lookup(adapter: ContactAdapter) -> TenantLookup | None:
    """Capture's way to a contact's tenant: the adapter's tenant column, if it has one."""
    if getattr(adapter, "tenant_attribute", None) is None:
        return None
    return adapter.tenants_of  # type: ignore[attr-defined,no-any-return]


def _enter_request_tenant() -> None:
    """Run the request as the tenant the host's resolver names (none: the default tenant,
    which the admin pages refuse when tenants are in use)."""
    tenant = get_state().tenant_resolver()  # type: ignore[misc]
    g.zoho_sync_tenant_named = tenant is not None
    if tenant is not None:
        g.zoho_sync_tenant_token = enter_tenant(str(tenant))


def _leave_request_tenant(_error: BaseException | None) -> None:
    token = g.pop("zoho_sync_tenant_token", None)
    if token is not None:
        leave_tenant(token)


def _base_url() -> str | None:
    """Where the adapter builds contact URLs outside a request: the current app's
    ``ZOHO_SYNC_BASE_URL``."""
    return get_state().config.base_url

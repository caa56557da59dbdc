"""Which tenant's sync this is: one Zoho connection, settings, mapping and outbox per tenant.

A multi-tenant host (a platform whose every site or organisation connects its own Zoho
account) keeps all tenants' sync rows in the same tables. Every extension table carries a
``tenant_id`` column, and the tenant a piece of work belongs to lives in a context variable,
set once at the edge where the work comes in:

* an admin page: the host's resolver (``ZohoSync(tenant=...)``) names the tenant of the
  signed-in user, before any view runs;
* a CLI command: ``flask zoho-sync --tenant KEY ...``;
* an RQ job: the tenant it was scheduled for travels in its arguments;
* the cron tick: each tenant with a connection in turn.

Below the edge nothing passes a tenant around. Rows inserted get the current tenant as
their column default, and every ORM statement on an extension table (select, update,
delete, ``Session.get``) gets ``tenant_id = current`` added by a ``do_orm_execute`` hook,
so a query written without a thought for tenants cannot read or change another tenant's
rows, even when it asks for a row id guessed from another tenant. A host that never names a
tenant runs as the single tenant ``default``, which is what an install made before tenants
holds after the migration (``flask_zoho_sync.migrations``).

Why a context variable rather than an argument: the sync's rooms (engine, ledger, jobs,
pages) read the database in hundreds of places; threading a tenant through each would be a
change to all of them, and one forgotten argument a leak. A context variable is copied into
threads started with ``contextvars.copy_context`` and is per-task under asyncio, so a
worker's reader threads see the tenant of the job that started them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria
from sqlalchemy.orm.util import LoaderCriteriaOption

#: The tenant of an install that never names one, and of every row made before tenants.
DEFAULT_TENANT = "default"

#: Execution option of the few statements that must see every tenant's rows: the tick
#: listing tenants, a notification finding the tenant whose channel it came on.
ALL_TENANTS = "zoho_sync_all_tenants"

#: What a tenant key may look like: it is part of Redis keys, job ids and URLs.
TENANT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")

_current: ContextVar[str] = ContextVar("zoho_sync_tenant", default=DEFAULT_TENANT)

#: A host's answer to "whose admin page is this?": called inside a request.
TenantResolver = Callable[[], "str | None"]


class TenantKeyError(ValueError):
    """A tenant key that cannot name a tenant (empty, too long, odd characters)."""


def checked_tenant(key: object) -> str:
    """``key`` as a tenant key, or a message saying what a key may hold."""
    text = str(key).strip() if key is not None else ""
    if not TENANT_KEY.fullmatch(text):
        raise TenantKeyError(
            f"{key!r} is not a tenant key: use 1 to 64 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit."
        )
    return text


def current_tenant() -> str:
    """The tenant whose sync this code is doing (``default`` unless an edge set one)."""
    return _current.get()


@contextmanager
def tenant_context(tenant: str) -> Iterator[str]:
    """Run the block as ``tenant``'s sync; the previous tenant comes back afterwards."""
    token = _current.set(checked_tenant(tenant))
    try:
        yield token.var.get()
    finally:
        _current.reset(token)


def enter_tenant(tenant: str) -> object:
    """Set the tenant until :func:`leave_tenant` (for edges with a start and an end hook,
    such as a request)."""
    return _current.set(checked_tenant(tenant))


def leave_tenant(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


class TenantScoped:
    """A table of the extension: each row belongs to one tenant.

    The server default lets an existing install's rows, and a host's own SQL that knows
    nothing of tenants, land in the single tenant they always were.
    """

    tenant_id: Mapped[str] = mapped_column(
        sa.String(64), default=current_tenant, server_default=DEFAULT_TENANT, index=True
    )


def _only_current_tenant(execute_state: ORMExecuteState) -> None:
    if not (execute_state.is_select or execute_state.is_update or execute_state.is_delete):
        return
    if execute_state.is_column_load or execute_state.is_relationship_load:
        return  # the row was already found under the tenant's criteria
    if execute_state.execution_options.get(ALL_TENANTS):
        return  # an edge finding which tenant some work is for (the tick, a notification)
    execute_state.statement = execute_state.statement.options(_criteria_of(_current.get()))


@functools.lru_cache(maxsize=1024)
def _criteria_of(tenant: str) -> LoaderCriteriaOption:
    """One option per tenant, made once: building it anew for every statement (the lambda's
    analysis and cache key) added 85-110 us to a simple select on SQLite that takes 160-190 us
    unfiltered; reused, the filter adds about 40 us. The tenant is the lambda's closure
    variable, so each tenant's option binds its own key as a parameter and the compiled SQL
    is shared (the isolation tests fail if one tenant's option served another)."""
    return with_loader_criteria(
        TenantScoped,
        lambda cls: cls.tenant_id == tenant,
        include_aliases=True,
    )


def install_tenant_filter() -> None:
    """Add the tenant's criteria to every ORM statement on an extension table, in every
    session (idempotent). Statements on other tables are left as they are."""
    if not event.contains(Session, "do_orm_execute", _only_current_tenant):
        event.listen(Session, "do_orm_execute", _only_current_tenant)

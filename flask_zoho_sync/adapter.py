"""How the extension reads and writes the host's contacts and groups.

The engine never touches the host's models directly: it goes through a ``ContactAdapter``.
The default, :class:`SQLAlchemyContactAdapter`, works from a model with plain columns and a
many-to-many groups relationship, with nothing from the host beyond naming the model. Hosts
that keep custom fields elsewhere (an EAV table, a JSON column) subclass it and override
``fields``, ``get_values`` and ``set_values``; everything else keeps working.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app, has_request_context, url_for
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import flag_modified

from .dbids import primary_key_fits
from .sync.coercion import HostField
from .sync.context import create_one_by_one
from .sync.mapping import HostChanges
from .tenancy import current_tenant

log = logging.getLogger(__name__)

#: No integer column holds more than 19 digits; checked before int() sees a huge string.
_INTEGER_ID = re.compile(r"[+-]?[0-9]{1,19}")

#: Emails per lookup query: each is a scan of the contacts table where ``lower(email)`` is
#: not indexed, so the fewer the better, within SQLite's oldest limit of 999 parameters.
_EMAILS_PER_QUERY = 900

#: Column names that are never offered for mapping: keys and bookkeeping the host owns.
_BOOKKEEPING = {"created_at", "updated_at", "modified_at", "created", "modified"}


#: A plain many-to-many groups collection: the association table, its column holding the
#: contact's key, its column holding the group's, and the group's column that refers to.
_Membership = tuple[sa.Table, sa.Column[Any], sa.Column[Any], sa.Column[Any]]


def _is_sqlalchemys(listener: Callable[..., Any]) -> bool:
    """Whether a function is SQLAlchemy's own, not the host's: the constructor declarative
    mapping gives a model, and the ``init`` listener every mapped class has."""
    return str(getattr(listener, "__module__", "")).startswith("sqlalchemy.")


@dataclass(frozen=True)
class HostGroup:
    """A group a contact can belong to; ``key`` is stable, ``label`` is what admins read."""

    key: str
    label: str


def _host_type(column: sa.Column[Any]) -> tuple[str, bool]:
    """The mapping type of a column, and whether its datetimes are time-zone aware."""
    name = column.name.lower()
    column_type = column.type
    if isinstance(column_type, sa.Boolean):
        return "boolean", False
    if isinstance(column_type, sa.DateTime):
        return "datetime", bool(getattr(column_type, "timezone", False))
    if isinstance(column_type, sa.Date):
        return "date", False
    if isinstance(column_type, sa.Integer):
        return "integer", False
    if isinstance(column_type, (sa.Numeric, sa.Float)):
        return "decimal", False
    if isinstance(column_type, sa.Enum):
        return "choice", False
    if isinstance(column_type, sa.JSON):
        return "multichoice", False
    if "email" in name:
        return "email", False
    if any(word in name for word in ("phone", "mobile", "fax")):
        return "phone", False
    if any(word in name for word in ("website", "url")):
        return "url", False
    return "text", False


class ContactAdapter:
    """The operations the sync needs on the host's contacts (see the module docstring).

    Every method works on the host's session; the engine decides when to commit.
    """

    def bind(
        self,
        session_getter: Callable[[], Session],
        *,
        base_url: Callable[[], str | None] | None = None,
    ) -> None:
        """Give the adapter the host's session, and (``init_app`` does) the app's public
        address for links built outside a request.

        Both are asked for when needed, not kept: one adapter may serve several apps (an
        app factory, tests), and each call must see the app it runs in.
        """
        self._session_getter = session_getter
        self._base_url = base_url or (lambda: None)

    @property
    def session(self) -> Session:
        return self._session_getter()

    # Subclasses implement the rest; the SQLAlchemy adapter below is the reference.
    def fields(self) -> list[HostField]:
        raise NotImplementedError

    def get_values(self, contact: Any) -> dict[str, Any]:
        raise NotImplementedError

    def set_values(self, contact: Any, values: dict[str, Any]) -> None:
        raise NotImplementedError

    def groups(self) -> list[HostGroup]:
        raise NotImplementedError

    def get_groups(self, contact: Any) -> set[str]:
        raise NotImplementedError

    def set_groups(self, contact: Any, add: Iterable[str], remove: Iterable[str]) -> None:
        raise NotImplementedError

    def is_subscribed(self, contact: Any) -> bool | None:
        raise NotImplementedError

    def set_subscribed(self, contact: Any, subscribed: bool) -> None:
        raise NotImplementedError

    def contact_id(self, contact: Any) -> str:
        raise NotImplementedError

    def modified_at(self, contact: Any) -> datetime | None:
        """When the contact last changed (aware UTC), for the newest-wins conflict policy."""
        return None

    def capture_attributes(self) -> set[str]:
        """Model attributes besides the mapped fields whose change must be captured (the
        groups relationship, the subscription column)."""
        return set()

    def flush(self) -> None:
        """Make new contacts get their ids (the engine links them right after creating)."""
        self.session.flush()

    def contact_url(self, contact: Any) -> str | None:
        raise NotImplementedError

    def get(self, contact_id: str) -> Any | None:
        raise NotImplementedError

    def get_many(self, contact_ids: Sequence[str]) -> dict[str, Any]:
        raise NotImplementedError

    def find_by_email(self, email: str) -> Any | None:
        raise NotImplementedError

    def find_many_by_email(self, emails: Iterable[str]) -> dict[str, Any]:
        """Contacts by lower-cased email, for a page of Zoho records at once. Override it
        with one query: the default asks :meth:`find_by_email` once per email."""
        found: dict[str, Any] = {}
        for email in {e.strip().lower() for e in emails if e and e.strip()}:
            contact = self.find_by_email(email)
            if contact is not None:
                found[email] = contact
        return found

    def find_email_holders(self, emails: Iterable[str]) -> dict[str, list[Any]]:
        """Every contact holding each lower-cased email, so a first sync can see an email
        two contacts share and leave it unmatched rather than guess. The default knows
        one contact per email (:meth:`find_many_by_email`)."""
        return {key: [contact] for key, contact in self.find_many_by_email(emails).items()}

    def create(self) -> Any:
        raise NotImplementedError

    def create_contacts(self, changes: Sequence[HostChanges]) -> list[str]:
        """New contacts, one per entry of ``changes`` (each already converted for the host),
        and their ids in the same order: a pull creates a page's new contacts with one call.

        The default makes each through :meth:`create` and the setters, then flushes once.
        Override it to write them as a set (as :class:`SQLAlchemyContactAdapter` does with
        INSERT statements); the end state must be the one the default gives.
        """
        return create_one_by_one(self, changes)

    def delete(self, contact: Any) -> None:
        raise NotImplementedError

    def iter_batches(
        self, *, modified_since: datetime | None = None, batch_size: int = 500
    ) -> Iterator[list[Any]]:
        raise NotImplementedError

    def iter_contact_ids(
        self, *, modified_since: datetime | None = None, batch_size: int = 500
    ) -> Iterator[list[str]]:
        """Contact ids in :meth:`iter_batches` order, a batch at a time. The default reads
        the batches; an adapter that can list ids without loading contacts overrides it."""
        for batch in self.iter_batches(modified_since=modified_since, batch_size=batch_size):
            yield [self.contact_id(contact) for contact in batch]

    def count(self) -> int:
        raise NotImplementedError

    def merge_contacts(self, keep: Any, other: Any) -> None:
        """Fold ``other`` into ``keep`` the way the host merges two of its own contacts
        (values, groups, and whatever else of the host hangs off a contact: orders,
        notes...), then delete ``other``. The engine does not commit; the caller does.

        Called when a Zoho user merged the Zoho records of two host contacts, and the admin
        chose to merge the contacts too (the overview's "Merged in Zoho" section). Only the
        host knows what a contact owns, so there is no generic default: this one refuses,
        and the admin can keep both contacts instead.
        """
        raise ContactMergeUnavailable(
            "This app has not said how two of its contacts merge (the contact adapter has "
            "no merge_contacts). Keep both contacts, or merge them in the app by hand."
        )

    @property
    def can_merge_contacts(self) -> bool:
        """Whether :meth:`merge_contacts` is the host's own (the admin is offered it)."""
        return type(self).merge_contacts is not ContactAdapter.merge_contacts

    # -- what syncs (issue 21; flask_zoho_sync.scope) -----------------------------------

    def add_scope_filter(self, name: str, criterion_or_callable: Any) -> None:
        """Name a set of contacts the admin can limit the sync to ("What syncs" page,
        ``settings --scope-filter``, ``ZOHO_SYNC_SCOPE_FILTER``).

        ``criterion_or_callable`` is a SQLAlchemy criterion on the contact model (``Contact.
        country == "NZ"``), read by the database, or a callable taking a contact and
        returning whether it syncs. Only the host knows what its segments mean, so the
        admin picks among the names the app gives rather than writing queries.
        """
        if not name or not name.strip():
            raise ValueError("A scope filter needs a name")
        filters = self.__dict__.setdefault("_scope_filters", {})
        filters[name.strip()] = criterion_or_callable

    def scope_filters(self) -> list[str]:
        """The names given to :meth:`add_scope_filter`, in the order given."""
        return list(self.__dict__.get("_scope_filters", {}))

    def scope_filter(self, name: str) -> Any:
        """The criterion or callable of a named filter (KeyError when there is none)."""
        filters = self.__dict__.get("_scope_filters", {})
        if name not in filters:
            raise KeyError(f"This app has no scope filter named {name!r}")
        return filters[name]

    def scoped_ids(
        self,
        contact_ids: Sequence[str],
        *,
        groups: Collection[str] = (),
        filter_name: str | None = None,
    ) -> set[str]:
        """Which of ``contact_ids`` are in the host scope: in one of ``groups`` (when any
        are given) and passing the named filter (when one is). The default loads the
        contacts; the SQLAlchemy adapter asks the database."""
        check = self.scope_filter(filter_name) if filter_name else None
        if check is not None and not callable(check):
            raise TypeError("This adapter applies only callable scope filters")
        contacts = self.get_many(list(contact_ids))
        wanted = set(groups)
        return {
            contact_id
            for contact_id, contact in contacts.items()
            if (not wanted or wanted & self.get_groups(contact))
            and (check is None or bool(check(contact)))
        }

    def find_many_by_field(self, field: str, values: Iterable[Any]) -> dict[str, list[Any]]:
        """Contacts whose ``field`` holds one of ``values``, by the value as text: every
        contact holding it, so a value two contacts share is seen as ambiguous (a first
        sync matching on a field, ``ZOHO_SYNC_MATCH_KEY=field:NAME``). The default reads
        every contact; override it with a query."""
        wanted = {str(value).strip() for value in values if value not in (None, "")}
        found: dict[str, list[Any]] = {}
        for batch in self.iter_batches():
            for contact in batch:
                value = self.get_values(contact).get(field)
                text = "" if value is None else str(value).strip()
                if text in wanted:
                    found.setdefault(text, []).append(contact)
        return found


class ContactMergeUnavailable(NotImplementedError):
    """The host's adapter does not merge contacts; the message says what to do instead."""


class SQLAlchemyContactAdapter(ContactAdapter):
    """Contacts from a SQLAlchemy model with plain columns and a groups relationship.

    :param model: the host's contact model.
    :param groups: the many-to-many relationship attribute to groups (``None``: no groups).
    :param group_key: the group model's attribute that identifies a group (a unique name).
    :param subscribed: the boolean column holding the subscription status (``None``: none).
    :param email: the email column, used to link existing Zoho records to contacts.
    :param modified: a column updated on every change, for "modified since last sync".
    :param contact_url: an endpoint taking ``contact_id`` or a callable giving the contact's
        page; outside a request (in the worker) ``url_for`` needs ``SERVER_NAME``.
    :param exclude: columns never offered for mapping (passwords, internal flags).
    :param tenant: for a multi-tenant host (``ZohoSync(tenant=...)``), the column holding the
        contact's tenant key (a site or account id): the sync of a tenant reads, matches
        and counts only that tenant's contacts, and the contacts it creates get its key.
        The column is never offered for mapping.
    :param set_based_creates: create a pull's new contacts with INSERT statements, a page
        at a time (``create_contacts``), instead of an ORM object each. The model's column
        defaults apply either way; it is turned off by itself for a model with ORM hooks an
        INSERT skips (see ``create_contacts``). Pass ``False`` when the host's own session
        events (``before_flush``, ``after_flush``) must see the contacts a pull creates.
    """

    def __init__(
        self,
        model: type[Any],
        *,
        groups: str | None = "groups",
        group_key: str = "name",
        subscribed: str | None = "subscribed",
        email: str = "email",
        modified: str | None = "updated_at",
        contact_url: str | Callable[[Any], str] | None = None,
        exclude: Iterable[str] = (),
        set_based_creates: bool = True,
        tenant: str | None = None,
    ) -> None:
        self.model = model
        self._mapper = sa.inspect(model)
        self._primary_key = self._mapper.primary_key[0]
        self.groups_attribute = groups if groups and groups in self._mapper.relationships else None
        self.group_model = (
            self._mapper.relationships[groups].mapper.class_ if self.groups_attribute else None
        )
        self.group_key = group_key
        columns = self._mapper.columns
        self.subscribed_attribute = subscribed if subscribed and subscribed in columns else None
        self.email_attribute = email
        self.modified_attribute = modified if modified and modified in columns else None
        self._contact_url = contact_url
        if tenant is not None and tenant not in self._mapper.columns:
            raise ValueError(f"{model.__name__} has no column {tenant!r} to hold the tenant")
        self.tenant_attribute = tenant
        #: The group model's own tenant column, when it has one of the same name: each
        #: tenant then maps, reads and joins only its own groups.
        self.group_tenant_attribute = (
            tenant
            if tenant
            and self.group_model is not None
            and tenant in sa.inspect(self.group_model).columns
            else None
        )
        self._excluded = set(exclude) | ({tenant} if tenant else set())
        self._warned_about_base_url = False
        self.set_based_creates = set_based_creates

    # -- fields -------------------------------------------------------------------------

    def _mappable_columns(self) -> list[sa.Column[Any]]:
        """The columns offered for mapping, worked out once: ``get_values`` asks for them
        for every contact a sync reads, and walking the mapper each time was a tenth of a
        large push's own work. The mapper is configured by then (a session has used it)."""
        cached = self.__dict__.get("_mappable_columns_cache")
        if cached is None:
            cached = self.__dict__["_mappable_columns_cache"] = self._find_mappable_columns()
        return cached

    def _find_mappable_columns(self) -> list[sa.Column[Any]]:
        skipped = {self.subscribed_attribute, self.modified_attribute, *self._excluded}
        columns = []
        for attribute in self._mapper.column_attrs:
            column = attribute.columns[0]
            if column.primary_key or column.foreign_keys or attribute.key in skipped:
                continue
            if attribute.key in _BOOKKEEPING:
                continue
            columns.append(column)
        return columns

    def capture_attributes(self) -> set[str]:
        return {name for name in (self.groups_attribute, self.subscribed_attribute) if name}

    def fields(self) -> list[HostField]:
        described = []
        for column in self._mappable_columns():
            kind, aware = _host_type(column)
            length = getattr(column.type, "length", None)
            choices = tuple(column.type.enums) if isinstance(column.type, sa.Enum) else None
            described.append(
                HostField(
                    name=column.key,
                    type=kind,  # type: ignore[arg-type]
                    label=(column.info.get("label") or column.key.replace("_", " ").capitalize()),
                    max_length=length if isinstance(length, int) else None,
                    choices=choices,
                    datetime_aware=aware,
                )
            )
        return described

    def get_values(self, contact: Any) -> dict[str, Any]:
        return {column.key: getattr(contact, column.key) for column in self._mappable_columns()}

    @cached_property
    def _mappable_keys(self) -> frozenset[str]:
        """The mappable attribute names, worked out once (the mapper does not change after
        the adapter is built): an import writing 100,000 new contacts asked the mapper for
        them 100,000 times."""
        return frozenset(column.key for column in self._mappable_columns())

    def set_values(self, contact: Any, values: dict[str, Any]) -> None:
        known = self._mappable_keys
        for name, value in values.items():
            if name not in known:
                raise KeyError(f"{self.model.__name__} has no mappable field {name!r}")
            if getattr(contact, name) != value:
                setattr(contact, name, value)
                if isinstance(value, (list, dict)):
                    flag_modified(contact, name)

    # -- groups -------------------------------------------------------------------------

    def groups(self) -> list[HostGroup]:
        if self.group_model is None:
            return []
        key = getattr(self.group_model, self.group_key)
        rows = self.session.scalars(self._own_groups(sa.select(self.group_model).order_by(key)))
        return [
            HostGroup(key=str(getattr(g, self.group_key)), label=str(getattr(g, self.group_key)))
            for g in rows
        ]

    def get_groups(self, contact: Any) -> set[str]:
        if self.groups_attribute is None:
            return set()
        return {
            str(getattr(group, self.group_key)) for group in getattr(contact, self.groups_attribute)
        }

    def set_groups(self, contact: Any, add: Iterable[str], remove: Iterable[str]) -> None:
        if self.groups_attribute is None:
            return
        add, remove = set(add), set(remove)
        members = getattr(contact, self.groups_attribute)
        for group in list(members):
            if str(getattr(group, self.group_key)) in remove:
                members.remove(group)
        present = self.get_groups(contact)
        wanted = add - present
        if wanted:
            key = getattr(self.group_model, self.group_key)
            statement = self._own_groups(sa.select(self.group_model).where(key.in_(wanted)))
            found = self.session.scalars(statement).all()
            for group in found:
                members.append(group)
            missing = wanted - {str(getattr(group, self.group_key)) for group in found}
            if missing:
                log.warning("Zoho marks a contact as member of unknown groups %s", sorted(missing))

    # -- subscription, identity, links ---------------------------------------------------

    def is_subscribed(self, contact: Any) -> bool | None:
        if self.subscribed_attribute is None:
            return None
        value = getattr(contact, self.subscribed_attribute)
        return None if value is None else bool(value)

    def set_subscribed(self, contact: Any, subscribed: bool) -> None:
        if self.subscribed_attribute is not None:
            setattr(contact, self.subscribed_attribute, subscribed)

    def contact_id(self, contact: Any) -> str:
        return str(getattr(contact, self._primary_key.key))

    def modified_at(self, contact: Any) -> datetime | None:
        """The modification stamp as aware UTC; a naive stamp is taken to be UTC, which is
        what ``datetime.utcnow`` and most databases' ``now()`` defaults store."""
        if self.modified_attribute is None:
            return None
        value = getattr(contact, self.modified_attribute)
        if not isinstance(value, datetime):
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def contact_url(self, contact: Any) -> str | None:
        """The contact's page. Syncs run in the worker, outside any request, so an endpoint
        is built against ``ZOHO_SYNC_BASE_URL`` (or Flask's ``SERVER_NAME``)."""
        if self._contact_url is None:
            return None
        if callable(self._contact_url):
            return self._contact_url(contact)
        values = {"contact_id": getattr(contact, self._primary_key.key)}
        if has_request_context() or current_app.config.get("SERVER_NAME"):
            return url_for(self._contact_url, **values, _external=True)
        base = self._base_url()
        if not base:
            if not self._warned_about_base_url:
                log.warning(
                    "Contact URLs need ZOHO_SYNC_BASE_URL (the app's public address, e.g. "
                    "https://crm.example.com) when syncing outside a request; none are sent."
                )
                self._warned_about_base_url = True
            return None
        parts = urlsplit(str(base))
        urls = current_app.url_map.bind(
            parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme or "https"
        )
        return urls.build(self._contact_url, values, force_external=True)

    # -- finding, creating, deleting -----------------------------------------------------

    def _coerce_id(self, contact_id: str) -> Any:
        """``contact_id`` as the primary key's type; ValueError when no row can have it.

        Ids reach here from URLs and from Zoho, so an integer key is bounded to what its
        column holds first (see :mod:`flask_zoho_sync.dbids`): beyond it the database
        raises instead of finding nothing.
        """
        python_type = self._primary_key.type.python_type
        if python_type is str:
            return contact_id
        if python_type is int:
            text = str(contact_id).strip()
            if not _INTEGER_ID.fullmatch(text) or not primary_key_fits(
                self.session, self.model, int(text)
            ):
                raise ValueError(f"{contact_id!r} cannot be an integer primary key")
            return int(text)
        return python_type(contact_id)

    # -- tenants ----------------------------------------------------------------------------

    def _tenant_value(self) -> Any:
        """The current tenant's key as the tenant column holds it (an integer site id, say)."""
        column = self._mapper.columns[self.tenant_attribute]
        tenant = current_tenant()
        try:
            return column.type.python_type(tenant)
        except (NotImplementedError, TypeError, ValueError):
            return tenant

    def tenants_of(self, connection: sa.Connection, contact_ids: list[str]) -> dict[str, str]:
        """The tenant of each contact (capture's question, on the flushing connection)."""
        if self.tenant_attribute is None:
            return {}
        keys = self._coerce_ids(contact_ids)
        column = self._mapper.columns[self.tenant_attribute]
        key_column = self._primary_key
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            rows = connection.execute(
                sa.select(key_column, column).where(key_column.in_(keys[start : start + 500]))
            )
            found.update({str(key): str(tenant) for key, tenant in rows if tenant is not None})
        return found

    def _own(self, statement: Any) -> Any:
        """``statement`` limited to the current tenant's contacts (unchanged for one tenant)."""
        if self.tenant_attribute is None:
            return statement
        column = getattr(self.model, self.tenant_attribute)
        return statement.where(column == self._tenant_value())

    def _own_groups(self, statement: Any) -> Any:
        """``statement`` limited to the current tenant's groups (when groups have tenants)."""
        if self.group_tenant_attribute is None:
            return statement
        column = getattr(self.group_model, self.group_tenant_attribute)
        return statement.where(column == self._tenant_value())

    def _coerce_ids(self, contact_ids: Iterable[str]) -> list[Any]:
        """The ids that can be primary keys, as the key's type; the others (from a URL,
        from Zoho) are left out, as no row can have them."""
        keys = []
        for contact_id in contact_ids:
            try:
                keys.append(self._coerce_id(contact_id))
            except (TypeError, ValueError):
                continue
        return keys

    def get(self, contact_id: str) -> Any | None:
        try:
            key = self._coerce_id(contact_id)
        except (TypeError, ValueError):
            return None
        if self.tenant_attribute is None:
            return self.session.get(self.model, key)
        statement = self._own(sa.select(self.model).where(self._primary_key == key))
        return self.session.scalars(statement).first()

    def get_many(self, contact_ids: Sequence[str]) -> dict[str, Any]:
        keys = self._coerce_ids(contact_ids)
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            statement = self._own(sa.select(self.model).where(self._primary_key.in_(chunk)))
            if self.groups_attribute is not None:
                # The engine reads every contact's groups: one query for the chunk, not one
                # per contact.
                statement = statement.options(
                    selectinload(getattr(self.model, self.groups_attribute))
                )
            for contact in self.session.scalars(statement):
                found[self.contact_id(contact)] = contact
        return found

    def find_by_email(self, email: str) -> Any | None:
        if not email or not email.strip():
            return None
        column = getattr(self.model, self.email_attribute)
        statement = (
            sa.select(self.model)
            .where(sa.func.lower(column) == email.strip().lower())
            .order_by(self._primary_key)
            .limit(1)
        )
        return self.session.scalars(self._own(statement)).first()

    def find_many_by_email(self, emails: Iterable[str]) -> dict[str, Any]:
        """One query per 900 emails instead of one per email (an import of 100,000 Zoho
        records asked 100,000 times, each a scan of the contacts table). 900 keeps within
        the 999 parameters of SQLite before 3.32; the pull asks for four pages (800) at once,
        so a scan serves them all."""
        return {key: found[-1] for key, found in self._email_holders(emails).items()}

    def find_email_holders(self, emails: Iterable[str]) -> dict[str, list[Any]]:
        """The query :meth:`find_many_by_email` makes, every holder of each email kept
        (highest id first): seeing a shared email costs nothing more. A subclass with its
        own ``find_many_by_email`` is asked that instead (one holder an email)."""
        if type(self).find_many_by_email is not SQLAlchemyContactAdapter.find_many_by_email:
            return super().find_email_holders(emails)
        return self._email_holders(emails)

    def _email_holders(self, emails: Iterable[str]) -> dict[str, list[Any]]:
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        column = getattr(self.model, self.email_attribute)
        found: dict[str, list[Any]] = {}
        for start in range(0, len(wanted), _EMAILS_PER_QUERY):
            statement = (
                sa.select(self.model)
                .where(
                    sa.func.lower(sa.func.trim(column)).in_(
                        wanted[start : start + _EMAILS_PER_QUERY]
                    )
                )
                .order_by(self._primary_key.desc())
            )
            statement = self._own(statement)
            if self.groups_attribute is not None:
                statement = statement.options(
                    selectinload(getattr(self.model, self.groups_attribute))
                )
            for contact in self.session.scalars(statement):
                # Lowest id last, so it wins in find_many_by_email, as in find_by_email.
                key = str(getattr(contact, self.email_attribute)).strip().lower()
                found.setdefault(key, []).append(contact)
        return found

    def create(self) -> Any:
        contact = self.model()
        if self.tenant_attribute is not None:
            setattr(contact, self.tenant_attribute, self._tenant_value())
        self.session.add(contact)
        return contact

    def create_contacts(self, changes: Sequence[HostChanges]) -> list[str]:
        """The new contacts as INSERT statements with RETURNING of their keys, a statement
        per set of columns given (one for most pages), and their group memberships as one
        more INSERT: the ORM's unit of work cost a third of a large import's own time,
        sending one INSERT per contact and tracking an object for each.

        The rows are what :meth:`create` and the setters would have flushed: a field with
        no value is left out where its column has a default, so the default applies, as
        for an attribute never set. ``sort_by_parameter_order`` makes SQLAlchemy return
        the keys in the rows' order on every database; on SQLite, which promises no order
        for a multi-row RETURNING, an integer key is SQLite's rowid, whose order is known
        (:meth:`_insert_by_rowid`), and any other key is sent a row at a time.

        Falls back to :meth:`ContactAdapter.create_contacts` (an object each) when an INSERT
        would skip what the host relies on: see :meth:`_set_based_creates_refused`.
        """
        if not changes:
            return []
        if self._set_based_creates_refused() is not None:
            return super().create_contacts(changes)
        rows = [self._insert_row(change) for change in changes]
        keys = self._insert_contacts(rows)
        self._insert_memberships(keys, changes)
        return [str(key) for key in keys]

    def _set_based_creates_refused(self) -> str | None:
        """Why this adapter creates contacts as objects, or None when INSERTs can stand in.

        What only an object gets: a subclass's own ``create`` or setters (custom fields in
        another table or a JSON column), an ``__init__``, ``@validates``, mapper insert
        events and ``init`` listeners; and what one INSERT per set of columns cannot do:
        a key of several columns, a model spread over several tables, a groups collection
        that is not a plain association table keyed by the contact's primary key.
        """
        if not self.set_based_creates:
            return "set_based_creates=False"
        cached = self.__dict__.get("_set_based_refusal", False)
        if cached is not False:
            return cached
        refusal = self._find_set_based_refusal()
        self.__dict__["_set_based_refusal"] = refusal
        if refusal is not None:
            log.info("New contacts are created one object at a time: %s.", refusal)
        return refusal

    def _find_set_based_refusal(self) -> str | None:
        base = SQLAlchemyContactAdapter
        for name in ("create", "set_values", "set_groups", "set_subscribed", "contact_id"):
            if getattr(type(self), name) is not getattr(base, name):
                return f"{type(self).__name__} has its own {name}"
        mapper = self._mapper
        if len(mapper.primary_key) != 1 or len(mapper.tables) != 1:
            return f"{self.model.__name__} has a composite key or several tables"
        if mapper.validators:
            return f"{self.model.__name__} has @validates methods"
        manager = mapper.class_manager
        if (
            not _is_sqlalchemys(manager.original_init)
            and manager.original_init is not object.__init__
        ):
            return f"{self.model.__name__} has its own __init__"
        if mapper.dispatch.before_insert or mapper.dispatch.after_insert:
            return f"{self.model.__name__} has mapper insert events"
        if any(not _is_sqlalchemys(listener) for listener in manager.dispatch.init):
            return f"{self.model.__name__} has init events"
        if self.groups_attribute is not None and self._membership_columns() is None:
            return f"{self.model.__name__}.{self.groups_attribute} is no plain association"
        return None

    def _membership_columns(self) -> _Membership | None:
        """The groups collection's columns (see ``_Membership``); None unless it is a plain
        association table keyed by the contact's primary key."""
        relationship = self._mapper.relationships[self.groups_attribute]
        secondary = relationship.secondary
        if not isinstance(secondary, sa.Table):
            return None
        if len(relationship.synchronize_pairs) != 1:
            return None
        if len(relationship.secondary_synchronize_pairs or ()) != 1:
            return None
        ((contact_key, contact_column),) = relationship.synchronize_pairs
        ((group_key, group_column),) = relationship.secondary_synchronize_pairs
        if contact_key is not self._primary_key:
            return None
        return secondary, contact_column, group_column, group_key

    def _insert_row(self, change: HostChanges) -> dict[str, Any]:
        known = self._mappable_keys
        defaulted = self._defaulted_keys
        row: dict[str, Any] = {}
        for name, value in change.fields.items():
            if name not in known:
                raise KeyError(f"{self.model.__name__} has no mappable field {name!r}")
            if value is None and name in defaulted:
                continue  # never set on a new object: its column's default applies
            row[name] = value
        if change.subscribed is not None and self.subscribed_attribute is not None:
            row[self.subscribed_attribute] = change.subscribed
        if self.tenant_attribute is not None:
            row[self.tenant_attribute] = self._tenant_value()
        return row

    @cached_property
    def _defaulted_keys(self) -> frozenset[str]:
        """Mappable attributes whose column fills itself in when the INSERT leaves it out."""
        return frozenset(
            column.key
            for column in self._mappable_columns()
            if column.default is not None or column.server_default is not None
        )

    def _insert_contacts(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Insert ``rows``, a statement per set of columns; their keys in ``rows``' order."""
        by_columns: dict[tuple[str, ...], list[int]] = {}
        for index, row in enumerate(rows):
            by_columns.setdefault(tuple(sorted(row)), []).append(index)
        key = getattr(self.model, self._primary_key.key)
        statement = sa.insert(self.model).returning(key, sort_by_parameter_order=True)
        by_rowid = self._keys_follow_rowids()
        keys: list[Any] = [None] * len(rows)
        for indexes in by_columns.values():
            batch = [rows[index] for index in indexes]
            returned = self._insert_by_rowid(key, batch) if by_rowid else None
            if returned is None:
                returned = self.session.scalars(statement, batch).all()
            for index, value in zip(indexes, returned, strict=True):
                keys[index] = value
        return keys

    def _keys_follow_rowids(self) -> bool:
        """Whether the key is SQLite's rowid (a column typed exactly INTEGER, the whole
        primary key, of a rowid table, with no value of our own): the one case where the
        keys of one INSERT's rows are known to come in the rows' order. SQLAlchemy cannot
        know it, so with ``sort_by_parameter_order`` it sends SQLite one INSERT per row."""
        bind = self.session.get_bind(mapper=self._mapper)
        if bind.dialect.name != "sqlite":
            return False
        column, table = self._primary_key, self._mapper.local_table
        return (
            isinstance(table, sa.Table)
            and table.dialect_options["sqlite"].get("with_rowid", True) is not False
            and column.type.compile(dialect=bind.dialect) == "INTEGER"
            and column.default is None
            and column.server_default is None
        )

    def _insert_by_rowid(self, key: Any, rows: list[dict[str, Any]]) -> list[Any] | None:
        """Insert ``rows`` as multi-row INSERTs (SQLAlchemy's insertmanyvalues: one statement
        per few hundred rows) and their keys in the rows' order, or None having inserted
        nothing.

        SQLite gives a new row the largest rowid plus one (with AUTOINCREMENT: the largest
        ever plus one), rows of a statement in their order, and only this transaction
        writes: the keys are consecutive, and sorted they are in the rows' order, whatever
        order RETURNING hands them back in. Once the largest rowid is taken SQLite picks
        them at random; keys that are not consecutive say so, and those rows are deleted
        again for the one-by-one INSERTs to write."""
        if any(self._primary_key.key in row for row in rows):
            return None
        returned = sorted(self.session.scalars(sa.insert(self.model).returning(key), rows).all())
        if returned and returned[-1] - returned[0] == len(returned) - 1:
            return returned
        self.session.execute(sa.delete(self.model).where(key.in_(returned)))
        return None

    def _insert_memberships(self, keys: list[Any], changes: Sequence[HostChanges]) -> None:
        """The new contacts' groups, as ``set_groups`` would add them: unknown groups are
        left out with a warning."""
        wanted = {name for change in changes for name in change.groups_add}
        shape = self._membership_columns() if self.groups_attribute else None
        if not wanted or shape is None:
            return
        table, contact_column, group_column, group_key = shape
        name_column = getattr(self.group_model, self.group_key)
        found = {
            str(name): value
            for name, value in self.session.execute(
                self._own_groups(sa.select(name_column, group_key).where(name_column.in_(wanted)))
            )
        }
        missing = wanted - found.keys()
        if missing:
            log.warning("Zoho marks a contact as member of unknown groups %s", sorted(missing))
        rows = [
            {contact_column.key: key, group_column.key: found[name]}
            for key, change in zip(keys, changes, strict=True)
            for name in sorted(change.groups_add)
            if name in found
        ]
        if rows:
            self.session.execute(table.insert(), rows)

    def delete(self, contact: Any) -> None:
        self.session.delete(contact)

    def iter_batches(
        self, *, modified_since: datetime | None = None, batch_size: int = 500
    ) -> Iterator[list[Any]]:
        """Contacts in primary-key order, a batch at a time (keyset paging keeps memory flat)."""
        key = self._primary_key.key
        yield from self._keyset_pages(
            self.model, lambda contact: getattr(contact, key), modified_since, batch_size
        )

    def iter_contact_ids(
        self, *, modified_since: datetime | None = None, batch_size: int = 500
    ) -> Iterator[list[str]]:
        """The ids :meth:`iter_batches` would give, without loading the contacts: a full push
        only needs to know which contacts to look at, and reads them a batch at a time later.

        A subclass that overrides ``iter_batches`` (to leave some contacts out, say) gets
        its batches' ids, so what it decided still holds."""
        if type(self).iter_batches is not SQLAlchemyContactAdapter.iter_batches:
            yield from super().iter_contact_ids(
                modified_since=modified_since, batch_size=batch_size
            )
            return
        for keys in self._keyset_pages(
            self._primary_key, lambda key: key, modified_since, batch_size
        ):
            yield [str(key) for key in keys]

    def _keyset_pages(
        self,
        selected: Any,
        key_of: Callable[[Any], Any],
        modified_since: datetime | None,
        batch_size: int,
    ) -> Iterator[list[Any]]:
        """``selected`` (the model or its key) in primary-key order, a page at a time;
        ``key_of`` gives a row's primary key, where the next page starts after."""
        last_key: Any = None
        while True:
            statement = sa.select(selected).order_by(self._primary_key).limit(batch_size)
            if last_key is not None:
                statement = statement.where(self._primary_key > last_key)
            if modified_since is not None and self.modified_attribute:
                statement = statement.where(
                    getattr(self.model, self.modified_attribute) >= modified_since
                )
            page = list(self.session.scalars(self._own(statement)))
            if not page:
                return
            yield page
            last_key = key_of(page[-1])

    def count(self) -> int:
        statement = self._own(sa.select(sa.func.count()).select_from(self.model))
        return int(self.session.scalar(statement) or 0)

    # -- what syncs -----------------------------------------------------------------------

    def scoped_ids(
        self,
        contact_ids: Sequence[str],
        *,
        groups: Collection[str] = (),
        filter_name: str | None = None,
    ) -> set[str]:
        """The host scope asked of the database, 500 ids a query: group membership and a
        criterion filter are part of the WHERE; a callable filter then checks the rows."""
        check = self.scope_filter(filter_name) if filter_name else None
        keys = self._coerce_ids(contact_ids)
        kept: set[str] = set()
        python_check = (
            check if check is not None and not isinstance(check, sa.sql.ClauseElement) else None
        )
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            selected: Any = self.model if python_check is not None else self._primary_key
            statement = sa.select(selected).where(self._primary_key.in_(chunk))
            if groups and self.groups_attribute is not None and self.group_model is not None:
                name_column = getattr(self.group_model, self.group_key)
                statement = statement.where(
                    getattr(self.model, self.groups_attribute).any(name_column.in_(list(groups)))
                )
            elif groups:
                return set()  # no groups relationship: no contact is in a group
            if check is not None and python_check is None:
                statement = statement.where(check)
            for row in self.session.scalars(self._own(statement)):
                if python_check is None:
                    kept.add(str(row))
                elif python_check(row):
                    kept.add(self.contact_id(row))
        return kept

    def find_many_by_field(self, field: str, values: Iterable[Any]) -> dict[str, list[Any]]:
        """One query per 500 values, compared as text, every holder of each value kept."""
        if field not in self._mappable_keys:
            raise KeyError(f"{self.model.__name__} has no mappable field {field!r}")
        wanted = sorted({str(value).strip() for value in values if value not in (None, "")})
        column = getattr(self.model, field)
        found: dict[str, list[Any]] = {}
        for start in range(0, len(wanted), 500):
            statement = (
                sa.select(self.model)
                .where(sa.cast(column, sa.String).in_(wanted[start : start + 500]))
                .order_by(self._primary_key)
            )
            for contact in self.session.scalars(self._own(statement)):
                value = getattr(contact, field)
                found.setdefault(str(value).strip(), []).append(contact)
        return found

"""How large an integer id a column can hold, so ids from URLs never reach SQL out of range.

An id out of a column's range cannot name a row, but the databases do not say "no row":
SQLite's driver raises ``OverflowError`` past signed 64 bits, and PostgreSQL raises "integer
out of range" past 32 bits for an ``INTEGER`` column (SQLAlchemy casts the parameter to the
column's type). Each is a 500 for a request that should have been a 404.
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

MAX_INT64 = 2**63 - 1
_MAX_INT32 = 2**31 - 1
_MAX_INT16 = 2**15 - 1

Row = TypeVar("Row")


def integer_column_max(column_type: sa.types.TypeEngine[Any], dialect_name: str) -> int:
    """The largest value ``column_type`` holds on ``dialect_name``.

    SQLite stores every integer in up to 64 bits, whatever the declared type; elsewhere
    SQLAlchemy's ``Integer`` is a 32-bit ``INTEGER`` and the sized types are what they say.
    """
    if dialect_name == "sqlite" or isinstance(column_type, sa.BigInteger):
        return MAX_INT64
    if isinstance(column_type, sa.SmallInteger):
        return _MAX_INT16
    if isinstance(column_type, sa.Integer):
        return _MAX_INT32
    return MAX_INT64


def primary_key_fits(session: Session, model: type[Any], value: int) -> bool:
    """Whether ``value`` is in the range of ``model``'s (single, integer) primary key."""
    column = sa.inspect(model).primary_key[0]
    highest = integer_column_max(column.type, session.get_bind().dialect.name)
    return -highest - 1 <= value <= highest


def row_by_id(session: Session, model: type[Row], value: int) -> Row | None:
    """``session.get`` for an id from outside: None when no row can have it."""
    if not primary_key_fits(session, model, value):
        return None
    return session.get(model, value)

"""Rows looked up by many keys at once, one ``SELECT … WHERE key IN (…)`` per chunk of keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import QueryableAttribute, Session

from .shapes import padded

T = TypeVar("T")

#: Keys in one ``IN (…)`` list: well below the bound parameters a statement may hold (SQLite
#: before 3.32 allowed 999), and a plan the database still answers by the index.
CHUNK = 500


def rows_in(
    session: Session, statement: Select[T], column: ColumnElement[Any] | QueryableAttribute[Any], keys: Sequence[Any]
) -> list[T]:
    """The rows of ``statement`` whose ``column`` is one of ``keys`` (its other conditions kept),
    in as many queries as there are chunks of :data:`CHUNK` keys; none for no keys. Each list is
    padded to a power of two (:func:`db.shapes.padded`), so the SQL texts stay few."""
    rows: list[T] = []
    for start in range(0, len(keys), CHUNK):
        rows += session.scalars(statement.where(column.in_(padded(keys[start : start + CHUNK])))).all()
    return rows

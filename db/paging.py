"""One page of rows and the number of rows matching, in two queries: the paging every list shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


def page(
    session: Session,
    entity: type[T],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[Any],
    offset: int,
    limit: int,
) -> tuple[list[T], int]:
    """Rows of ``entity`` matching every condition of ``where``, ordered, ``offset``/``limit``
    applied; and how many match in all."""
    total = session.scalar(select(func.count()).select_from(entity).where(*where)) or 0
    rows = session.scalars(select(entity).where(*where).order_by(*order_by).offset(offset).limit(limit)).all()
    return list(rows), int(total)

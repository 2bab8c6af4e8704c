"""One page of a list: ``items``, where it starts, its size, and how many match in all."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    offset: int = Field(description="items skipped before this page")
    limit: int = Field(description="the largest number of items a page holds")
    total: int = Field(description="items matching the filters, over all pages")

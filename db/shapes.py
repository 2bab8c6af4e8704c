"""Queries over lists of values in a bounded number of SQL texts.

SQLite compiles every distinct SQL text into a prepared statement, and Python's ``sqlite3`` keeps
the last 128 of them on each connection (``cached_statements``): several KiB to tens of KiB of
SQLite's own heap each (a grant read with its chain tail: about 40 KiB). An ``IN`` list renders one
``?`` per value, so a query over n values is a new text for every n, and a ``CASE`` over a mapping
one ``WHEN`` per key. Under a steady load every pooled connection (up to 64) filled its cache with
such texts, and the ``qcl dev`` process grew by 5-8 MiB a minute, all of it outside Python's heap
(BENCHMARKS.md, soak). :func:`padded` rounds a list up to the next power of two, repeating its last
value (which an ``IN`` ignores): a query over up to n values then has at most log2(n) + 1 texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")
V = TypeVar("V")


def bucket(n: int) -> int:
    """The smallest power of two at least ``n`` (0 for 0)."""
    return 0 if n <= 0 else 1 << (n - 1).bit_length()


def padded(values: Iterable[T]) -> list[T]:
    """``values`` (in their order) followed by copies of the last one, up to :func:`bucket` of
    their number: the same rows for an ``IN``, one SQL text per power of two."""
    out = list(values)
    return out + out[-1:] * (bucket(len(out)) - len(out))


def padded_cases(cases: Mapping[str, V], filler: V) -> dict[str, V]:
    """``cases`` (for ``CASE column WHEN key THEN value``) with keys that no value of the column
    can equal (they begin with ``"~"``; ids here are 0x-hex) mapped to ``filler``, up to
    :func:`bucket` of their number."""
    out = dict(cases)
    out.update((f"~{i}", filler) for i in range(bucket(len(out)) - len(out)))
    return out

"""Errors raised by :mod:`db`."""

from __future__ import annotations


class DatabaseError(Exception):
    """Root of every error raised by db."""

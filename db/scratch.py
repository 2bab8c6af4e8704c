"""Throwaway PostgreSQL databases, as the test suites and the benchmarks use them: a new, empty
database created beside the one an admin URL names, and dropped (``WITH (FORCE)``) afterwards."""

from __future__ import annotations

import secrets

from sqlalchemy import create_engine, text


def create_database(admin_url: str, prefix: str) -> str:
    """A new, empty database ``<prefix>_<random>`` on the server of ``admin_url``; its URL.

    ``admin_url`` names a database the role can connect to and create databases from; whatever
    the driver raises when it cannot (no server, no right) propagates."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    _execute(admin_url, f'CREATE DATABASE "{name}"')
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database ``url`` names (made by :func:`create_database`), connections and all."""
    _execute(admin_url, f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _execute(admin_url: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE cannot run inside one)."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()

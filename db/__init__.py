"""The platform database: one SQLAlchemy ``Base`` with every table, the engine and sessions
(:class:`Store`: SQLite by default, PostgreSQL by URL), the Alembic migrations, the release log's
format and the chain indexer's store."""

from .errors import DatabaseError
from .store import Store, StoreUnavailable

__all__ = ["DatabaseError", "Store", "StoreUnavailable"]

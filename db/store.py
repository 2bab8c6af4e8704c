"""The platform's database: SQLite file by default, PostgreSQL by URL; schema by Alembic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from .batch import WriteBatcher
from .errors import DatabaseError
from .models import ReleaseLogRow

_MIGRATIONS = Path(__file__).with_name("migrations")


class StoreUnavailable(DatabaseError):
    """The database does not answer."""


class Store:
    """Sessions on one database, migrated to the newest schema on open."""

    def __init__(self, url: str, *, migrate: bool = True, busy_timeout: float = 30.0) -> None:
        """``busy_timeout``: seconds a statement waits for a locked SQLite file, or for a
        PostgreSQL connection (to open, or from the pool), before :class:`StoreUnavailable`."""
        self.url = url
        sqlite = url.startswith("sqlite")
        # a file has no connection to lose: ping only servers (a restarted PostgreSQL drops them)
        connect_args: dict[str, object] = (
            {"timeout": busy_timeout} if sqlite else {"connect_timeout": max(1, int(min(busy_timeout, 10)))}
        )
        # SQLite connections are cheap to keep: one per thread of the API's pool, so that none is
        # opened (and its pragmas run) per request under load.
        memory = sqlite and (":memory:" in url or url.rstrip("/") == "sqlite:")
        pool: dict[str, object] = (
            {}
            if memory
            else {"pool_size": 48, "max_overflow": 16, "pool_timeout": busy_timeout}
            if sqlite
            # PostgreSQL: a kept connection for each of the API's worker threads (api/threads.py),
            # few beyond them: a connection over ``pool_size`` is closed when returned, so under
            # load every request beyond it opened a new one (7% of an API process's CPU per release,
            # py-spy); 30 per process keeps `qcl serve --workers 2` + `qcl worker` within the
            # server's default of 100 connections
            else {"pool_size": 24, "max_overflow": 6, "pool_timeout": busy_timeout}
        )
        if pool:
            # last in, first out: the few connections a steady load needs stay hot, and those a
            # burst opened sit idle (their statement caches and SQLite's heap no longer grow)
            pool["pool_use_lifo"] = True
        self.engine: Engine = create_engine(url, connect_args=connect_args, pool_pre_ping=not sqlite, **pool)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: Group commit of small independent writes (see :mod:`db.batch`).
        self.writer = WriteBatcher(self)
        if migrate:
            self.migrate()

    @classmethod
    def sqlite(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    def migrate(self, target: str = "head") -> None:
        """Bring the schema to Alembic revision ``target`` (default: the newest)."""
        config = _alembic_config()
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, target)
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"the vault database does not answer: {exc.orig}") from None

    def revision(self) -> str | None:
        """The Alembic revision the database is at (``None``: never migrated)."""
        try:
            with self.engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"the vault database does not answer: {exc.orig}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on an exception."""
        try:
            with self._sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(f"the vault database failed: {exc.orig}") from None
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no database connection free: {exc}") from None

    def next_log_index(self, session: Session) -> int:
        current = session.scalar(select(func.max(ReleaseLogRow.idx)))
        return 0 if current is None else int(current) + 1

    def dispose(self) -> None:
        self.writer.stop()
        self.engine.dispose()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def schema_revisions() -> list[str]:
    """Every Alembic revision this code knows, oldest first (the last is the head)."""
    script = ScriptDirectory.from_config(_alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

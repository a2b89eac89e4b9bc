"""The backends the exchange history contract suite runs against, and how to reach a fresh
database of each.

To add one, add its name to ``HISTORY_BACKENDS`` and a branch to ``make_history_backend``
returning a ``HistoryBackend`` on a fresh, empty database. PostgreSQL: a database of the test's
own, as in ``store_backends.py`` (skipped when the server is unreachable, failed under
``CI=true``).
"""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store_backends import postgres_database

__all__ = ["HISTORY_BACKENDS", "HistoryBackend", "make_history_backend"]

HISTORY_BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class HistoryBackend:
    """One fresh database of one backend.

    ``url`` is its ``DATABASE_URL`` (for ``history_store_from_url`` and ``store_from_url``).
    ``sql(statement)`` runs one statement on it behind the stores' backs, autocommitted, and
    returns its rows. ``drop`` removes the database once the test is done.
    """

    name: str
    url: str
    sql: Callable[[str], list[tuple[Any, ...]]]
    drop: Callable[[], None] = lambda: None


def make_history_backend(name: str, scratch: Path) -> HistoryBackend:
    """Return backend ``name`` on a fresh database; ``scratch`` is an empty directory of its own."""
    if name == "sqlite":
        # A directory that does not exist yet: open() must create it.
        path = scratch / "data" / "memetrade.db"
        # The history's own file, beside the market data's (adapters/storage/__init__.py).
        history_path = path.with_name("memetrade-history.db")

        def sqlite_sql(statement: str) -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(history_path, isolation_level=None)
            try:
                return conn.execute(statement).fetchall()
            finally:
                conn.close()

        return HistoryBackend(name="sqlite", url=f"sqlite:///{path}", sql=sqlite_sql)
    if name == "postgres":
        import psycopg

        url, drop = postgres_database()

        def postgres_sql(statement: str) -> list[tuple[Any, ...]]:
            with psycopg.connect(url, autocommit=True) as conn:
                cur = conn.execute(statement.encode())
                return cur.fetchall() if cur.description is not None else []

        return HistoryBackend(name="postgres", url=url, sql=postgres_sql, drop=drop)
    raise AssertionError(f"no fixture for history backend {name!r}")

"""The store backends the contract suite runs against, and how to reach a fresh database of each.

To add a backend, add its name to ``STORE_BACKENDS`` and a branch to ``make_backend`` returning a
``StoreBackend`` on a fresh, empty database, calling ``require_server`` when its server cannot be
reached.

PostgreSQL: each test gets a database of its own, created from the maintenance database that
``TEST_POSTGRES_URL`` names (default: the local server's ``postgres`` database as the
``postgres`` user) and dropped afterwards. A database costs ~50 ms to create and drop on this
machine; in exchange each test has its own catalogue, advisory locks and connections to drop.
"""

import functools
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from memetrade.domain.symbols import PRESETS, SymbolSpec
from memetrade.ports import TradeStore

__all__ = [
    "STORE_BACKENDS",
    "SYMBOLS",
    "StoreBackend",
    "make_backend",
    "postgres_database",
    "require_server",
]

STORE_BACKENDS = ["sqlite", "postgres"]

# Symbols the ``store`` fixture is opened with.
SYMBOLS: list[SymbolSpec] = [PRESETS["PEPE"], PRESETS["DOGE"]]

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class StoreBackend:
    """How to reach one fresh database of one backend.

    ``make`` returns a new, unopened store on that database (call it again to "reopen").
    ``child_setup`` is Python source that, run in another process, binds ``make_store`` to a
    zero-argument callable doing the same: the kill -9 test needs it. ``drop`` removes the
    database once the test is done.
    """

    name: str
    make: Callable[[], TradeStore]
    child_setup: str
    drop: Callable[[], None] = lambda: None


def require_server(what: str, error: str | None) -> None:
    """Skip the test when ``what`` could not be reached (``error`` says why), but fail it under
    ``CI=true``: CI provides every server, so an unreachable one there is a broken run, not a
    reason to pass with less tested."""
    if error is None:
        return
    message = f"{what} is unreachable ({error})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it")
    pytest.skip(f"{message}; start it or point TEST_POSTGRES_URL at one to run this test")


@functools.cache
def _postgres_unreachable() -> str | None:
    """Why the PostgreSQL server cannot be used, or None. Asked once per test session."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


def postgres_database() -> tuple[str, Callable[[], None]]:
    """Create an empty database on the test server; return its URL and a function dropping it.

    Skips (or fails under CI) when the server is unreachable.
    """
    require_server(f"PostgreSQL at {_redacted(POSTGRES_ADMIN_URL)}", _postgres_unreachable())
    import psycopg
    from psycopg import sql

    name = f"memetrade_test_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        # FORCE: a child process killed with SIGKILL may leave a backend behind for a moment.
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    return urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}").geturl(), drop


def _redacted(url: str) -> str:
    """``url`` without user, password or query."""
    parts = urlsplit(url)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc, query="").geturl()


def make_backend(name: str, scratch: Path) -> StoreBackend:
    """Return backend ``name`` on a fresh database; ``scratch`` is an empty directory of its own."""
    if name == "sqlite":
        from memetrade.adapters.storage.sqlite import SqliteStore

        # A directory that does not exist yet: open() must create it.
        path = scratch / "data" / "memetrade.db"
        return StoreBackend(
            name="sqlite",
            make=lambda: SqliteStore(path),
            child_setup=(
                "from memetrade.adapters.storage.sqlite import SqliteStore\n"
                f"make_store = lambda: SqliteStore({str(path)!r})\n"
            ),
        )
    if name == "postgres":
        from memetrade.adapters.storage.postgres import PostgresStore

        url, drop = postgres_database()
        return StoreBackend(
            name="postgres",
            make=lambda: PostgresStore(url),
            child_setup=(
                "from memetrade.adapters.storage.postgres import PostgresStore\n"
                f"make_store = lambda: PostgresStore({url!r})\n"
            ),
            drop=drop,
        )
    raise AssertionError(f"no fixture for store backend {name!r}")

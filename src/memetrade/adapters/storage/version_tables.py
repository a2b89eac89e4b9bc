"""Schema migrations recorded in a version table of their own, for stores that share a database.

Several stores live in one SQLite file or one PostgreSQL database (market data, accounts, the
exchange's journal and history), and each moves its schema on its own. ``PRAGMA user_version``
can hold one number per file, so each store keeps a table (``<name>_schema_version``) with one
row per applied step: when it ran is there for whoever reads the database later.

``migrations[i]`` takes version ``i`` to ``i + 1``. A step is history: once released it never
changes. Callers run these inside the transaction that opens the store, so a crash leaves the
schema at a step boundary, and two processes opening at once migrate once (SQLite: the caller's
``BEGIN IMMEDIATE``; PostgreSQL: the advisory lock taken here, released with the transaction).
"""

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, LiteralString

from memetrade.ports import StorageError

if TYPE_CHECKING:
    # Only for annotations: a SQLite deployment never imports the PostgreSQL driver.
    import psycopg

__all__ = ["migrate_postgres", "migrate_sqlite"]

# How long a PostgreSQL open waits for another process's migration before giving up.
_LOCK_TIMEOUT = "60s"


def migrate_sqlite(
    conn: sqlite3.Connection, table: str, migrations: Sequence[Sequence[str]], where: str
) -> None:
    """Apply the steps of ``migrations`` that ``table`` does not list yet, on ``conn`` (which
    must be in a write transaction). ``table`` is a constant of the caller, never input;
    ``where`` names the database in errors."""
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {table} (
            version INTEGER NOT NULL PRIMARY KEY,
            applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        )"""
    )
    version: int = conn.execute(f"SELECT coalesce(max(version), 0) FROM {table}").fetchone()[0]
    _check_known(version, len(migrations), table, where)
    for number, step in enumerate(migrations[version:], start=version + 1):
        for statement in step:
            conn.execute(statement)
        conn.execute(f"INSERT INTO {table} (version) VALUES (?)", (number,))


async def migrate_postgres(
    conn: "psycopg.AsyncConnection[Any]",
    table: LiteralString,
    lock: int,
    migrations: Sequence[Sequence[LiteralString]],
    where: str,
) -> None:
    """Apply the steps of ``migrations`` that ``table`` does not list yet, on ``conn`` (which
    must be in a transaction), holding the advisory lock ``lock`` (a constant of the store, so
    stores do not wait for each other's migrations)."""
    from psycopg import sql

    await conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_LOCK_TIMEOUT)))
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
    name = sql.Identifier(table)
    await conn.execute(
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
                version integer NOT NULL PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        ).format(name)
    )
    cur = await conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(name))
    row = await cur.fetchone()
    version: int = row[0] if row is not None else 0
    _check_known(version, len(migrations), table, where)
    for number, step in enumerate(migrations[version:], start=version + 1):
        for statement in step:
            await conn.execute(statement)
        await conn.execute(sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(name), (number,))


def _check_known(version: int, known: int, table: str, where: str) -> None:
    if version > known:
        raise StorageError(
            f"{where} has {table} {version} but this memetrade knows only up to {known};"
            " upgrade memetrade"
        )

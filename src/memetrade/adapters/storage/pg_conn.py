"""The connections every PostgreSQL store uses: psycopg 3 and a psycopg_pool connection pool.

Design, and why:

* Driver: psycopg 3 (``psycopg[binary,pool]``), not asyncpg. Both are maintained and fast at
  what these stores do (bulk COPY; the rest is a few small queries). psycopg ships its own type
  annotations, so the package stays ``mypy --strict`` with no third-party stubs; it speaks libpq,
  so ``DATABASE_URL`` means exactly what it means to ``psql`` (both URL schemes, ``sslmode``,
  ``options=-csearch_path=...``, service files, ``PG*`` environment defaults); its pool checks a
  connection before lending it, so a restarted server costs a reconnect, not an error.
* Durable commits: a commit is flushed to the WAL before it returns under the server's default
  ``synchronous_commit = on``, so what a store acknowledges survives a kill -9 of either
  process. A server configured with ``off`` would make that a lie, so every pooled session
  turns it back ``on`` (``local``, ``remote_write`` and stricter levels are left as they are).
* Schema: each store migrates under an advisory lock of its own with a version table of its
  own (see ``migrations``), in one transaction with whatever else it checks at ``open``.
* Errors: ``OperationalError`` (connection failures, a server shutting down, and the pool's
  ``PoolTimeout``, a subclass) becomes ``StorageUnavailable``, since the server may well be back
  in a moment and callers that own the data retry; any other ``psycopg`` error becomes
  ``StorageError``. Messages are one line and name the server but never the user or password.
* Writes that must not be abandoned (``shielded``) run in a task of their own: cancelling the
  caller does not cancel them, they run on to COMMIT or ROLLBACK, and ``close`` waits for them,
  so a connection is never dropped mid-transaction (the caller cannot know which way it went).

Behind a transaction-mode connection pooler (PgBouncer) session settings, temp tables and
prepared statements misbehave: connect to the server, or a session-mode pooler.
"""

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Final, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from memetrade.adapters.storage.migrations import check_version
from memetrade.ports import StorageError, StorageUnavailable

__all__ = ["Conn", "PostgresDatabase", "copy_rows", "migrate", "one_line", "redact"]

_T = TypeVar("_T")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]

# Used when the URL sets none (libpq's own default is to wait forever).
_CONNECT_TIMEOUT_S: Final = 10
# How long a call waits for a free pool connection before failing with StorageUnavailable.
_POOL_TIMEOUT_S: Final = 10.0
# How long open() waits for another process's migration before giving up.
_MIGRATION_LOCK_TIMEOUT: Final = "60s"


class PostgresDatabase:
    """A pool of ``min_connections`` to ``max_connections`` connections to the database at
    ``url`` (``postgresql://`` or ``postgres://``, anything libpq accepts), opened once the
    schema is migrated.

    ``name`` is the connections' ``application_name`` (what ``pg_stat_activity`` shows) and the
    pool's name. Errors name the database by its redacted URL, after ``kind`` if given
    (``"account store in postgresql://..."``). ``session`` statements run once on every new
    pooled connection (temp tables, say). After ``close`` it may be opened again.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        kind: str = "",
        min_connections: int = 1,
        max_connections: int,
        session: Sequence[LiteralString] = (),
    ) -> None:
        if not 1 <= min_connections <= max_connections:
            raise ValueError("need 1 <= min_connections <= max_connections")
        self.target = redact(url)
        self.label = f"{kind} in {self.target}" if kind else self.target
        self._url = url
        self._name = name
        self._min, self._max = min_connections, max_connections
        self._session = tuple(session)
        # None while closed. Every call takes it once, so close() clearing it stops new calls.
        self._pool: AsyncConnectionPool[Conn] | None = None
        # Shielded writes in flight; close() awaits them.
        self._writes: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, setup: Callable[[Conn], Coroutine[Any, Any, None]]) -> None:
        """Run ``setup`` (migrations, checks) in one transaction on a connection of its own,
        then open the pool."""
        if self._pool is not None:
            raise StorageError(f"{self.label} is already open")
        try:
            conninfo = _conninfo(self._url, self._name)
            connect = psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            async with await connect as conn, conn.transaction():
                await setup(conn)
            pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                conninfo,
                min_size=self._min,
                max_size=self._max,
                open=False,
                kwargs={"autocommit": True},
                configure=self._configure,
                check=AsyncConnectionPool.check_connection,
                name=self._name,
                timeout=_POOL_TIMEOUT_S,
            )
            try:
                await pool.open(wait=True, timeout=_POOL_TIMEOUT_S)
            except BaseException:
                await pool.close()
                raise
        except psycopg.Error as exc:
            raise StorageError(f"cannot open {self.label}: {one_line(exc)}") from exc
        self._pool = pool

    async def close(self) -> None:
        if self._pool is None:
            return
        try:
            # Writes started before close() run to COMMIT or ROLLBACK, with the pool still there
            # for those that have yet to take a connection; their callers see how they ended.
            await asyncio.gather(*self._writes, return_exceptions=True)
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:  # None if a concurrent close() got here first.
                try:
                    await pool.close()
                except psycopg.Error as exc:
                    raise StorageError(f"closing {self.label}: {one_line(exc)}") from exc

    def require_open(self) -> None:
        """Raise ``StorageError`` unless the store is open."""
        if self._pool is None:
            raise StorageError(f"{self.label} is not open")

    async def _configure(self, conn: Conn) -> None:
        await conn.execute(
            "SELECT set_config('synchronous_commit', 'on', false)"
            " WHERE current_setting('synchronous_commit') = 'off'"
        )
        for statement in self._session:
            await conn.execute(statement)

    # -- calls ----------------------------------------------------------------------------------

    async def run(self, what: str, fn: Callable[[Conn], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``fn`` on a pooled connection (autocommit: ``fn`` opens any transaction it
        needs); ``what`` (``"write to"``) says what failed in errors."""
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self.label} is not open")
        try:
            async with pool.connection() as conn:
                return await fn(conn)
        except psycopg.OperationalError as exc:
            message = f"postgres {what} {self.label} failed: {one_line(exc)}"
            raise StorageUnavailable(message) from exc
        except psycopg.Error as exc:
            raise StorageError(f"postgres {what} {self.label} failed: {one_line(exc)}") from exc

    async def fetch(
        self,
        query: LiteralString | sql.SQL | sql.Composed,
        args: Sequence[Any],
        *,
        binary: bool = False,
    ) -> list[tuple[Any, ...]]:
        """The rows of one statement (none if it returns none); ``binary`` results give
        ``bytea`` as raw bytes rather than hex text to decode."""

        async def run(conn: Conn) -> list[tuple[Any, ...]]:
            async with conn.cursor(binary=binary) as cur:
                await cur.execute(query, args)
                return await cur.fetchall() if cur.description is not None else []

        return await self.run("query on", run)

    async def shielded(self, write: Coroutine[Any, Any, _T]) -> _T:
        """Await ``write`` in a task of its own, which the caller's cancellation does not
        cancel and ``close`` waits for."""
        task = asyncio.create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)


async def migrate(
    conn: Conn,
    version_table: LiteralString,
    lock: int,
    migrations: Sequence[Sequence[LiteralString]],
    where: str,
) -> None:
    """Apply the steps of ``migrations`` that ``version_table`` does not list yet, on ``conn``
    (which must be in a transaction), holding the advisory lock ``lock`` (a constant of the
    store, so stores do not wait for each other's migrations) until the transaction ends."""
    # lock_timeout bounds the wait for another process's migration.
    await conn.execute(
        sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_MIGRATION_LOCK_TIMEOUT))
    )
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
    table = sql.Identifier(version_table)
    await conn.execute(
        sql.SQL(
            """CREATE TABLE IF NOT EXISTS {} (
                version integer NOT NULL PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        ).format(table)
    )
    cur = await conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(table))
    row = await cur.fetchone()
    version: int = row[0] if row is not None else 0
    check_version(where, version_table, version, len(migrations))
    for number, step in enumerate(migrations[version:], start=version + 1):
        for statement in step:
            await conn.execute(statement)
        await conn.execute(sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(table), (number,))


async def copy_rows(
    conn: Conn,
    statement: LiteralString,
    rows: Iterable[Sequence[Any]],
    types: Sequence[str] | None = None,
) -> None:
    """Send ``rows`` through ``statement`` (a ``COPY ... FROM STDIN``), the fastest way in;
    binary COPY needs the column ``types`` (``"int8"``, ``"bytea"``)."""
    async with conn.cursor().copy(statement) as copy:
        if types is not None:
            copy.set_types(types)
        for row in rows:
            await copy.write_row(row)


def redact(url: str) -> str:
    """``postgresql://host:port/dbname`` of ``url``: enough to name it, no user or password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(unparsable URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    dbname = parts.get("dbname") or parts.get("user") or ""
    return f"postgresql://{host}:{port}/{dbname}"


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line: libpq's carry DETAIL, HINT and indented context on
    further lines."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _conninfo(url: str, application_name: str) -> str:
    # url as a libpq connection string, with our defaults for what it leaves unset.
    given = conninfo_to_dict(url)
    defaults: dict[str, Any] = {
        "application_name": application_name,
        "connect_timeout": _CONNECT_TIMEOUT_S,
    }
    return make_conninfo(url, **{k: v for k, v in defaults.items() if k not in given})

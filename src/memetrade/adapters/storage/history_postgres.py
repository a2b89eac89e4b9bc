"""``ExchangeHistoryStore`` in PostgreSQL, beside the market data (psycopg 3 and a pool).

Design, and why:

* The same database and driver choices as ``PostgresStore`` (see its module docstring): libpq
  URLs, a checked pool, psycopg errors turned into ``StorageError`` with one-line messages that
  never carry the password, and connection failures into ``StorageUnavailable`` (the
  projector retries those).
* Its own version table, ``exchange_history_schema_version`` (``version_tables``), and its own
  advisory lock, so this schema moves apart from the market store's, the accounts' and the
  journal's.
* ``record`` is one transaction: COPY of the batch into session temp tables, then one
  ``INSERT ... SELECT`` per table (orders upserted only from an equal or later ``seq``, fills
  with ``ON CONFLICT DO NOTHING``) and the checkpoint. COPY is the fastest way in (see
  ``PostgresStore``); rows go in key order, so two writers cannot deadlock.
* Commits are durable when ``record`` returns (sessions turn ``synchronous_commit`` back on
  if the server has it off, as ``PostgresStore`` does): the journal keeps only the entries after
  its oldest snapshot, so a lost commit could not be fed again.
* Integers are ``bigint``; quote amounts, fees and their running sums are ``numeric``, exact
  however large (a notional is a product of two 64-bit integers).

Cancelling a caller of ``record`` does not cancel the transaction: it runs on to COMMIT or
ROLLBACK in a task of its own (``close`` waits for it), so a connection is never abandoned
mid-transaction.
"""

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from memetrade.adapters.storage.history_rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    fill_from_row,
    fills_query,
    order_from_row,
    orders_query,
    rows_of,
)

# The URL handling shared with PostgresStore (defaults, redaction, one-line errors).
from memetrade.adapters.storage.postgres import _conninfo, _one_line, _redact
from memetrade.adapters.storage.version_tables import migrate_postgres
from memetrade.domain.exchange.events import Fill, OrderUpdate
from memetrade.domain.exchange.history import FillRecord, OrderRecord, StatusFilter
from memetrade.ports import StorageError, StorageUnavailable

__all__ = ["PostgresHistoryStore"]

_T = TypeVar("_T")
_Conn = psycopg.AsyncConnection[tuple[Any, ...]]

# "memehist": apart from the other stores' migration locks.
_MIGRATION_LOCK: Final = 0x6D656D6568697374
_POOL_TIMEOUT_S: Final = 10.0
_VERSION_TABLE: Final = "exchange_history_schema_version"

_MIGRATIONS: Final[tuple[tuple[LiteralString, ...], ...]] = (
    # 1: orders, fills per user and role, the checkpoint.
    (
        """CREATE TABLE exchange_orders (
            order_id bigint NOT NULL PRIMARY KEY,
            user_id bigint NOT NULL,
            symbol text NOT NULL,
            side text NOT NULL CHECK (side IN ('buy', 'sell')),
            type text NOT NULL,
            status text NOT NULL,
            price bigint,
            stop_price bigint,
            quantity bigint,
            filled bigint NOT NULL,
            remaining bigint NOT NULL,
            cum_quote numeric NOT NULL,
            cum_fee numeric NOT NULL,
            reason text,
            client_order_id text,
            created_at bigint NOT NULL,
            updated_at bigint NOT NULL,
            seq bigint NOT NULL
        )""",
        "CREATE INDEX exchange_orders_by_user ON exchange_orders (user_id, order_id)",
        """CREATE INDEX exchange_orders_by_user_symbol
            ON exchange_orders (user_id, symbol, order_id)""",
        # Open orders are few beside a long history of ended ones; this keeps them one probe
        # away. The condition is the text the open-orders query uses.
        """CREATE INDEX exchange_orders_open ON exchange_orders (user_id, order_id)
            WHERE status IN ('new', 'partially_filled', 'triggered')""",
        """CREATE TABLE exchange_fills (
            user_id bigint NOT NULL,
            trade_id bigint NOT NULL,
            role text NOT NULL CHECK (role IN ('maker', 'taker')),
            order_id bigint NOT NULL,
            symbol text NOT NULL,
            side text NOT NULL CHECK (side IN ('buy', 'sell')),
            price bigint NOT NULL,
            quantity bigint NOT NULL,
            quote_amount numeric NOT NULL,
            fee numeric NOT NULL,
            fee_asset text NOT NULL,
            ts bigint NOT NULL,
            seq bigint NOT NULL,
            PRIMARY KEY (user_id, trade_id, role)
        )""",
        """CREATE TABLE exchange_history_checkpoint (
            one integer NOT NULL PRIMARY KEY CHECK (one = 1),
            seq bigint NOT NULL
        )""",
        "INSERT INTO exchange_history_checkpoint VALUES (1, 0)",
    ),
)

# Per-session staging tables for COPY, emptied by every commit and rollback. Created once per
# pooled connection, by _configure.
_STAGING: Final[tuple[LiteralString, ...]] = (
    """CREATE TEMP TABLE history_orders_in (LIKE exchange_orders) ON COMMIT DELETE ROWS""",
    """CREATE TEMP TABLE history_fills_in (LIKE exchange_fills) ON COMMIT DELETE ROWS""",
)
_COPY_ORDERS: Final = f"COPY history_orders_in ({ORDER_COLUMNS}, seq) FROM STDIN"
_COPY_FILLS: Final = f"COPY history_fills_in ({FILL_COLUMNS}, seq) FROM STDIN"
# An update carries the order's whole state; only one as of an equal or later journal entry
# may replace the stored one. created_at stays the time the order was first seen.
_UPSERT_ORDERS: Final = f"""
    INSERT INTO exchange_orders ({ORDER_COLUMNS}, seq)
    SELECT {ORDER_COLUMNS}, seq FROM history_orders_in ORDER BY order_id
    ON CONFLICT (order_id) DO UPDATE SET
        status = excluded.status, price = excluded.price, stop_price = excluded.stop_price,
        quantity = excluded.quantity, filled = excluded.filled, remaining = excluded.remaining,
        cum_quote = excluded.cum_quote, cum_fee = excluded.cum_fee, reason = excluded.reason,
        client_order_id = excluded.client_order_id, updated_at = excluded.updated_at,
        seq = excluded.seq
    WHERE excluded.seq >= exchange_orders.seq"""
_INSERT_FILLS: Final = f"""
    INSERT INTO exchange_fills ({FILL_COLUMNS}, seq)
    SELECT {FILL_COLUMNS}, seq FROM history_fills_in ORDER BY user_id, trade_id, role
    ON CONFLICT (user_id, trade_id, role) DO NOTHING"""
_RAISE_CHECKPOINT: Final = "UPDATE exchange_history_checkpoint SET seq = greatest(seq, %s)"
_CHECKPOINT: Final = "SELECT seq FROM exchange_history_checkpoint"


class PostgresHistoryStore:
    """An ``ExchangeHistoryStore`` in the PostgreSQL database at ``url`` (which must exist).
    After ``close`` the store may be opened again."""

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        if max_connections < 1:
            raise ValueError("need max_connections >= 1")
        self._url = url
        self._max = max_connections
        self._target = _redact(url)
        self._pool: AsyncConnectionPool[_Conn] | None = None
        # Records in flight, each in its own task (see the module docstring); close() awaits them.
        self._writes: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"PostgresHistoryStore({self._target!r})"

    async def open(self) -> None:
        if self._pool is not None:
            raise StorageError(f"{self._target} is already open")
        try:
            conninfo = _conninfo(self._url)
            connect = psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            async with await connect as conn, conn.transaction():
                await migrate_postgres(
                    conn, _VERSION_TABLE, _MIGRATION_LOCK, _MIGRATIONS, self._target
                )
            pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
                conninfo,
                min_size=1,
                max_size=self._max,
                open=False,
                kwargs={"autocommit": True},
                configure=_configure,
                check=AsyncConnectionPool.check_connection,
                name="memetrade-history",
                timeout=_POOL_TIMEOUT_S,
            )
            try:
                await pool.open(wait=True, timeout=_POOL_TIMEOUT_S)
            except BaseException:
                await pool.close()
                raise
        except psycopg.Error as exc:
            message = f"cannot open exchange history in {self._target}: {_one_line(exc)}"
            raise StorageError(message) from exc
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.gather(*self._writes, return_exceptions=True)
        finally:
            try:
                await pool.close()
            except psycopg.Error as exc:
                raise StorageError(f"closing {self._target}: {_one_line(exc)}") from exc

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(self, what: str, fn: Callable[[_Conn], Coroutine[Any, Any, _T]]) -> _T:
        pool = self._pool
        if pool is None:
            raise StorageError(f"exchange history in {self._target} is not open")
        try:
            async with pool.connection() as conn:
                return await fn(conn)
        except psycopg.OperationalError as exc:
            # Connection failures, a server shutting down, and the pool's PoolTimeout (a
            # subclass): the server may well be back in a moment.
            message = f"postgres {what} {self._target} failed: {_one_line(exc)}"
            raise StorageUnavailable(message) from exc
        except psycopg.Error as exc:
            raise StorageError(f"postgres {what} {self._target} failed: {_one_line(exc)}") from exc

    async def _fetch(self, query: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        async def run(conn: _Conn) -> list[tuple[Any, ...]]:
            # Only this module's and history_rows' constant texts reach here; values always
            # travel as parameters.
            cur = await conn.execute(sql.SQL(query), args)
            return await cur.fetchall()

        return await self._run("read from", run)

    # -- writes ---------------------------------------------------------------------------------

    async def record(self, seq: int, events: Sequence[OrderUpdate | Fill]) -> None:
        order_rows, fill_rows = rows_of(seq, events, int)

        async def run(conn: _Conn) -> None:
            async with conn.transaction():
                if order_rows:
                    async with conn.cursor().copy(_COPY_ORDERS) as copy:
                        for row in order_rows:
                            await copy.write_row(row)
                    await conn.execute(_UPSERT_ORDERS)
                if fill_rows:
                    async with conn.cursor().copy(_COPY_FILLS) as copy:
                        for row in fill_rows:
                            await copy.write_row(row)
                    await conn.execute(_INSERT_FILLS)
                await conn.execute(_RAISE_CHECKPOINT, (seq,))

        task = asyncio.create_task(self._run("write to", run))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        await asyncio.shield(task)

    # -- reads ----------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._fetch(_CHECKPOINT, ())

    async def checkpoint(self) -> int:
        rows = await self._fetch(_CHECKPOINT, ())
        seq: int = rows[0][0]
        return seq

    async def orders(
        self,
        user_id: int,
        *,
        symbol: str | None = None,
        status: StatusFilter = "all",
        start: int | None = None,
        end: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[OrderRecord]:
        query, args = orders_query("%s", user_id, symbol, status, start, end, before, limit)
        return [order_from_row(row) for row in await self._fetch(query, args)]

    async def order(self, user_id: int, order_id: int) -> OrderRecord | None:
        rows = await self._fetch(
            f"SELECT {ORDER_COLUMNS} FROM exchange_orders WHERE order_id = %s AND user_id = %s",
            (order_id, user_id),
        )
        return order_from_row(rows[0]) if rows else None

    async def fills(
        self,
        user_id: int,
        *,
        symbol: str | None = None,
        start: int | None = None,
        end: int | None = None,
        from_id: int | None = None,
        limit: int = 500,
    ) -> list[FillRecord]:
        query, args = fills_query("%s", user_id, symbol, start, end, from_id, limit)
        records = [fill_from_row(row) for row in await self._fetch(query, args)]
        return records if from_id is not None else records[::-1]


async def _configure(conn: _Conn) -> None:
    """Prepare a new pooled connection: durable commits and the COPY staging tables."""
    await conn.execute(
        "SELECT set_config('synchronous_commit', 'on', false)"
        " WHERE current_setting('synchronous_commit') = 'off'"
    )
    for statement in _STAGING:
        await conn.execute(statement)

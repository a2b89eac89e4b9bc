"""``ExchangeHistoryStore`` in PostgreSQL, beside the market data (connections: ``pg_conn``).

Design, and why:

* The same database, driver, pool and error mapping as ``PostgresStore`` (``pg_conn``): libpq
  URLs, a checked pool, psycopg errors turned into ``StorageError`` with one-line messages that
  never carry the password, and connection failures into ``StorageUnavailable`` (the
  projector retries those).
* Its own version table, ``exchange_history_schema_version``, and its own advisory lock, so
  this schema moves apart from the market store's, the accounts' and the journal's.
* ``record`` is one transaction: COPY of the batch into session temp tables, then one
  ``INSERT ... SELECT`` per table (orders upserted only from an equal or later ``seq``, fills
  with ``ON CONFLICT DO NOTHING``) and the checkpoint. COPY is the fastest way in (see
  ``PostgresStore``); rows go in key order, so two writers cannot deadlock.
* Commits are durable when ``record`` returns (``pg_conn`` turns ``synchronous_commit`` back
  on if the server has it off): the journal keeps only the entries after its oldest snapshot,
  so a lost commit could not be fed again.
* Integers are ``bigint``; quote amounts, fees and their running sums are ``numeric``, exact
  however large (a notional is a product of two 64-bit integers).

Cancelling a caller of ``record`` does not cancel the transaction (``pg_conn``'s shielded
writes), so a connection is never abandoned mid-transaction.
"""

from collections.abc import Sequence
from typing import Any, Final, LiteralString

from psycopg import sql

from memetrade.adapters.storage.history_rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    fill_from_row,
    fills_query,
    order_from_row,
    orders_query,
    rows_of,
)
from memetrade.adapters.storage.pg_conn import Conn, PostgresDatabase, copy_rows, migrate
from memetrade.domain.exchange.events import Fill, OrderUpdate
from memetrade.domain.exchange.history import FillRecord, OrderRecord, StatusFilter

__all__ = ["PostgresHistoryStore"]

# "memehist": apart from the other stores' migration locks.
_MIGRATION_LOCK: Final = 0x6D656D6568697374

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
# pooled connection.
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
        self._db = PostgresDatabase(
            url,
            name="memetrade-history",
            kind="exchange history",
            max_connections=max_connections,
            session=_STAGING,
        )

    def __repr__(self) -> str:
        return f"PostgresHistoryStore({self._db.target!r})"

    async def open(self) -> None:
        async def setup(conn: Conn) -> None:
            await migrate(
                conn,
                "exchange_history_schema_version",
                _MIGRATION_LOCK,
                _MIGRATIONS,
                self._db.target,
            )

        await self._db.open(setup)

    async def close(self) -> None:
        await self._db.close()

    async def _fetch(self, query: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        # Only this module's and history_rows' constant texts reach here; values always travel
        # as parameters.
        return await self._db.fetch(sql.SQL(query), args)

    # -- writes ---------------------------------------------------------------------------------

    async def record(self, seq: int, events: Sequence[OrderUpdate | Fill]) -> None:
        order_rows, fill_rows = rows_of(seq, events, int)

        async def run(conn: Conn) -> None:
            async with conn.transaction():
                if order_rows:
                    await copy_rows(conn, _COPY_ORDERS, order_rows)
                    await conn.execute(_UPSERT_ORDERS)
                if fill_rows:
                    await copy_rows(conn, _COPY_FILLS, fill_rows)
                    await conn.execute(_INSERT_FILLS)
                await conn.execute(_RAISE_CHECKPOINT, (seq,))

        await self._db.shielded(self._db.run("write to", run))

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

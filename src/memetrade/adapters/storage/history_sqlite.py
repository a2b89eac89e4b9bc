"""``ExchangeHistoryStore`` in an embedded SQLite file beside the market data's.

Design, and why:

* A file of its own (``memetrade-history.db`` by default; see ``storage.__init__``), through
  ``sqlite_conn`` (one writer thread, a few readers). A write that waits longer than
  ``busy_timeout_ms`` for another writer's lock raises ``StorageUnavailable``, and the projector
  retries it.
* The schema version is kept in ``exchange_history_schema_version`` rather than ``PRAGMA
  user_version``, so the store can also share a file with the market store. Migrations run
  in one ``BEGIN IMMEDIATE`` transaction, so two processes opening one file migrate it once.
* ``synchronous = FULL``, as the market store: the history is derived from the journal, but
  the journal keeps only the entries after its oldest snapshot, and the exchange takes a
  snapshot once its listeners have flushed. A commit that a power cut could take back would
  then be lost for good, so each one is fsynced (once per batch, which group commit keeps
  cheap).
"""

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from memetrade.adapters.storage.history_rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    fill_from_row,
    fills_query,
    order_from_row,
    orders_query,
    rows_of,
)
from memetrade.adapters.storage.sqlite_conn import BUSY_TIMEOUT_MS, SqliteDatabase, migrate
from memetrade.domain.exchange.events import Fill, OrderUpdate
from memetrade.domain.exchange.history import FillRecord, OrderRecord, StatusFilter

__all__ = ["SqliteHistoryStore"]

_VERSION_TABLE: Final = "exchange_history_schema_version"
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: orders, fills per user and role, the checkpoint.
    (
        """CREATE TABLE exchange_orders (
            order_id INTEGER NOT NULL PRIMARY KEY,
            user_id INTEGER NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            price INTEGER,
            stop_price INTEGER,
            quantity INTEGER,
            filled INTEGER NOT NULL,
            remaining INTEGER NOT NULL,
            cum_quote TEXT NOT NULL,
            cum_fee TEXT NOT NULL,
            reason TEXT,
            client_order_id TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            seq INTEGER NOT NULL
        )""",
        # SQLite appends the rowid (order_id) to index entries: these are (user_id, order_id)
        # and (user_id, symbol, order_id), in the newest-first order the queries read.
        "CREATE INDEX exchange_orders_by_user ON exchange_orders (user_id)",
        "CREATE INDEX exchange_orders_by_user_symbol ON exchange_orders (user_id, symbol)",
        # Open orders are few beside a long history of ended ones; this keeps them one probe
        # away. The condition is the text the open-orders query uses, as the planner requires.
        """CREATE INDEX exchange_orders_open ON exchange_orders (user_id)
            WHERE status IN ('new', 'partially_filled', 'triggered')""",
        """CREATE TABLE exchange_fills (
            user_id INTEGER NOT NULL,
            trade_id INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('maker', 'taker')),
            order_id INTEGER NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
            price INTEGER NOT NULL,
            quantity INTEGER NOT NULL,
            quote_amount TEXT NOT NULL,
            fee TEXT NOT NULL,
            fee_asset TEXT NOT NULL,
            ts INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (user_id, trade_id, role)
        ) WITHOUT ROWID""",
        """CREATE TABLE exchange_history_checkpoint (
            one INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
            seq INTEGER NOT NULL
        )""",
        "INSERT INTO exchange_history_checkpoint VALUES (1, 0)",
    ),
)

# An update carries the order's whole state; only one as of an equal or later journal entry
# may replace the stored one. created_at stays the time the order was first seen.
_UPSERT_ORDER: Final = f"""
    INSERT INTO exchange_orders ({ORDER_COLUMNS}, seq)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (order_id) DO UPDATE SET
        status = excluded.status, price = excluded.price, stop_price = excluded.stop_price,
        quantity = excluded.quantity, filled = excluded.filled, remaining = excluded.remaining,
        cum_quote = excluded.cum_quote, cum_fee = excluded.cum_fee, reason = excluded.reason,
        client_order_id = excluded.client_order_id, updated_at = excluded.updated_at,
        seq = excluded.seq
    WHERE excluded.seq >= exchange_orders.seq"""
_INSERT_FILL: Final = f"""
    INSERT INTO exchange_fills ({FILL_COLUMNS}, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (user_id, trade_id, role) DO NOTHING"""
_RAISE_CHECKPOINT: Final = "UPDATE exchange_history_checkpoint SET seq = max(seq, ?)"
_CHECKPOINT: Final = "SELECT seq FROM exchange_history_checkpoint"


class SqliteHistoryStore:
    """An ``ExchangeHistoryStore`` in the SQLite file at ``path`` (created with its directory).

    ``busy_timeout_ms`` is how long a write waits for another writer of the file before it
    raises ``StorageUnavailable``. After ``close`` the store may be opened again.
    """

    def __init__(
        self, path: str | Path, *, readers: int = 2, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        self._path = Path(path)
        self._db = SqliteDatabase(
            self._path,
            kind="exchange history",
            name="history",
            readers=readers,
            busy_timeout_ms=busy_timeout_ms,
        )

    def __repr__(self) -> str:
        return f"SqliteHistoryStore({str(self._path)!r})"

    async def open(self) -> None:
        await self._db.open(
            lambda conn: migrate(conn, _MIGRATIONS, str(self._path), _VERSION_TABLE)
        )

    async def close(self) -> None:
        await self._db.close()

    # -- writes ---------------------------------------------------------------------------------

    async def record(self, seq: int, events: Sequence[OrderUpdate | Fill]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            # Rows are built here, on the writer thread, to keep the event loop free.
            order_rows, fill_rows = rows_of(seq, events, str)
            conn.executemany(_UPSERT_ORDER, order_rows)
            conn.executemany(_INSERT_FILL, fill_rows)
            conn.execute(_RAISE_CHECKPOINT, (seq,))

        await self._db.write(run)

    # -- reads ----------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._db.fetch(_CHECKPOINT, ())

    async def checkpoint(self) -> int:
        rows = await self._db.fetch(_CHECKPOINT, ())
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
        sql, args = orders_query("?", user_id, symbol, status, start, end, before, limit)
        return [order_from_row(row) for row in await self._db.fetch(sql, args)]

    async def order(self, user_id: int, order_id: int) -> OrderRecord | None:
        rows = await self._db.fetch(
            f"SELECT {ORDER_COLUMNS} FROM exchange_orders WHERE order_id = ? AND user_id = ?",
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
        sql, args = fills_query("?", user_id, symbol, start, end, from_id, limit)
        records = [fill_from_row(row) for row in await self._db.fetch(sql, args)]
        return records if from_id is not None else records[::-1]

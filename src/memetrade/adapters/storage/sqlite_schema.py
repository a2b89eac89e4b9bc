"""The SQLite store's schema: its migrations, and the SQL functions they need.

``MIGRATIONS[i]`` takes schema version ``i`` (``PRAGMA user_version``) to ``i + 1``. A step is
history: once released it never changes, so it names the intervals and columns of its own time
rather than importing today's.

Step 3 recomputes the taker buy volumes of every stored candle from the stored trades, so that
candles stay a function of the trades. SQLite's integers are 64-bit: ``sum`` fails past 2**63
and ``price * amount`` silently turns into a float when it overflows, and both happen on real
data (a PEPE hour's quote volume passes 2**63). So the sums are two aggregate functions written
in Python, exact with Python ints and answering the decimal text the volume columns hold; they
must be registered on the connection (``register_functions``) before the steps run. They cost
about a microsecond per buy trade and interval.
"""

import sqlite3
from typing import Final

__all__ = ["MIGRATIONS", "register_functions"]

# The intervals the store kept candles of when step 3 was written.
_V2_INTERVALS: Final = (
    ("1s", 1_000),
    ("1m", 60_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
)


def _recompute_buy_volumes(name: str, ms: int) -> str:
    # One UPDATE ... FROM per interval: the taker buy sums of the interval's trades, per candle.
    # Candles without a buy trade keep the column default, '0'.
    return f"""UPDATE candles SET buy_volume = b.volume, buy_quote_volume = b.quote FROM (
            SELECT symbol, ts - ts % {ms} AS open_time,
                exact_sum(amount) AS volume, exact_product_sum(price, amount) AS quote
            FROM trades WHERE side = 'Buy'
            GROUP BY symbol, ts - ts % {ms}
        ) AS b
        WHERE candles.symbol = b.symbol AND candles.interval = '{name}'
            AND candles.open_time = b.open_time"""


MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: symbols, trades, candles.
    (
        """CREATE TABLE symbols (
            name TEXT NOT NULL PRIMARY KEY,
            price_decimals INTEGER NOT NULL,
            amount_decimals INTEGER NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE trades (
            symbol TEXT NOT NULL,
            id TEXT NOT NULL,
            ts INTEGER NOT NULL,
            price INTEGER NOT NULL,
            amount INTEGER NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('Buy', 'Sell')),
            PRIMARY KEY (symbol, id)
        ) WITHOUT ROWID""",
        # SQLite appends the primary key to the index entries, so this is (symbol, ts, id): it
        # answers trade_keys_since alone and gives recent_trades its (ts, id) order without a sort.
        "CREATE INDEX trades_by_time ON trades (symbol, ts)",
        """CREATE TABLE candles (
            symbol TEXT NOT NULL,
            interval TEXT NOT NULL,
            open_time INTEGER NOT NULL,
            open INTEGER NOT NULL,
            high INTEGER NOT NULL,
            low INTEGER NOT NULL,
            close INTEGER NOT NULL,
            volume TEXT NOT NULL,
            quote_volume TEXT NOT NULL,
            trades INTEGER NOT NULL CHECK (trades > 0),
            first_ts INTEGER NOT NULL,
            first_id TEXT NOT NULL,
            last_ts INTEGER NOT NULL,
            last_id TEXT NOT NULL,
            PRIMARY KEY (symbol, interval, open_time)
        ) WITHOUT ROWID""",
    ),
    # 2: trade numbers (Trade.seq), per symbol. Trades stored before are numbered in (ts, id)
    # order, which is the order they were accepted in except for late ones.
    (
        "ALTER TABLE trades ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
        """UPDATE trades SET seq = numbered.n FROM (
            SELECT symbol, id, row_number() OVER (PARTITION BY symbol ORDER BY ts, id) AS n
            FROM trades
        ) AS numbered
        WHERE trades.symbol = numbered.symbol AND trades.id = numbered.id""",
        "CREATE UNIQUE INDEX trades_by_seq ON trades (symbol, seq)",
    ),
    # 3: taker buy volumes per candle (decimal text, as the other volumes), recomputed from the
    # stored trades.
    (
        "ALTER TABLE candles ADD COLUMN buy_volume TEXT NOT NULL DEFAULT '0'",
        "ALTER TABLE candles ADD COLUMN buy_quote_volume TEXT NOT NULL DEFAULT '0'",
        *(_recompute_buy_volumes(name, ms) for name, ms in _V2_INTERVALS),
    ),
)


class _ExactSum:
    """``exact_sum(x)``: the sum of integers ``x`` as decimal text, however large."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: int) -> None:
        self.total += value

    def finalize(self) -> str:
        return str(self.total)


class _ExactProductSum:
    """``exact_product_sum(x, y)``: the sum of ``x * y`` as decimal text, however large."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, x: int, y: int) -> None:
        self.total += x * y

    def finalize(self) -> str:
        return str(self.total)


def register_functions(conn: sqlite3.Connection) -> None:
    """Make the aggregate functions the migrations use available on ``conn``."""
    # typeshed's protocol for aggregates allows only one-argument steps and int results.
    conn.create_aggregate("exact_sum", 1, _ExactSum)  # type: ignore[arg-type]
    conn.create_aggregate("exact_product_sum", 2, _ExactProductSum)  # type: ignore[arg-type]

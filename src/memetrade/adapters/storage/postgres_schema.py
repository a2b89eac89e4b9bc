"""The PostgreSQL store's schema: its migrations.

``MIGRATIONS[i]`` takes schema version ``i`` (rows of ``schema_version``) to ``i + 1``. A step
is history: once released it never changes, so it names the intervals and columns of its own
time rather than importing today's.

Step 3 recomputes the taker buy volumes of every stored candle from the stored trades, so that
candles stay a function of the trades: ``numeric`` sums, exact however large.
"""

from typing import Final, LiteralString

__all__ = ["MIGRATIONS"]

# The intervals the store kept candles of when step 3 was written.
_V2_INTERVALS: Final = (
    ("1s", 1_000),
    ("1m", 60_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
)


def _recompute_buy_volumes(name: LiteralString, ms: int) -> LiteralString:
    # One UPDATE ... FROM per interval: the taker buy sums of the interval's trades, per candle.
    # Candles without a buy trade keep 0. ``ms`` is one of the integers above, never input.
    return f"""UPDATE candles SET buy_volume = b.volume, buy_quote_volume = b.quote FROM (
            SELECT symbol, ts - ts % {ms:d} AS open_time,
                sum(amount) AS volume, sum(price::numeric * amount) AS quote
            FROM trades WHERE side = 'Buy'
            GROUP BY 1, 2
        ) AS b
        WHERE candles.symbol = b.symbol AND candles.interval = '{name}'
            AND candles.open_time = b.open_time"""


MIGRATIONS: Final[tuple[tuple[LiteralString, ...], ...]] = (
    # 1: symbols, trades, candles.
    (
        """CREATE TABLE symbols (
            name text NOT NULL PRIMARY KEY,
            price_decimals integer NOT NULL,
            amount_decimals integer NOT NULL
        )""",
        """CREATE TABLE trades (
            symbol text NOT NULL,
            id text NOT NULL,
            ts bigint NOT NULL,
            price bigint NOT NULL,
            amount bigint NOT NULL,
            side text NOT NULL CHECK (side IN ('Buy', 'Sell')),
            PRIMARY KEY (symbol, id)
        )""",
        # (symbol, ts) with id appended, as SQLite's index has it implicitly: trade_keys_since
        # is then an index-only scan, and recent_trades reads (ts, id) order without a sort.
        "CREATE INDEX trades_by_time ON trades (symbol, ts, id)",
        """CREATE TABLE candles (
            symbol text NOT NULL,
            interval text NOT NULL,
            open_time bigint NOT NULL,
            open bigint NOT NULL,
            high bigint NOT NULL,
            low bigint NOT NULL,
            close bigint NOT NULL,
            volume numeric NOT NULL,
            quote_volume numeric NOT NULL,
            trades bigint NOT NULL CHECK (trades > 0),
            first_ts bigint NOT NULL,
            first_id text NOT NULL,
            last_ts bigint NOT NULL,
            last_id text NOT NULL,
            PRIMARY KEY (symbol, interval, open_time)
        )""",
    ),
    # 2: trade numbers (Trade.seq), per symbol. Trades stored before are numbered in (ts, id)
    # order, which is the order they were accepted in except for late ones.
    (
        "ALTER TABLE trades ADD COLUMN seq bigint",
        """UPDATE trades SET seq = numbered.n FROM (
            SELECT symbol, id, row_number() OVER (PARTITION BY symbol ORDER BY ts, id) AS n
            FROM trades
        ) AS numbered
        WHERE trades.symbol = numbered.symbol AND trades.id = numbered.id""",
        "ALTER TABLE trades ALTER COLUMN seq SET NOT NULL",
        "CREATE UNIQUE INDEX trades_by_seq ON trades (symbol, seq)",
    ),
    # 3: taker buy volumes per candle (numeric, as the other volumes), recomputed from the
    # stored trades; the defaults only fill the rows while the columns are added.
    (
        """ALTER TABLE candles
            ADD COLUMN buy_volume numeric NOT NULL DEFAULT 0,
            ADD COLUMN buy_quote_volume numeric NOT NULL DEFAULT 0""",
        *(_recompute_buy_volumes(name, ms) for name, ms in _V2_INTERVALS),
        """ALTER TABLE candles
            ALTER COLUMN buy_volume DROP DEFAULT,
            ALTER COLUMN buy_quote_volume DROP DEFAULT""",
    ),
)

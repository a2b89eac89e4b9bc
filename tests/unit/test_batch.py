"""The batch aggregator builds exactly the candles the streaming candle book builds."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memetrade.domain.batch import aggregate
from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import Candle, CandleRules
from memetrade.domain.intervals import INTERVALS, Interval
from memetrade.domain.trades import Side, Trade

HOUR = 3_600_000
# Two minutes before an hour boundary, so spans cross every interval's boundary.
T0 = (1_700_000_000_000 // HOUR + 1) * HOUR - 120_000
SPAN_MS = 2 * HOUR
# Every generated trade is accepted, however late, and nothing leaves memory.
RULES = CandleRules(max_trade_age_ms=SPAN_MS + 1000, max_trade_ahead_ms=0, history_limit=10_000)
MAX_UNITS = 2**62 - 1

# Mostly buys, so that buy sums pass 2**63 where total sums do.
SIDES = (Side.BUY, Side.BUY, Side.SELL)

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def trade_sets(draw: st.DrawFn, max_units: int = MAX_UNITS) -> list[Trade]:
    """Unique ids; timestamps clustered (many share a millisecond or second) or spread."""
    n = draw(st.integers(1, 60))
    spread = draw(st.sampled_from([50, 5_000, 400_000, SPAN_MS]))
    ids = draw(
        st.lists(
            st.text("0123456789abcdef", min_size=1, max_size=6), min_size=n, max_size=n, unique=True
        )
    )
    units = st.one_of(st.integers(1, 1000), st.integers(1, max_units))
    return [
        Trade(
            trade_id,
            "MEME",
            draw(units),
            draw(units),
            draw(st.sampled_from(Side)),
            T0 + draw(st.integers(0, spread)),
        )
        for trade_id in ids
    ]


def streaming(trades: list[Trade], order: list[Trade], interval: Interval) -> list[Candle]:
    book = CandleBook("MEME", RULES)
    now = max(t.ts for t in trades)
    for trade in order:
        assert book.apply(trade, now)
    first = min(t.ts for t in trades)
    candles = book.candles(interval, first - first % interval.ms, book.open_time(interval))
    return [c for c in candles if c.trades > 0]


def batch(trades: list[Trade], interval: Interval) -> list[Candle]:
    ordered = sorted(trades, key=lambda t: (t.ts, t.id))
    return aggregate(
        interval.ms,
        np.array([t.ts for t in ordered], dtype=np.int64),
        np.array([t.price for t in ordered], dtype=np.int64),
        np.array([t.amount for t in ordered], dtype=np.int64),
        np.array([t.side is Side.BUY for t in ordered], dtype=np.bool_),
        [t.id for t in ordered],
    )


@SETTINGS
@given(trades=trade_sets(), data=st.data())
def test_batch_candles_equal_streaming_candles_at_every_interval(
    trades: list[Trade], data: st.DataObject
) -> None:
    # Any arrival order for the book (late trades included); sorted input for the batch path.
    order = data.draw(st.permutations(trades))
    for interval in INTERVALS:
        assert batch(trades, interval) == streaming(trades, order, interval)


@SETTINGS
@given(trades=trade_sets(max_units=10**7))
def test_batch_candles_equal_streaming_candles_on_the_int64_fast_path(
    trades: list[Trade],
) -> None:
    for interval in INTERVALS:
        assert batch(trades, interval) == streaming(trades, trades, interval)


def test_quote_volume_sums_past_int64_exactly() -> None:
    # Products that each fit in int64 but whose sum does not (a busy PEPE hour), and products
    # that do not fit at all: both must be the exact Python-int sums, the taker buy part too.
    for price, amount in ((1_300_000, 4 * 10**13), (2**61 + 12345, 2**61 + 678)):
        n = 1000
        trades = [
            Trade(f"{i:05d}", "MEME", price + i, amount - i, SIDES[i % 3], T0 + i) for i in range(n)
        ]
        buys = [t for t in trades if t.side is Side.BUY]
        (candle,) = batch(trades, INTERVALS[-1])
        assert candle.quote_volume == sum(t.price * t.amount for t in trades)
        assert candle.volume == sum(t.amount for t in trades)
        assert candle.buy_quote_volume == sum(t.price * t.amount for t in buys)
        assert candle.buy_volume == sum(t.amount for t in buys)
        assert candle.buy_quote_volume > 2**63


def test_volumes_of_sells_only_have_no_taker_buy_part() -> None:
    trades = [Trade(f"{i}", "MEME", 10 + i, 3, Side.SELL, T0 + i * 500) for i in range(4)]
    for candle in batch(trades, INTERVALS[0]):
        assert candle.volume > 0
        assert (candle.buy_volume, candle.buy_quote_volume) == (0, 0)


def test_no_trades_give_no_candles() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert aggregate(60_000, empty, empty, empty, np.zeros(0, dtype=np.bool_), []) == []


def test_columns_of_different_lengths_are_refused() -> None:
    one = np.ones(1, dtype=np.int64)
    buy = np.ones(1, dtype=np.bool_)
    with pytest.raises(ValueError, match="same length"):
        aggregate(60_000, one, one, np.ones(2, dtype=np.int64), buy, ["a"])
    with pytest.raises(ValueError, match="same length"):
        aggregate(60_000, one, one, one, np.ones(2, dtype=np.bool_), ["a"])

"""Merging stored candles into Binance/UDF intervals (domain/resample.py)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import CandleRules
from memetrade.domain.errors import UnknownInterval
from memetrade.domain.intervals import parse_interval
from memetrade.domain.resample import BINANCE_INTERVALS, bucket, merge_candles
from memetrade.domain.trades import Side, Trade

HOUR = 3_600_000
T0 = 1_700_006_400_000  # a whole day (UTC)
RULES = CandleRules(max_trade_age_ms=10 * 86_400_000, history_limit=100_000)


def test_every_binance_interval_has_the_coarsest_base_that_tiles_it() -> None:
    bases = {name: bucket(name).base.name for name in BINANCE_INTERVALS}
    assert bases == {
        "1s": "1s", "1m": "1m", "3m": "1m", "5m": "5m", "15m": "15m", "30m": "15m",
        "1h": "1h", "2h": "1h", "4h": "1h", "6h": "1h", "8h": "1h", "12h": "1h", "1d": "1h",
    }  # fmt: skip
    assert bucket("1m").stored
    assert not bucket("3m").stored
    # A time zone moves the windows; +05:45 needs quarter hours to tile an hour.
    shifted = bucket("1h", (5 * 60 + 45) * 60_000)
    assert (shifted.base.name, shifted.offset_ms) == ("15m", 45 * 60_000)
    assert shifted.open_time(T0) == T0 - 45 * 60_000  # 05:45 local: the hour began at 05:00
    assert bucket("1d", 8 * HOUR).open_time(T0) == T0 - 8 * HOUR


@pytest.mark.parametrize("name", ["7", "0m", "1w", "m", "01m", "1000d", "1x"])
def test_unknown_or_untileable_intervals_are_refused(name: str) -> None:
    with pytest.raises(UnknownInterval):
        bucket(name)
    with pytest.raises(UnknownInterval):
        bucket("1h", 7 * 60_000 + 500)


trades_st = st.lists(
    st.tuples(st.integers(0, 30 * HOUR - 1), st.integers(1, 1000), st.integers(1, 50)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(trades_st, st.sampled_from(["2h", "4h", "6h", "12h", "1d"]))
def test_merged_minutes_equal_merged_hours_equal_the_trades(
    raw: list[tuple[int, int, int]], name: str
) -> None:
    book = CandleBook("PEPE", RULES)
    trades = [
        Trade(f"t{i:03d}", "PEPE", price, lots, Side.BUY, T0 + offset)
        for i, (offset, price, lots) in enumerate(raw)
    ]
    end = T0 + 30 * HOUR
    for trade in sorted(trades, key=lambda t: t.ts):
        book.apply(trade, end)
    book.advance(end)
    target = bucket(name)
    minute, hour = parse_interval("1m"), parse_interval("1h")
    first = min(t.ts for t in trades)
    by_minutes = merge_candles(
        book.candles(minute, first - first % minute.ms, end - end % minute.ms), target
    )
    by_hours = merge_candles(
        book.candles(hour, first - first % hour.ms, end - end % hour.ms), target
    )
    assert by_minutes == by_hours
    for candle in by_hours:
        inside = [t for t in trades if candle.open_time <= t.ts < candle.open_time + target.ms]
        assert candle.trades == len(inside)
        assert candle.volume == sum(t.amount for t in inside)
        if inside:
            ordered = sorted(inside, key=lambda t: (t.ts, t.id))
            assert (candle.open, candle.close) == (ordered[0].price, ordered[-1].price)
            assert candle.high == max(t.price for t in inside)
            assert candle.low == min(t.price for t in inside)

"""The rolling 24h ticker against a naive recomputation over every minute it was given."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memetrade.domain.candles import Candle
from memetrade.domain.indicators import PRICE_SCALE
from memetrade.domain.ticker import WINDOW_MINUTES, RollingTicker, Signal, recommend

MINUTE = 60_000
T0 = 1_700_000_000_000 // MINUTE * MINUTE


def minute(i: int, close: int, volume: int, prev: int) -> Candle:
    t = T0 + i * MINUTE
    if volume == 0:
        return Candle(t, prev, prev, prev, prev, 0, 0, 0, None, None, 0, 0)
    return Candle(
        t,
        prev,
        max(prev, close) + 1,
        min(prev, close),
        close,
        volume,
        close * volume,
        volume,
        (t + 5, "a"),
        (t + 7, "b"),
        volume,
        close * volume,
    )


def naive(latest: dict[int, Candle]) -> tuple[int, ...]:
    newest = max(latest)
    window = [latest[t] for t in sorted(latest) if t > newest - WINDOW_MINUTES * MINUTE]
    traded = [c for c in window if c.trades]
    last = latest[newest].close
    high = max((c.high for c in traded), default=last)
    low = min((c.low for c in traded), default=last)
    return (
        window[0].open,
        high,
        low,
        last,
        sum(c.volume for c in window),
        sum(c.quote_volume for c in window),
        sum(c.trades for c in window),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 400), st.integers(1, 1000), st.integers(0, 3)),
        min_size=1,
        max_size=80,
    ),
    data=st.data(),
)
def test_rolling_figures_equal_a_naive_recomputation(
    steps: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    # Minutes advance by random jumps (up to several hours: minutes leave the window), the
    # open minute changes, and late states revise closed minutes still in the window.
    ticker = RollingTicker()
    latest: dict[int, Candle] = {}
    i, prev = 0, 500
    for jump, close, volume in steps:
        for gap in range(1, jump if jump < 3 else 0):
            latest[T0 + (i + gap) * MINUTE] = c = minute(i + gap, 0, 0, prev)
            ticker.apply(c)
        i += jump
        c = minute(i, close, volume, prev)
        latest[c.open_time] = c
        ticker.apply(c)
        prev = c.close
        if i > 2 and data.draw(st.booleans()):
            j = data.draw(st.integers(max(0, i - 30), i - 1))
            late = minute(j, data.draw(st.integers(1, 1000)), 2, 400)
            if late.open_time > max(latest) - WINDOW_MINUTES * MINUTE:
                latest[late.open_time] = late
                ticker.apply(late)
        stats = ticker.stats()
        assert stats is not None
        expected = naive(latest)
        assert (
            stats.open,
            stats.high,
            stats.low,
            stats.price,
            stats.volume,
            stats.quote_volume,
            stats.trades,
        ) == expected
        assert stats.change == stats.price - stats.open


def test_the_window_forgets_a_minute_after_24_hours() -> None:
    ticker = RollingTicker()
    ticker.apply(minute(0, 900, 5, 100))
    ticker.apply(minute(WINDOW_MINUTES - 1, 200, 1, 900))
    stats = ticker.stats()
    assert stats is not None
    assert (stats.open, stats.high, stats.volume, stats.trades) == (100, 901, 6, 6)
    ticker.apply(minute(WINDOW_MINUTES, 300, 1, 200))
    stats = ticker.stats()
    assert stats is not None
    # Minute 0 left: its volume, trade and high (901 is minute 1439's, opening at 900).
    assert (stats.volume, stats.trades, stats.high, stats.open) == (2, 2, 901, 900)
    assert stats.change_percent == -6667  # (300 - 900) / 900 = -66.67 %


def test_change_percent_is_exact_hundredths() -> None:
    ticker = RollingTicker()
    ticker.apply(minute(0, 300, 1, 300))
    ticker.apply(minute(1, 400, 1, 300))
    stats = ticker.stats()
    assert stats is not None
    assert (stats.open, stats.price, stats.change, stats.change_percent) == (300, 400, 100, 3333)


def test_recommendation_compares_the_price_with_the_sma() -> None:
    assert recommend(100, None) is Signal.NEUTRAL
    assert recommend(100, 99 * PRICE_SCALE + 9999) is Signal.BUY
    assert recommend(100, 100 * PRICE_SCALE + 1) is Signal.SELL
    assert recommend(100, 100 * PRICE_SCALE) is Signal.NEUTRAL

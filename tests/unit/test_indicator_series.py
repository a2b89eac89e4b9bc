"""Indicators and indicator series: the incremental series against a full recomputation and
against the exact naive reference (indicator_reference.py), whatever order, batching, gaps and
late revisions the candle updates come in; plus edge cases and parameter parsing."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from indicator_reference import reference

from memetrade.domain.candles import Candle
from memetrade.domain.errors import InvalidIndicator, UnknownIndicator
from memetrade.domain.indicator_params import MAX_PERIOD, make_indicator, parse_token
from memetrade.domain.indicator_series import IndicatorSeries, Point
from memetrade.domain.indicators import DAY_MS, Bollinger, Ema, Indicator, Macd, Rsi, Sma, Vwap
from memetrade.domain.intervals import INTERVALS

MINUTE = INTERVALS[1]
# Ten minutes before a UTC day boundary: series cross it, so the VWAP session restarts.
T0 = 1_700_000_000_000 // DAY_MS * DAY_MS + DAY_MS - 600_000
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def candle(t: int, close: int, volume: int, prev: int | None = None) -> Candle:
    """A candle with trades (``volume`` > 0), or empty: flat at ``prev`` with no volume."""
    if volume == 0:
        assert prev is not None
        return Candle(t, prev, prev, prev, prev, 0, 0, 0, None, None, 0, 0)
    low = min(close, prev or close)
    return Candle(
        t,
        prev or close,
        max(close, prev or close),
        low,
        close,
        volume,
        close * volume + volume // 2,
        2,
        (t, "a"),
        (t + 1, "b"),
        0,
        0,
    )


def build(bars: list[tuple[int, int]]) -> list[Candle]:
    out: list[Candle] = []
    for i, (close, volume) in enumerate(bars):
        prev = out[-1].close if out else None
        out.append(
            candle(T0 + i * MINUTE.ms, close, volume if prev is not None else volume or 1, prev)
        )
    return out


indicators = st.one_of(
    st.builds(Sma, st.integers(1, 8)),
    st.builds(Ema, st.integers(1, 8)),
    st.builds(Rsi, st.integers(1, 8)),
    st.builds(Bollinger, st.integers(1, 8), st.sampled_from([Decimal(2), Decimal("1.5")])),
    st.integers(1, 5).flatmap(
        lambda f: st.builds(Macd, st.just(f), st.integers(f + 1, 9), st.integers(1, 4))
    ),
    st.just(Vwap()),
)
# Small prices make ties and equal closes (flat runs, RSI without losses) common.
bar_lists = st.lists(
    st.tuples(st.integers(1, 60), st.integers(0, 5) | st.just(0)), min_size=1, max_size=45
)


def fresh(ind: tuple[Indicator, ...], candles: list[Candle], open_last: bool) -> list[Point]:
    series = IndicatorSeries(MINUTE, ind)
    series.extend(candles, candles[-1].open_time if open_last else -1)
    return series.points()


@SETTINGS
@given(bars=bar_lists, chosen=st.lists(indicators, min_size=1, max_size=3))
def test_every_indicator_equals_the_exact_reference(
    bars: list[tuple[int, int]], chosen: list[Indicator]
) -> None:
    candles = build(bars)
    points = fresh(tuple(chosen), candles, open_last=False)
    for k, indicator in enumerate(chosen):
        assert [p.values[k] for p in points] == reference(indicator, candles), indicator


@SETTINGS
@given(bars=bar_lists, chosen=st.lists(indicators, min_size=1, max_size=3), data=st.data())
def test_incremental_updates_equal_a_full_recomputation_and_every_change_is_reported(
    bars: list[tuple[int, int]], chosen: list[Indicator], data: st.DataObject
) -> None:
    # Updates as the candle book sends them: provisional states of the open candle, final
    # states, late revisions of closed candles (a wrong state first, the right one later,
    # re-sending the empty candles after it, which are flat at its close), empty candles
    # skipped (the series fills the gap), all in random batches.
    final = build(bars)
    ind = tuple(chosen)
    series = IndicatorSeries(MINUTE, ind)
    seen: dict[int, Point] = {}  # what a client applying every reported point holds
    ops: list[tuple[Candle, bool]] = []
    wrong: set[int] = set()

    def resend_from(j: int, upto: int) -> None:
        ops.append((final[j], True))
        wrong.discard(j)
        k = j + 1
        while k <= upto and final[k].trades == 0:
            ops.append((final[k], k < len(final) - 1))
            k += 1

    for i, c in enumerate(final):
        if c.trades:
            provisional = data.draw(st.lists(st.integers(1, 60), max_size=2))
            ops.extend((candle(c.open_time, close, 1, c.open), False) for close in provisional)
        elif 0 < i < len(final) - 1 and data.draw(st.booleans()):
            continue  # an empty candle nobody announced: a gap
        ops.append((c, i < len(final) - 1))
        if i and data.draw(st.integers(0, 3)) == 0:
            j = data.draw(st.integers(0, i - 1))
            if final[j].trades:
                ops.append(
                    (
                        candle(final[j].open_time, data.draw(st.integers(1, 60)), 3, final[j].open),
                        True,
                    )
                )
                wrong.add(j)
        for j in sorted(wrong):
            if data.draw(st.booleans()):
                resend_from(j, i)
    for j in sorted(wrong):
        resend_from(j, len(final) - 1)

    while ops:
        size = data.draw(st.integers(1, 4))
        batch, ops = ops[:size], ops[size:]
        for point in series.update(batch):
            seen[point.candle.open_time] = point

    expected = fresh(ind, final, open_last=True)
    assert series.points() == expected
    assert [seen[p.candle.open_time] for p in expected] == expected


@SETTINGS
@given(
    bars=bar_lists, chosen=st.lists(indicators, min_size=1, max_size=3), capacity=st.integers(1, 12)
)
def test_a_bounded_window_keeps_the_values_of_an_unbounded_one(
    bars: list[tuple[int, int]], chosen: list[Indicator], capacity: int
) -> None:
    candles = build(bars)
    ind = tuple(chosen)
    lookback = max(i.lookback for i in ind)
    bounded = IndicatorSeries(MINUTE, ind, capacity=capacity + lookback + 1)
    for c in candles:
        bounded.update([(c, True)])
    # Revise the newest candles, as late trades may, within the window.
    if len(candles) > 1:
        revised = candles[-2]
        bumped = Candle(
            revised.open_time,
            revised.open,
            max(revised.high, 61),
            revised.low,
            61,
            revised.volume + 1,
            revised.quote_volume + 61,
            revised.trades + 1,
            revised.first,
            revised.last,
            revised.buy_volume,
            revised.buy_quote_volume,
        )
        candles[-2] = bumped
        bounded.update([(bumped, True)])
    full = fresh(ind, candles, open_last=False)
    kept = bounded.points()
    assert len(kept) <= capacity + lookback + 1 + max((capacity + lookback + 1) // 4, 16)
    assert kept == full[len(full) - len(kept) :]


# -- edge cases ----------------------------------------------------------------------------


def test_fewer_candles_than_the_period_give_no_values() -> None:
    candles = build([(10, 1)] * 4)
    points = fresh(
        (Sma(5), Ema(5), Rsi(4), Bollinger(5, Decimal(2)), Macd(2, 3, 3)), candles, open_last=True
    )
    assert all(value is None for p in points for value in p.values)
    assert [p.provisional for p in points] == [False, False, False, True]


def test_flat_prices_give_rsi_100_and_bands_on_the_average() -> None:
    candles = build([(42, 1)] * 30)
    last = fresh((Rsi(14), Bollinger(20, Decimal(2)), Sma(20), Ema(10)), candles, False)[-1]
    assert last.values == (100_00, (420_000, 420_000, 420_000), 420_000, 420_000)


def test_rsi_is_0_without_gains_and_100_without_losses() -> None:
    falling = build([(100 - i, 1) for i in range(20)])
    rising = build([(100 + i, 1) for i in range(20)])
    assert fresh((Rsi(14),), falling, False)[-1].values == (0,)
    assert fresh((Rsi(14),), rising, False)[-1].values == (100_00,)


def test_empty_candles_in_a_gap_are_flat_at_the_previous_close() -> None:
    series = IndicatorSeries(MINUTE, (Sma(3),))
    a = candle(T0, 10, 1)
    d = candle(T0 + 3 * MINUTE.ms, 40, 1, 10)
    changed = series.update([(a, True), (d, False)])
    assert [p.candle.close for p in changed] == [10, 10, 10, 40]
    assert [p.candle.volume for p in changed] == [1, 0, 0, 1]
    assert [p.values[0] for p in changed] == [None, None, 100_000, 200_000]


def test_a_late_trade_revising_a_closed_candle_republishes_the_values_after_it() -> None:
    candles = build([(10, 1), (20, 1), (30, 1), (40, 1), (50, 1)])
    series = IndicatorSeries(MINUTE, (Sma(2),))
    series.extend(candles, candles[-1].open_time)
    late = candle(candles[1].open_time, 24, 2, 10)  # the second candle now closes at 24
    changed = series.update([(late, True)])
    # The revised candle and the SMA-2 after it (which reads it); not the ones beyond.
    assert [(p.candle.open_time, p.values[0]) for p in changed] == [
        (candles[1].open_time, 170_000),
        (candles[2].open_time, 270_000),
    ]
    assert series.points()[2].values == (270_000,)


def test_vwap_restarts_at_the_utc_day_and_can_start_mid_session() -> None:
    candles = build([(10, 2), (20, 2)] * 10)  # crosses midnight after 10 minutes
    points = fresh((Vwap(),), candles, False)
    # Quote volume is close x volume + volume // 2 (see ``candle``): 21 and 41 per candle.
    assert points[9].values == (round((5 * 21 + 5 * 41) / 20 * 10_000),)
    assert points[10].values == (105_000,)  # the new day's first candle alone: 21 / 2
    seeded = IndicatorSeries(MINUTE, (Vwap(),), initial={0: Vwap.seeded(T0, 300, 10)})
    seeded.extend(candles[:1])
    assert seeded.points()[0].values == (267_500,)  # (300 + 21) / (10 + 2)


# -- parameters ------------------------------------------------------------------------------


def test_tokens_and_named_parameters_name_the_same_indicators() -> None:
    assert parse_token("sma20") == make_indicator("sma", {"period": "20"}) == Sma(20)
    assert parse_token("RSI") == Rsi(14)
    assert parse_token("bollinger20_2.50") == Bollinger(20, Decimal("2.5"))
    assert parse_token("bollinger20_2.50").key == "bollinger20_2.5"
    assert parse_token("bollinger20").key == "bollinger20"
    assert parse_token("macd").key == "macd"
    assert parse_token("macd5_35_5") == Macd(5, 35, 5)
    assert make_indicator("vwap", {}).key == "vwap"
    assert make_indicator("bollinger", {"k": "3"}).params == {"period": 20, "k": Decimal(3)}


@pytest.mark.parametrize(
    ("name", "params", "error"),
    [
        ("foo", {}, UnknownIndicator),
        ("sma", {"period": "0"}, InvalidIndicator),
        ("sma", {"period": "-3"}, InvalidIndicator),
        ("sma", {"period": str(MAX_PERIOD + 1)}, InvalidIndicator),
        ("sma", {"period": "99999999999999999999"}, InvalidIndicator),
        ("sma", {"period": "2.5"}, InvalidIndicator),
        ("sma", {"period": ""}, InvalidIndicator),
        ("ema", {"perod": "3"}, InvalidIndicator),
        ("vwap", {"period": "3"}, InvalidIndicator),
        ("bollinger", {"k": "0"}, InvalidIndicator),
        ("bollinger", {"k": "nan"}, InvalidIndicator),
        ("bollinger", {"k": "1.234"}, InvalidIndicator),
        ("bollinger", {"k": "11"}, InvalidIndicator),
        ("macd", {"fast": "26", "slow": "12"}, InvalidIndicator),
    ],
)
def test_bad_parameters_are_refused_with_a_reason(
    name: str, params: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        make_indicator(name, params)
    assert str(caught.value)


@pytest.mark.parametrize("token", ["", "sma20_3", "20sma", "sma-1", "macd1_2_3_4", "s m a"])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidIndicator):
        parse_token(token)

"""Our indicators against an independent, maintained implementation: the ``ta`` library
(pandas, float64), on a long generated series of PEPE-like closes (about 1.2 million ticks,
fat-tailed steps, flat stretches).

Where the definitions agree the values must agree within half a unit of our last rendered
digit (our rounding) plus float64 noise: SMA and Bollinger bands (population standard
deviation, as ``ta``) from their first value. ``ta`` seeds its EMAs (and so MACD) with the
first close and its RSI averages with the first change, where we seed with SMAs (Wilder,
TA-Lib, TradingView); the seed's weight decays geometrically, so recurrences are compared
from 20 x period candles on, which is also the warm-up our REST answers compute. ``ta``'s
VWAP is a rolling typical-price estimate, a different definition from ours (the session's
exact quote volume over volume), so VWAP is checked against the exact reference instead
(test_indicator_series.py).

``python tests/unit/test_indicators_reference.py`` prints the comparison figures.
"""

import random
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import BollingerBands

from memetrade.domain.candles import Candle
from memetrade.domain.indicator_series import IndicatorSeries
from memetrade.domain.indicators import Bollinger, Ema, Indicator, Macd, Rsi, Sma
from memetrade.domain.intervals import INTERVALS

CANDLES = 6000
# Half a unit of the last digit (10**-4 ticks; RSI 0.01) for rounding, and float64 noise.
PRICE_TOLERANCE = 0.5e-4 + 1e-5
RSI_TOLERANCE = 0.005 + 1e-6


def generated_closes(n: int = CANDLES, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    price, out = 1_234_000, []
    for _ in range(n):
        if rng.random() < 0.1:
            out.append(price)  # a flat stretch
            continue
        step = rng.gauss(0, 0.004) * (5 if rng.random() < 0.02 else 1)
        price = max(1, round(price * (1 + step)))
        out.append(price)
    return out


def ours(indicator: Indicator, closes: list[int]) -> list[tuple[float, ...] | None]:
    candles = [
        Candle(i * 60_000, c, c, c, c, 1, c, 1, (i, "a"), (i, "a"), 1, c)
        for i, c in enumerate(closes)
    ]
    series = IndicatorSeries(INTERVALS[1], (indicator,))
    series.extend(candles)
    scale = 100 if isinstance(indicator, Rsi) else 10_000
    out: list[tuple[float, ...] | None] = []
    for point in series.points():
        value = point.values[0]
        if value is None:
            out.append(None)
        else:
            values = value if isinstance(value, tuple) else (value,)
            out.append(tuple(v / scale for v in values))
    return out


def theirs(indicator: Indicator, close: "pd.Series[float]") -> list[tuple[float, ...]]:
    if isinstance(indicator, Sma):
        cols = [SMAIndicator(close, indicator.period).sma_indicator()]
    elif isinstance(indicator, Ema):
        cols = [EMAIndicator(close, indicator.period).ema_indicator()]
    elif isinstance(indicator, Rsi):
        cols = [RSIIndicator(close, indicator.period).rsi()]
    elif isinstance(indicator, Bollinger):
        bands = BollingerBands(close, indicator.period, float(indicator.k))
        cols = [bands.bollinger_hband(), bands.bollinger_mavg(), bands.bollinger_lband()]
    else:
        assert isinstance(indicator, Macd)
        macd = MACD(close, indicator.slow, indicator.fast, indicator.signal)
        cols = [macd.macd(), macd.macd_signal(), macd.macd_diff()]
    return list(zip(*(col.tolist() for col in cols), strict=True))


CASES: list[tuple[Indicator, int]] = [  # the indicator, and from which candle to compare
    (Sma(20), 19),
    (Sma(200), 199),
    (Bollinger(20, Decimal(2)), 19),
    (Bollinger(50, Decimal("2.5")), 49),
    (Ema(20), 20 * 20),
    (Ema(200), 20 * 200),
    (Rsi(14), 20 * 14),
    (Rsi(2), 20 * 2),
    (Macd(12, 26, 9), 20 * (26 + 9)),
]


def comparison() -> list[tuple[str, int, float, float]]:
    """Per case: key, points compared, largest difference, tolerance."""
    closes = generated_closes()
    close = pd.Series([float(c) for c in closes])
    rows = []
    for indicator, start in CASES:
        mine, ref = ours(indicator, closes), theirs(indicator, close)
        tolerance = RSI_TOLERANCE if isinstance(indicator, Rsi) else PRICE_TOLERANCE
        worst, compared = 0.0, 0
        for a, b in zip(mine[start:], ref[start:], strict=True):
            assert a is not None, indicator
            worst = max(worst, *(abs(x - y) for x, y in zip(a, b, strict=True)))
            compared += 1
        rows.append((indicator.key, compared, worst, tolerance))
    return rows


def test_indicators_agree_with_the_ta_library_on_a_long_series() -> None:
    for key, compared, worst, tolerance in comparison():
        assert compared > 1000, key
        assert worst <= tolerance, f"{key}: differs by {worst} (tolerance {tolerance})"


def test_values_exist_exactly_from_the_period_on() -> None:
    closes = generated_closes(300)
    assert [v is None for v in ours(Sma(20), closes)[:21]] == [True] * 19 + [False] * 2
    assert ours(Rsi(14), closes)[13] is None
    assert ours(Rsi(14), closes)[14] is not None
    macd = ours(Macd(12, 26, 9), closes)
    assert macd[26 + 9 - 3] is None
    assert macd[26 + 9 - 2] is not None


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    print(f"{'indicator':<16}{'points':>8}{'max |ours - ta|':>18}{'tolerance':>12}  (ticks; RSI)")
    for key, compared, worst, tolerance in comparison():
        print(f"{key:<16}{compared:>8}{worst:>18.3g}{tolerance:>12.3g}")

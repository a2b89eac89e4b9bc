"""Naive, exact reference indicators for the tests: each value recomputed from its definition
over the whole list of closes, in ``Fraction`` (or 80-digit ``Decimal`` for square roots),
then rounded half-to-even to the output scale. Deliberately nothing shared with the domain's
incremental code but the definitions (SMA-seeded EMA and Wilder RSI, population standard
deviation, VWAP per UTC day)."""

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

from memetrade.domain.candles import Candle
from memetrade.domain.indicators import (
    DAY_MS,
    Bollinger,
    Ema,
    Indicator,
    Macd,
    Rsi,
    Sma,
    Value,
    Vwap,
)

S = 10_000  # price outputs: 10**-4 ticks


def rnd(x: Fraction) -> int:
    return round(x)  # Fraction rounds half to even


def sma(closes: list[int], n: int) -> list[Value]:
    return [
        rnd(Fraction(sum(closes[i - n + 1 : i + 1]), n) * S) if i >= n - 1 else None
        for i in range(len(closes))
    ]


def ema_exact(xs: list[Fraction], n: int) -> list[Fraction | None]:
    out: list[Fraction | None] = []
    ema = Fraction(0)
    for i in range(len(xs)):
        if i < n - 1:
            out.append(None)
            continue
        ema = sum(xs[:n], Fraction(0)) / n if i == n - 1 else (2 * xs[i] + (n - 1) * ema) / (n + 1)
        out.append(ema)
    return out


def ema(closes: list[int], n: int) -> list[Value]:
    return [None if e is None else rnd(e * S) for e in ema_exact([Fraction(c) for c in closes], n)]


def rsi(closes: list[int], n: int) -> list[Value]:
    out: list[Value] = [None]
    gain = loss = Fraction(0)
    for i in range(1, len(closes)):
        change = closes[i] - closes[i - 1]
        up, down = max(change, 0), max(-change, 0)
        if i < n:
            out.append(None)
            continue
        if i == n:
            changes = [closes[j] - closes[j - 1] for j in range(1, n + 1)]
            gain = Fraction(sum(max(c, 0) for c in changes), n)
            loss = Fraction(sum(max(-c, 0) for c in changes), n)
        else:
            gain = ((n - 1) * gain + up) / n
            loss = ((n - 1) * loss + down) / n
        out.append(10_000 if loss == 0 else rnd(100 * gain / (gain + loss) * 100))
    return out


def bollinger(closes: list[int], n: int, k: Decimal) -> list[Value]:
    out: list[Value] = []
    for i in range(len(closes)):
        if i < n - 1:
            out.append(None)
            continue
        window = closes[i - n + 1 : i + 1]
        mean = Fraction(sum(window), n)
        var = sum(((c - mean) ** 2 for c in window), Fraction(0)) / n
        with localcontext() as ctx:
            ctx.prec = 80
            sd = (Decimal(var.numerator) / Decimal(var.denominator)).sqrt()
            m = Decimal(mean.numerator) / Decimal(mean.denominator)
            upper = ((m + k * sd) * S).quantize(Decimal(1), ROUND_HALF_EVEN)
            lower = ((m - k * sd) * S).quantize(Decimal(1), ROUND_HALF_EVEN)
        out.append((int(upper), rnd(mean * S), int(lower)))
    return out


def macd(closes: list[int], fast: int, slow: int, signal: int) -> list[Value]:
    xs = [Fraction(c) for c in closes]
    f, s = ema_exact(xs, fast), ema_exact(xs, slow)
    lines = [None if a is None or b is None else a - b for a, b in zip(f, s, strict=True)]
    start = slow - 1
    defined = [x for x in lines[start:] if x is not None]
    sig = ema_exact(defined, signal)
    out: list[Value] = [None] * start
    for line, g in zip(lines[start:], sig, strict=True):
        assert line is not None
        out.append(None if g is None else (rnd(line * S), rnd(g * S), rnd((line - g) * S)))
    return out[: len(closes)]


def vwap(candles: list[Candle]) -> list[Value]:
    out: list[Value] = []
    day, quote, volume = -1, 0, 0
    for c in candles:
        if c.open_time // DAY_MS != day:
            day, quote, volume = c.open_time // DAY_MS, 0, 0
        quote += c.quote_volume
        volume += c.volume
        out.append(rnd(Fraction(quote, volume) * S) if volume else None)
    return out


def reference(indicator: Indicator, candles: list[Candle]) -> list[Value]:
    closes = [c.close for c in candles]
    if isinstance(indicator, Sma):
        return sma(closes, indicator.period)
    if isinstance(indicator, Ema):
        return ema(closes, indicator.period)
    if isinstance(indicator, Rsi):
        return rsi(closes, indicator.period)
    if isinstance(indicator, Bollinger):
        return bollinger(closes, indicator.period, indicator.k)
    if isinstance(indicator, Macd):
        return macd(closes, indicator.fast, indicator.slow, indicator.signal)
    assert isinstance(indicator, Vwap)
    return vwap(candles)

"""Technical indicators over candle closes, one O(1) step per candle.

Each indicator is a frozen value (its parameters) with two pure functions: ``initial()`` gives
the state before the first candle, and ``step(state, candles, i)`` gives the state after candle
``i`` and the indicator's value there. States are small immutable tuples, so a series can keep
the state after every candle and recompute from any index when a late trade revises a candle
(``domain/indicator_series.py``). ``step`` may read the ``lookback`` candles before ``i``.

Numbers, and why:

* Inputs are exact integer ticks (closes) and lots (volumes). Where it is cheap the arithmetic
  stays exact: SMA and Bollinger bands keep integer sliding sums (and the sum of squares), and
  their square root is an exact ``math.isqrt``; VWAP keeps integer sums of quote volume and
  volume. Those values are rounded once, at the output.
* The recurrences (EMA, RSI, MACD) would grow exact fractions without bound, so they run in
  ``Decimal`` with 34 significant digits (IEEE decimal128), ties to even, through an explicit
  context (never the thread's). Each step is written as ``(a*x + b*prev) / c`` so that the
  division is the only rounded operation. No binary float is involved anywhere.
* Outputs are integers at a fixed scale, rounded to nearest (ties to even): price-like values
  (SMA, EMA, bands, MACD lines, VWAP) in units of ``10**-PRICE_EXTRA_DIGITS`` ticks, so they
  render with the symbol's tick decimals + 4; RSI in hundredths (two decimals).
* Seeds follow Wilder and TA-Lib: the first EMA is the SMA of the first ``period`` closes, the
  first RSI averages the first ``period`` changes. A flat market (no losses) has RSI 100, as
  TradingView and the ``ta`` library have it.
"""

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from enum import Enum
from typing import Any, ClassVar, Protocol

from memetrade.domain.candles import Candle

__all__ = [
    "DAY_MS",
    "PRICE_EXTRA_DIGITS",
    "PRICE_SCALE",
    "RSI_DECIMALS",
    "Bollinger",
    "Ema",
    "Indicator",
    "Macd",
    "Rsi",
    "Sma",
    "Unit",
    "Value",
    "Vwap",
    "div_round",
]

PRICE_EXTRA_DIGITS = 4
PRICE_SCALE = 10**PRICE_EXTRA_DIGITS
RSI_DECIMALS = 2
DAY_MS = 86_400_000

_CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0)

# One output line: an integer at the indicator's scale (see ``Unit``), or None while the
# indicator is still warming up. Multi-line indicators give a tuple, all lines or None.
Value = int | tuple[int, ...] | None


class Unit(Enum):
    """How an output integer reads: PRICE in ``10**-4`` ticks, PERCENT in hundredths."""

    PRICE = "price"
    PERCENT = "percent"


def div_round(a: int, b: int) -> int:
    """``a / b`` (``b > 0``) rounded to the nearest integer, ties to even."""
    q, r = divmod(a, b)
    twice = 2 * r
    if twice > b or (twice == b and q % 2):
        q += 1
    return q


def _units(value: Decimal, scale: int) -> int:
    """A ``Decimal`` times ``scale``, rounded to an integer (ties to even)."""
    return int(_CTX.multiply(value, scale).to_integral_value(ROUND_HALF_EVEN, _CTX))


class Indicator(Protocol):
    """What every indicator offers. ``key`` names it with its parameters (``sma20``)."""

    name: ClassVar[str]
    lines: ClassVar[tuple[str, ...]]
    unit: ClassVar[Unit]

    @property
    def key(self) -> str: ...

    @property
    def params(self) -> dict[str, int | Decimal]: ...

    @property
    def lookback(self) -> int:
        """How many candles before ``i`` a ``step`` at ``i`` reads."""
        ...

    @property
    def warmup(self) -> int:
        """Candles to compute before a value for it to be right: exactly, for windowed
        indicators; to far below the output precision, for recurrences (20 x period: the
        seed's weight has decayed by e**-20 or more)."""
        ...

    def initial(self) -> Any: ...

    def step(self, state: Any, candles: list[Candle], i: int) -> tuple[Any, Value]: ...


# Recurrences are computed over this many periods before the first value shown.
CONVERGENCE_PERIODS = 20


@dataclass(frozen=True, slots=True)
class Sma:
    """Simple moving average of the last ``period`` closes. State: (count, sum)."""

    period: int
    name: ClassVar[str] = "sma"
    lines: ClassVar[tuple[str, ...]] = ("value",)
    unit: ClassVar[Unit] = Unit.PRICE

    @property
    def key(self) -> str:
        return f"sma{self.period}"

    @property
    def params(self) -> dict[str, int | Decimal]:
        return {"period": self.period}

    @property
    def lookback(self) -> int:
        return self.period

    @property
    def warmup(self) -> int:
        return self.period - 1

    def initial(self) -> tuple[int, int]:
        return 0, 0

    def step(
        self, state: tuple[int, int], candles: list[Candle], i: int
    ) -> tuple[tuple[int, int], Value]:
        count, total = state
        n = self.period
        total += candles[i].close
        if count == n:
            total -= candles[i - n].close
        else:
            count += 1
        return (count, total), div_round(total * PRICE_SCALE, n) if count == n else None


def _ema_step(n: int, count: int, acc: Decimal, x: Decimal | int) -> tuple[int, Decimal, bool]:
    """One step of an SMA-seeded EMA: ``acc`` sums the first ``n`` inputs, then holds the EMA
    ``(2x + (n-1) prev) / (n+1)``. Return (count, acc, whether acc is an EMA now)."""
    if count < n - 1:
        return count + 1, _CTX.add(acc, x), False
    if count == n - 1:
        return n, _CTX.divide(_CTX.add(acc, x), n), True
    return n, _CTX.divide(_CTX.add(_CTX.multiply(2, x), _CTX.multiply(n - 1, acc)), n + 1), True


@dataclass(frozen=True, slots=True)
class Ema:
    """Exponential moving average, ``alpha = 2 / (period + 1)``, seeded with the SMA of the
    first ``period`` closes. State: (count, sum-then-EMA)."""

    period: int
    name: ClassVar[str] = "ema"
    lines: ClassVar[tuple[str, ...]] = ("value",)
    unit: ClassVar[Unit] = Unit.PRICE

    @property
    def key(self) -> str:
        return f"ema{self.period}"

    @property
    def params(self) -> dict[str, int | Decimal]:
        return {"period": self.period}

    @property
    def lookback(self) -> int:
        return 0

    @property
    def warmup(self) -> int:
        return CONVERGENCE_PERIODS * self.period

    def initial(self) -> tuple[int, Decimal]:
        return 0, _ZERO

    def step(
        self, state: tuple[int, Decimal], candles: list[Candle], i: int
    ) -> tuple[tuple[int, Decimal], Value]:
        count, acc, ready = _ema_step(self.period, state[0], state[1], candles[i].close)
        return (count, acc), _units(acc, PRICE_SCALE) if ready else None


@dataclass(frozen=True, slots=True)
class Rsi:
    """Wilder's relative strength index. The first value (at the ``period``-th change) uses the
    plain averages of the gains and losses; then ``avg = ((period-1) avg + x) / period``.
    RSI = 100 avg_gain / (avg_gain + avg_loss), and 100 when there is no loss (flat included).
    State: (changes seen, gain sum-then-average, loss sum-then-average)."""

    period: int
    name: ClassVar[str] = "rsi"
    lines: ClassVar[tuple[str, ...]] = ("value",)
    unit: ClassVar[Unit] = Unit.PERCENT

    @property
    def key(self) -> str:
        return f"rsi{self.period}"

    @property
    def params(self) -> dict[str, int | Decimal]:
        return {"period": self.period}

    @property
    def lookback(self) -> int:
        return 1

    @property
    def warmup(self) -> int:
        return CONVERGENCE_PERIODS * self.period

    def initial(self) -> tuple[int, Decimal, Decimal]:
        return -1, _ZERO, _ZERO

    def step(
        self, state: tuple[int, Decimal, Decimal], candles: list[Candle], i: int
    ) -> tuple[tuple[int, Decimal, Decimal], Value]:
        count, gain, loss = state
        if count < 0:  # the first candle: no change yet
            return (0, gain, loss), None
        change = candles[i].close - candles[i - 1].close
        up, down = (change, 0) if change > 0 else (0, -change)
        n = self.period
        if count < n - 1:
            return (count + 1, _CTX.add(gain, up), _CTX.add(loss, down)), None
        if count == n - 1:
            gain = _CTX.divide(_CTX.add(gain, up), n)
            loss = _CTX.divide(_CTX.add(loss, down), n)
        else:
            gain = _CTX.divide(_CTX.add(_CTX.multiply(n - 1, gain), up), n)
            loss = _CTX.divide(_CTX.add(_CTX.multiply(n - 1, loss), down), n)
        if not loss:
            return (n, gain, loss), 100 * 10**RSI_DECIMALS
        rsi = _CTX.divide(_CTX.multiply(gain, 100), _CTX.add(gain, loss))
        return (n, gain, loss), _units(rsi, 10**RSI_DECIMALS)


def _sqrt_round(a: int, x: int, m: int, sign: int) -> int:
    """``(a + sign * sqrt(x)) / m`` rounded to nearest (ties to even), exactly (``m > 0``)."""
    r = math.isqrt(x)
    if r * r == x:  # rational: an exact division, where ties can occur
        return div_round(a + sign * r, m)
    # Irrational, so never a tie: floor((a ± y)/m + 1/2) = floor((2a ± 2y + m) / (2m)), and
    # floor(t / k) == floor(floor(t) / k) for an integer k > 0; floor(2y) = isqrt(4x) and
    # floor(-2y) = -ceil(2y) = -(isqrt(4x) + 1) as 4x is no square either.
    r2 = math.isqrt(4 * x)
    if sign > 0:
        return (2 * a + r2 + m) // (2 * m)
    return (2 * a - r2 - 1 + m) // (2 * m)


@dataclass(frozen=True, slots=True)
class Bollinger:
    """Bollinger bands: middle = SMA(period), upper/lower = middle ± k x the population
    standard deviation of the same closes (as ``ta`` and TradingView). Exact: with sliding sums
    S and Q of the closes and their squares, upper = (S + k sqrt(nQ - S^2)) / n, rounded once.
    State: (count, S, Q)."""

    period: int
    k: Decimal
    name: ClassVar[str] = "bollinger"
    lines: ClassVar[tuple[str, ...]] = ("upper", "middle", "lower")
    unit: ClassVar[Unit] = Unit.PRICE

    @property
    def key(self) -> str:
        return f"bollinger{self.period}" + ("" if self.k == 2 else f"_{self.k}")

    @property
    def params(self) -> dict[str, int | Decimal]:
        return {"period": self.period, "k": self.k}

    @property
    def lookback(self) -> int:
        return self.period

    @property
    def warmup(self) -> int:
        return self.period - 1

    def initial(self) -> tuple[int, int, int]:
        return 0, 0, 0

    def step(
        self, state: tuple[int, int, int], candles: list[Candle], i: int
    ) -> tuple[tuple[int, int, int], Value]:
        count, s, q = state
        n = self.period
        close = candles[i].close
        s += close
        q += close * close
        if count == n:
            old = candles[i - n].close
            s -= old
            q -= old * old
        else:
            count += 1
        if count < n:
            return (count, s, q), None
        kn, kd = self.k.as_integer_ratio()
        a = s * PRICE_SCALE * kd
        x = (n * q - s * s) * PRICE_SCALE * PRICE_SCALE * kn * kn
        m = n * kd
        upper, lower = _sqrt_round(a, x, m, 1), _sqrt_round(a, x, m, -1)
        return (count, s, q), (upper, div_round(s * PRICE_SCALE, n), lower)


@dataclass(frozen=True, slots=True)
class Macd:
    """MACD = EMA(fast) - EMA(slow) of the closes; signal = EMA(signal) of MACD; histogram =
    MACD - signal. Each EMA is SMA-seeded (see ``Ema``); a point has all three lines, from the
    candle where the signal line is seeded. State: the three EMA states."""

    fast: int
    slow: int
    signal: int
    name: ClassVar[str] = "macd"
    lines: ClassVar[tuple[str, ...]] = ("macd", "signal", "histogram")
    unit: ClassVar[Unit] = Unit.PRICE

    @property
    def key(self) -> str:
        if (self.fast, self.slow, self.signal) == (12, 26, 9):
            return "macd"
        return f"macd{self.fast}_{self.slow}_{self.signal}"

    @property
    def params(self) -> dict[str, int | Decimal]:
        return {"fast": self.fast, "slow": self.slow, "signal": self.signal}

    @property
    def lookback(self) -> int:
        return 0

    @property
    def warmup(self) -> int:
        return CONVERGENCE_PERIODS * (self.slow + self.signal)

    def initial(self) -> tuple[int, Decimal, int, Decimal, int, Decimal]:
        return 0, _ZERO, 0, _ZERO, 0, _ZERO

    def step(
        self, state: tuple[int, Decimal, int, Decimal, int, Decimal], candles: list[Candle], i: int
    ) -> tuple[tuple[int, Decimal, int, Decimal, int, Decimal], Value]:
        fc, fa, sc, sa, gc, ga = state
        close = candles[i].close
        fc, fa, fast_ready = _ema_step(self.fast, fc, fa, close)
        sc, sa, slow_ready = _ema_step(self.slow, sc, sa, close)
        if not (fast_ready and slow_ready):
            return (fc, fa, sc, sa, gc, ga), None
        macd = _CTX.subtract(fa, sa)
        gc, ga, signal_ready = _ema_step(self.signal, gc, ga, macd)
        if not signal_ready:
            return (fc, fa, sc, sa, gc, ga), None
        m, g = _units(macd, PRICE_SCALE), _units(ga, PRICE_SCALE)
        # The histogram from the unrounded lines, rounded once like the others.
        h = _units(_CTX.subtract(macd, ga), PRICE_SCALE)
        return (fc, fa, sc, sa, gc, ga), (m, g, h)


@dataclass(frozen=True, slots=True)
class Vwap:
    """Volume-weighted average price of the session: the UTC day (the session restarts at
    00:00 UTC). Exact: (sum of quote volume) / (sum of volume) over the session's candles up
    to this one, from the candles' own quote volume (sum of price x amount of every trade),
    not a typical-price estimate. None while the session has no volume yet. State: (day,
    quote sum, volume sum); ``seeded`` starts it mid-session from the totals before."""

    name: ClassVar[str] = "vwap"
    lines: ClassVar[tuple[str, ...]] = ("value",)
    unit: ClassVar[Unit] = Unit.PRICE

    @property
    def key(self) -> str:
        return "vwap"

    @property
    def params(self) -> dict[str, int | Decimal]:
        return {}

    @property
    def lookback(self) -> int:
        return 0

    @property
    def warmup(self) -> int:
        return 0

    def initial(self) -> tuple[int, int, int]:
        return -1, 0, 0

    @staticmethod
    def seeded(open_time: int, quote: int, volume: int) -> tuple[int, int, int]:
        """The state before the candle opening at ``open_time``, given the session's totals
        before it."""
        return open_time // DAY_MS, quote, volume

    def step(
        self, state: tuple[int, int, int], candles: list[Candle], i: int
    ) -> tuple[tuple[int, int, int], Value]:
        day, quote, volume = state
        candle = candles[i]
        today = candle.open_time // DAY_MS
        if today != day:
            day, quote, volume = today, 0, 0
        quote += candle.quote_volume
        volume += candle.volume
        return (day, quote, volume), div_round(quote * PRICE_SCALE, volume) if volume else None

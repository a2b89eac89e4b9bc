"""A mock market for one symbol: a seeded, stateful model that produces realistic trades.

Pure: no I/O, no clock, no asyncio. Time comes in as the windows the caller asks about, and all
randomness comes from one ``random.Random`` seeded from ``(seed, symbol)``, so the same calls on
a model built with the same seed return the same trades, in any process.

The stylised facts of a meme-coin tape, and how each is made:

* **Log-price random walk with fat tails.** Between two trades ``dt`` seconds apart the mid moves
  by ``sigma * sqrt(dt) * z``, ``z`` a unit-variance Student-t (``tail_dof``, default 4).
* **Volatility clustering.** ``log sigma`` is an Ornstein-Uhlenbeck process (stochastic
  volatility, simulated exactly for any ``dt``): calm and frantic spells last about
  ``vol_halflife_s``. Its mean is set so that the *average variance* matches ``daily_vol``.
* **Pumps and dumps.** Rare jumps (``jumps_per_day``, exponential size, mostly up) that ramp in
  over ``jump_rise_s``, kick volatility up, and then partially revert: ``jump_keep`` of the move
  stays, the rest decays away with time constant ``jump_revert_s``.
* **Bursty trade arrival.** Taker orders arrive as a Hawkes process (exponential kernel,
  simulated by Ogata thinning): each order triggers ``branching`` more on average within
  ~``excitation_decay_s``, and the baseline follows volatility, so busy markets are also volatile
  ones. An order fills against one or more price levels (it continues to the next level with
  probability ``sweep_share``), so several trades often share a millisecond and a side. Per-tick
  counts are overdispersed: many empty ticks, some with several trades. The long-run mean is the
  ``intensity`` asked for.
* **Order flow follows price.** ``P(buy)`` is a logistic function of the standardised mid move
  since the previous trade (pumps are bought, dumps sold) plus persistence of the previous side.
  Buys print at the ask (rounded up), sells at the bid (rounded down): bid-ask bounce.
* **Heavy-tailed sizes scaled to the symbol.** Sizes are drawn as quote notional (lognormal body
  plus rare Pareto "whales", bigger when the price moves), converted to tokens at the current
  price (so PEPE trades are tens of millions of tokens and DOGE hundreds), and about a third are
  rounded to one or two significant digits, as humans type them.
* **A weak anchor.** The mid is pulled back to the symbol's reference price with a half-life of
  ``anchor_halflife_days``, so a long-running demo never wanders off to absurd prices.

Prices are whole ticks (at least 1) and amounts whole lots (at least 1): floats live only inside
the simulation and never reach a ``Trade``.
"""

import math
import random
from dataclasses import dataclass

from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Side, Trade

__all__ = ["MarketModel", "MarketParams"]

_DAY_S = 86_400.0
# Prices and amounts must stay below the domain's 2**62 bound; keep a wide margin.
_MAX_UNITS = float(2**60)
# How far (natural log) the mid may get from the reference price: a factor of about 5e8.
_MAX_LOG_EXCURSION = 20.0
# A sweep never takes more levels than this, whatever ``sweep_share`` says.
_MAX_FILLS = 20


@dataclass(frozen=True, slots=True)
class MarketParams:
    """The shape of a simulated market. Defaults resemble a liquid meme coin on a big exchange.

    Volatilities are of the natural log of the price; times are in seconds unless named.
    """

    daily_vol: float = 0.12
    vol_of_vol: float = 0.6
    vol_halflife_s: float = 1_200.0
    tail_dof: float = 4.0
    jumps_per_day: float = 4.0
    jump_mean: float = 0.06
    pump_share: float = 0.65
    jump_keep: float = 0.4
    jump_rise_s: float = 20.0
    jump_revert_s: float = 1_200.0
    jump_vol_kick: float = 0.8
    branching: float = 0.6
    excitation_decay_s: float = 0.5
    sweep_share: float = 0.35
    activity_coupling: float = 0.7
    anchor_halflife_days: float = 7.0
    half_spread: float = 1.0e-4
    flow_sensitivity: float = 2.0
    flow_persistence: float = 0.5
    median_notional: float = 40.0
    notional_sigma: float = 1.2
    whale_share: float = 0.01
    whale_alpha: float = 1.4
    round_share: float = 0.35
    max_notional: float = 2_000_000.0

    def __post_init__(self) -> None:
        positive = (
            "daily_vol",
            "vol_halflife_s",
            "jump_mean",
            "jump_rise_s",
            "jump_revert_s",
            "excitation_decay_s",
            "anchor_halflife_days",
            "median_notional",
            "whale_alpha",
            "max_notional",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        non_negative = (
            "vol_of_vol",
            "jumps_per_day",
            "jump_vol_kick",
            "activity_coupling",
            "half_spread",
            "flow_sensitivity",
            "flow_persistence",
            "notional_sigma",
        )
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("pump_share", "jump_keep", "whale_share", "round_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 0 <= self.sweep_share < 1:
            raise ValueError("sweep_share must be in [0, 1)")
        if not 0 <= self.branching < 1:
            raise ValueError("branching must be in [0, 1) or trades would explode")
        if not self.tail_dof > 2:
            raise ValueError("tail_dof must be above 2 (returns need a finite variance)")


class MarketModel:
    """One symbol's simulated market. Ask it for the trades of consecutive time windows.

    State (mid price, volatility, jumps in progress, trade excitation, id counter) carries from one
    window to the next, so windows continue one path. Windows may leave gaps (the market moves on
    through them, unobserved) but must not overlap or go back.
    """

    def __init__(
        self,
        spec: SymbolSpec,
        seed: int,
        params: MarketParams | None = None,
        *,
        start_price: int | None = None,
    ) -> None:
        """``start_price`` (ticks) continues a path from a known last price, such as the last
        stored trade; by default the walk starts at ``spec.reference_price``."""
        if start_price is not None and start_price < 1:
            raise ValueError("start price must be at least one tick")
        self.spec = spec
        self.params = p = params or MarketParams()
        # A str seed hashes with SHA-512 inside Random (not with hash()), so it is stable across
        # processes; the symbol in it makes each symbol's path independent under one seed.
        self._rng = rng = random.Random(f"memetrade:{seed}:{spec.name}")

        # Everything below works in the natural log of the price in *ticks*.
        reference = float(spec.reference_price.scaleb(spec.price_decimals))
        self._anchor = math.log(max(reference, 1.0))
        self._base = math.log(start_price) if start_price is not None else self._anchor
        self._revert = 0.0  # Part of past jumps still to revert; decays to 0.
        self._pending = 0.0  # Part of a jump still ramping in.
        # E[sigma^2] = exp(2 mu + 2 s^2) for log sigma ~ N(mu, s^2): pick mu so that the mean
        # variance per second is daily_vol^2 / day.
        s = p.vol_of_vol
        self._v_mean = math.log(p.daily_vol / math.sqrt(_DAY_S)) - s * s
        self._v = self._v_mean + s * rng.gauss(0.0, 1.0)  # Start in the stationary law.
        self._v_kappa = math.log(2.0) / p.vol_halflife_s
        self._anchor_rate = math.log(2.0) / (p.anchor_halflife_days * _DAY_S)
        self._jump_rate = p.jumps_per_day / _DAY_S
        # Student-t(nu) has variance nu / (nu - 2); scale it to 1.
        self._t_scale = math.sqrt((p.tail_dof - 2.0) / p.tail_dof)
        # Activity multiplier exp(c (v - mean) - c^2 s^2 / 2) has mean 1 in the stationary law.
        self._activity_shift = 0.5 * (p.activity_coupling * s) ** 2
        # Lots per unit of quote currency at a price of one tick.
        self._lots_per_quote_tick = 10.0 ** (spec.amount_decimals + spec.price_decimals)

        self._excite = 0.0  # Hawkes excitation: orders per second above the baseline.
        self._clock: float | None = None  # Seconds; where the arrival process has got to.
        self._price_clock: float | None = None  # Seconds; when the mid was last moved.
        self._end_ms: int | None = None  # End of the last window; the next may not start before.
        self._last_side = 0.0  # +1 buy, -1 sell, 0 none yet.
        self._last_price: int | None = None
        self._id_ms = -1
        self._id_seq = 0

    @property
    def last_price(self) -> int | None:
        """Price (ticks) of the last trade produced, or None before the first."""
        return self._last_price

    @property
    def next_start_ms(self) -> int | None:
        """The earliest start of the next window (the end of the last), or None before any."""
        return self._end_ms

    def mid_price(self) -> int:
        """The current mid price in ticks (at least 1), as of the last trade or window."""
        return _ticks(self._mid())

    def trades_between(self, start_ms: int, end_ms: int, intensity: float) -> list[Trade]:
        """Return the trades with ``start_ms <= ts < end_ms``, sorted by ``(ts, id)``.

        ``intensity`` is the long-run mean number of trades per second; arrivals are bursty
        around it. Raise ``ValueError`` if the window is reversed or starts before the end of
        the previous one, or if ``intensity`` is negative.
        """
        if end_ms < start_ms:
            raise ValueError(f"window ends ({end_ms}) before it starts ({start_ms})")
        if not intensity >= 0 or math.isinf(intensity):
            raise ValueError("intensity must be a finite number of trades per second, >= 0")
        self._enter(start_ms)
        p = self.params
        rng = self._rng
        decay = p.excitation_decay_s
        t = start_ms / 1000.0
        end = end_ms / 1000.0
        excite = self._excite
        out: list[Trade] = []
        if intensity > 0:
            # Mean orders per second = baseline / (1 - branching); mean trades = that * fills.
            base_rate = intensity * (1.0 - p.branching) * (1.0 - p.sweep_share)
            jump_per_order = p.branching / decay  # The kernel integrates to ``branching``.
            while True:
                mu = base_rate * self._activity()
                bound = mu + excite  # Excitation only decays until the next arrival.
                t_next = t + rng.expovariate(bound)
                if t_next >= end:
                    break
                excite *= math.exp((t - t_next) / decay)
                t = t_next
                if rng.random() * bound <= mu + excite:
                    ts = min(max(int(t * 1000.0), start_ms), end_ms - 1)
                    out.extend(self._order(t, ts))
                    excite += jump_per_order
        # Memorylessness: restarting the thinning at ``end`` with the decayed excitation is exact.
        self._excite = excite * math.exp((t - end) / decay)
        self._clock = end
        self._end_ms = end_ms
        return out

    def trades_at(self, ts_ms: int) -> list[Trade]:
        """Return one order's trades at exactly ``ts_ms`` on the same path (such as a last
        trade "now"); usually one trade, sometimes a sweep of several.

        Like a one-millisecond window that happens to hold a trade; the next window may start at
        ``ts_ms + 1``.
        """
        self._enter(ts_ms)
        t = ts_ms / 1000.0
        trades = self._order(t, ts_ms)
        self._excite += self.params.branching / self.params.excitation_decay_s
        self._clock = t + 0.001
        self._end_ms = ts_ms + 1
        return trades

    # -- internals -------------------------------------------------------------------------

    def _enter(self, start_ms: int) -> None:
        """Move the arrival process to ``start_ms``, through any gap since the last window."""
        if self._end_ms is not None and start_ms < self._end_ms:
            raise ValueError(
                f"window starts at {start_ms}, before the previous one ended ({self._end_ms})"
            )
        t = start_ms / 1000.0
        if self._clock is None:
            self._clock = self._price_clock = t
            return
        self._excite *= math.exp((self._clock - t) / self.params.excitation_decay_s)
        self._clock = t

    def _mid(self) -> float:
        # Below 2**60 ticks whatever happened (the anchor itself is at most ~2**60).
        return math.exp(min(self._base + self._revert, 41.0))

    def _activity(self) -> float:
        # Trade rate follows volatility; capped so that a huge vol spike cannot stall the loop.
        x = self.params.activity_coupling * (self._v - self._v_mean) - self._activity_shift
        return math.exp(min(x, 3.0))

    def _student_t(self) -> float:
        rng = self._rng
        nu = self.params.tail_dof
        chi2 = rng.gammavariate(0.5 * nu, 2.0)
        return rng.gauss(0.0, 1.0) * math.sqrt(nu / max(chi2, 1e-12)) * self._t_scale

    def _evolve(self, dt: float) -> float:
        """Move the mid over ``dt`` seconds; return the move in units of its expected size."""
        p = self.params
        rng = self._rng
        before = self._base + self._revert
        sigma = math.exp(self._v)
        if self._jump_rate and rng.random() < -math.expm1(-self._jump_rate * dt):
            size = min(rng.expovariate(1.0 / p.jump_mean), 12.0 * p.jump_mean)
            self._pending += size if rng.random() < p.pump_share else -size
            self._v = min(self._v + p.jump_vol_kick, self._v_mean + 5.0)
        moved = 0.0
        if self._pending:
            moved = self._pending * -math.expm1(-dt / p.jump_rise_s)
            self._pending -= moved
        self._revert = self._revert * math.exp(-dt / p.jump_revert_s) + (1.0 - p.jump_keep) * moved
        pull = math.exp(-self._anchor_rate * dt)
        diffusion = sigma * math.sqrt(dt) * self._student_t()
        base = self._anchor + (self._base - self._anchor) * pull + diffusion + p.jump_keep * moved
        # Guard rails far outside any sane path, so that extreme params cannot overflow.
        self._base = min(
            max(base, self._anchor - _MAX_LOG_EXCURSION), self._anchor + _MAX_LOG_EXCURSION
        )
        # Exact OU step for log-volatility, valid for any dt.
        a = math.exp(-self._v_kappa * dt)
        noise = p.vol_of_vol * math.sqrt(1.0 - a * a) * rng.gauss(0.0, 1.0)
        self._v = min(self._v_mean + (self._v - self._v_mean) * a + noise, self._v_mean + 5.0)
        scale = sigma * math.sqrt(dt)
        if scale <= 0.0:
            return 0.0
        return max(-6.0, min(6.0, (self._base + self._revert - before) / scale))

    def _order(self, t: float, ts: int) -> list[Trade]:
        """One taker order at ``t``: the mid moves first, then the order fills against one or
        more price levels (a sweep), all in the same millisecond and on the same side."""
        p = self.params
        rng = self._rng
        assert self._price_clock is not None
        z = self._evolve(max(t - self._price_clock, 0.0))
        self._price_clock = t

        logit = p.flow_sensitivity * z + p.flow_persistence * self._last_side
        buy = rng.random() * (1.0 + math.exp(-logit)) < 1.0  # P(buy) = sigmoid(logit)
        self._last_side = 1.0 if buy else -1.0
        side = Side.BUY if buy else Side.SELL
        mid = self._mid()
        # Big moves come with big orders.
        size_boost = math.exp(0.25 * min(abs(z), 4.0))
        fills: list[Trade] = []
        level = 1.0
        while True:
            if buy:  # Buys print at the ask or above (round up), sells at the bid or below.
                price = _ticks(math.ceil(mid * (1.0 + p.half_spread * level)))
            else:
                price = _ticks(math.floor(mid * (1.0 - p.half_spread * level)))
            fills.append(
                Trade(
                    self._next_id(ts),
                    self.spec.name,
                    price,
                    self._amount(price, size_boost),
                    side,
                    ts,
                )
            )
            if len(fills) >= _MAX_FILLS or rng.random() >= p.sweep_share:
                break
            level += 1.0
        self._last_price = fills[-1].price
        return fills

    def _amount(self, price: int, boost: float) -> int:
        p = self.params
        rng = self._rng
        notional = p.median_notional * math.exp(p.notional_sigma * rng.gauss(0.0, 1.0)) * boost
        if rng.random() < p.whale_share:
            notional *= 10.0 * rng.paretovariate(p.whale_alpha)
        lots = min(notional, p.max_notional) * self._lots_per_quote_tick / price
        if rng.random() < p.round_share:  # People type round numbers.
            lots = _round_figure(lots, 1 if rng.random() < 0.5 else 2)
        return _ticks(lots)

    def _next_id(self, ts: int) -> str:
        """A UUIDv7-layout id: 48-bit ms timestamp, then a per-ms counter (so ids of one model
        sort in the order it made them), then seeded random bits."""
        if ts == self._id_ms:
            self._id_seq += 1
        else:
            # A random start with the top bit clear (RFC 9562, 6.2 method 2): ids look random,
            # and 2**25 more trades fit in the millisecond before the counter could wrap.
            self._id_ms, self._id_seq = ts, self._rng.getrandbits(25)
        # 74 free bits: the 26-bit counter above 48 random bits; version 7 and variant 0b10 set.
        rest = (self._id_seq & 0x3FF_FFFF) << 48 | self._rng.getrandbits(48)
        value = (
            (ts & 0xFFFF_FFFF_FFFF) << 80
            | 0x7 << 76
            | (rest >> 62) << 64
            | 0b10 << 62
            | rest & 0x3FFF_FFFF_FFFF_FFFF
        )
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ticks(x: float) -> int:
    """Round a positive float to a whole number of units, at least 1 and far below 2**62."""
    if not x >= 1.0:  # Also catches NaN.
        return 1
    return round(min(x, _MAX_UNITS))


def _round_figure(x: float, digits: int) -> float:
    if x < 10.0:
        return x
    q = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return round(x / q) * q

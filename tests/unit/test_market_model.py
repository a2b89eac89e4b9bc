"""The mock market model: exact outputs (ticks, lots, ids, windows), determinism, and the
stylised facts of a meme-coin tape checked statistically on long seeded runs."""

import itertools
import math
import statistics
import uuid
from decimal import Decimal

import pytest

from memetrade.domain.market_model import MarketModel, MarketParams
from memetrade.domain.symbols import PRESETS, SymbolSpec
from memetrade.domain.trades import Side, Trade

T0 = 1_700_000_000_000
HOUR_MS = 3_600_000


def run(
    model: MarketModel, start: int, seconds: int, intensity: float, step_ms: int = 1000
) -> list[Trade]:
    """Trades of consecutive windows of ``step_ms`` covering ``seconds`` from ``start``."""
    trades: list[Trade] = []
    for t in range(start, start + seconds * 1000, step_ms):
        trades += model.trades_between(t, t + step_ms, intensity)
    return trades


def second_returns(trades: list[Trade], start: int, seconds: int) -> list[float]:
    """Log returns of the last trade price of each second (carried through empty seconds)."""
    last: dict[int, int] = {}
    for trade in trades:
        last[(trade.ts - start) // 1000] = trade.price
    returns: list[float] = []
    prev: int | None = None
    for i in range(seconds):
        price = last.get(i, prev)
        if price is not None and prev is not None:
            returns.append(math.log(price / prev))
        prev = price
    return returns


def excess_kurtosis(xs: list[float]) -> float:
    m = statistics.fmean(xs)
    var = statistics.fmean([(x - m) ** 2 for x in xs])
    return statistics.fmean([(x - m) ** 4 for x in xs]) / var**2 - 3.0


def ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=xs.__getitem__)
    out = [0.0] * len(xs)
    for rank, i in enumerate(order):
        out[i] = float(rank)
    return out


def autocorrelation(xs: list[float], lag: int) -> float:
    m = statistics.fmean(xs)
    var = sum((x - m) ** 2 for x in xs)
    return sum((xs[i] - m) * (xs[i + lag] - m) for i in range(len(xs) - lag)) / var


# -- exact properties ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_trades_and_another_seed_other_trades() -> None:
    spec = PRESETS["PEPE"]
    a = run(MarketModel(spec, 7), T0, 600, 5.0, step_ms=100)
    b = run(MarketModel(spec, 7), T0, 600, 5.0, step_ms=100)
    c = run(MarketModel(spec, 8), T0, 600, 5.0, step_ms=100)
    assert a == b
    assert len(a) > 1000
    assert [t.price for t in a] != [t.price for t in c]


def test_symbols_under_one_seed_follow_independent_paths() -> None:
    doge = SymbolSpec("DOGE", 6, 2, Decimal("0.1234"))
    twin = SymbolSpec("DOGE2", 6, 2, Decimal("0.1234"))
    a = run(MarketModel(doge, 1), T0, 300, 2.0)
    b = run(MarketModel(twin, 1), T0, 300, 2.0)
    assert [t.price for t in a] != [t.price for t in b]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_prices_are_whole_positive_ticks_and_amounts_whole_lots(name: str) -> None:
    spec = PRESETS[name]
    trades = run(MarketModel(spec, 3), T0, 1800, 4.0, step_ms=100)
    assert trades
    reference = int(spec.reference_price.scaleb(spec.price_decimals))
    for trade in trades:
        assert type(trade.price) is int
        assert type(trade.amount) is int
        assert trade.price >= 1
        assert trade.amount >= 1
        assert trade.symbol == name
        # Half an hour of a meme coin: far from the reference is possible, absurd is not.
        assert reference / 3 < trade.price < reference * 3


def test_prices_never_reach_zero_even_for_a_one_tick_coin_in_a_crash() -> None:
    # Reference price of one tick and a brutal volatility: the walk goes far below a tick.
    spec = SymbolSpec("DUST", 2, 0, Decimal("0.01"))
    params = MarketParams(daily_vol=20.0, jumps_per_day=500.0, pump_share=0.0)
    trades = run(MarketModel(spec, 5, params), T0, 3600, 2.0)
    assert trades
    assert min(t.price for t in trades) == 1
    assert all(t.amount >= 1 for t in trades)


def test_trades_lie_inside_their_windows_sorted_with_unique_time_ordered_uuid7_ids() -> None:
    model = MarketModel(PRESETS["SHIB"], 11)
    all_trades: list[Trade] = []
    t = T0
    for length in [100] * 3000 + [1, 0, 7, 60_000]:
        window = model.trades_between(t, t + length, 8.0)
        assert all(t <= trade.ts < t + length for trade in window)
        keys = [(trade.ts, trade.id) for trade in window]
        assert keys == sorted(keys)
        all_trades += window
        t += length
    ids = [trade.id for trade in all_trades]
    assert len(set(ids)) == len(ids)
    # Ids sort in the order the trades happened, across windows too.
    assert ids == sorted(ids)
    for trade in all_trades[:200]:
        parsed = uuid.UUID(trade.id)
        assert str(parsed) == trade.id
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == trade.ts


def test_several_trades_often_share_a_millisecond_and_keep_their_id_order() -> None:
    trades = run(MarketModel(PRESETS["PEPE"], 2), T0, 600, 5.0, step_ms=100)
    same_ms = [(a, b) for a, b in itertools.pairwise(trades) if a.ts == b.ts]
    assert len(same_ms) > len(trades) // 10  # Sweeps: one order, several fills.
    assert all(a.id < b.id for a, b in same_ms)


def test_windows_must_not_overlap_or_go_back_but_may_leave_gaps() -> None:
    model = MarketModel(PRESETS["DOGE"], 1)
    model.trades_between(T0, T0 + 1000, 5.0)
    with pytest.raises(ValueError, match="before the previous one ended"):
        model.trades_between(T0 + 999, T0 + 2000, 5.0)
    with pytest.raises(ValueError, match="before it starts"):
        model.trades_between(T0 + 3000, T0 + 2000, 5.0)
    with pytest.raises(ValueError, match="intensity"):
        model.trades_between(T0 + 1000, T0 + 2000, -1.0)
    later = model.trades_between(T0 + HOUR_MS, T0 + HOUR_MS + 60_000, 5.0)
    assert later
    assert all(t.ts >= T0 + HOUR_MS for t in later)


def test_zero_intensity_gives_no_trades_and_keeps_the_path_going() -> None:
    model = MarketModel(PRESETS["DOGE"], 1)
    assert model.trades_between(T0, T0 + 60_000, 0.0) == []
    assert model.trades_between(T0 + 60_000, T0 + 120_000, 2.0)


def test_consecutive_windows_continue_one_price_path() -> None:
    model = MarketModel(PRESETS["FLOKI"], 4)
    first = run(model, T0, 600, 3.0)
    second = run(model, T0 + 600_000, 600, 3.0)
    # A fresh model would restart at the reference price; this one continues from its last.
    assert abs(math.log(second[0].price / first[-1].price)) < 0.01
    assert model.last_price == second[-1].price


def test_a_model_can_start_from_a_known_last_price() -> None:
    model = MarketModel(PRESETS["PEPE"], 1, start_price=2_000_000)
    trades = model.trades_between(T0, T0 + 10_000, 5.0)
    assert abs(math.log(trades[0].price / 2_000_000)) < 0.01
    with pytest.raises(ValueError, match="at least one tick"):
        MarketModel(PRESETS["PEPE"], 1, start_price=0)


def test_trades_at_puts_an_order_at_exactly_that_millisecond() -> None:
    model = MarketModel(PRESETS["DOGE"], 9)
    model.trades_between(T0, T0 + 5_000, 1.0)
    trades = model.trades_at(T0 + 5_000)
    assert trades
    assert {t.ts for t in trades} == {T0 + 5_000}
    assert len({t.side for t in trades}) == 1
    assert model.trades_between(T0 + 5_001, T0 + 6_000, 1.0) is not None
    with pytest.raises(ValueError, match="before the previous one ended"):
        model.trades_at(T0 + 5_500)


def test_params_reject_values_that_would_break_the_simulation() -> None:
    with pytest.raises(ValueError, match="branching"):
        MarketParams(branching=1.0)
    with pytest.raises(ValueError, match="tail_dof"):
        MarketParams(tail_dof=2.0)
    with pytest.raises(ValueError, match="daily_vol"):
        MarketParams(daily_vol=0.0)
    with pytest.raises(ValueError, match="pump_share"):
        MarketParams(pump_share=1.5)


# -- stylised facts -----------------------------------------------------------------------------

# Six hours of DOGE (fine ticks, so rounding does not shape the returns) at one trade a second.
LONG_S = 6 * 3600


@pytest.fixture(scope="module")
def long_run() -> list[Trade]:
    return run(MarketModel(PRESETS["DOGE"], 2024), T0, LONG_S, 1.0, step_ms=60_000)


def test_one_second_returns_have_fat_tails(long_run: list[Trade]) -> None:
    returns = second_returns(long_run, T0, LONG_S)
    # A Gaussian walk gives 0; real crypto 1s returns give tens.
    assert excess_kurtosis(returns) > 5


def test_volatility_clusters(long_run: list[Trade]) -> None:
    magnitudes = [abs(r) for r in second_returns(long_run, T0, LONG_S)]
    # Big moves follow big moves: |r| is positively autocorrelated, and stays so over minutes.
    assert autocorrelation(magnitudes, 1) > 0.02
    assert autocorrelation(magnitudes, 60) > 0.01


def test_mean_trade_rate_matches_the_intensity_asked_for(long_run: list[Trade]) -> None:
    # Bursts and volatility regimes make the rate wander; over hours it averages out.
    assert 0.6 < len(long_run) / LONG_S < 1.5


def test_both_sides_trade_and_buying_goes_with_rising_prices(long_run: list[Trade]) -> None:
    buys = sum(t.side is Side.BUY for t in long_run)
    assert 0.35 < buys / len(long_run) < 0.65
    # Per minute: buys minus sells against the log return of the minute.
    flows: dict[int, int] = {}
    closes: dict[int, int] = {}
    for trade in long_run:
        minute = (trade.ts - T0) // 60_000
        sign = 1 if trade.side is Side.BUY else -1
        flows[minute] = flows.get(minute, 0) + sign
        closes[minute] = trade.price
    minutes = sorted(m for m in closes if m - 1 in closes)
    returns = [math.log(closes[m] / closes[m - 1]) for m in minutes]
    imbalance = [float(flows[m]) for m in minutes]
    # Ranks: one pump minute must not decide a Pearson correlation.
    assert statistics.correlation(ranks(returns), ranks(imbalance)) > 0.2


def test_trade_arrival_is_bursty() -> None:
    model = MarketModel(PRESETS["PEPE"], 77)
    counts = [
        len(model.trades_between(T0 + i * 100, T0 + (i + 1) * 100, 10.0)) for i in range(6000)
    ]
    mean = statistics.fmean(counts)
    # Poisson arrivals would give variance == mean; clustered ones give more, and many
    # empty ticks next to ticks with several trades.
    assert statistics.pvariance(counts) > 1.5 * mean
    assert counts.count(0) > len(counts) // 5
    assert max(counts) >= 5


def test_trade_sizes_are_heavy_tailed_and_scaled_to_the_symbol() -> None:
    def tokens(name: str) -> list[float]:
        spec = PRESETS[name]
        trades = run(MarketModel(spec, 5), T0, 3600, 2.0, step_ms=60_000)
        return [t.amount / 10**spec.amount_decimals for t in trades]

    pepe, doge = tokens("PEPE"), tokens("DOGE")
    assert statistics.median(pepe) > 1_000_000  # PEPE trades are millions of tokens...
    assert 50 < statistics.median(doge) < 5_000  # ... DOGE trades hundreds or thousands.
    # Heavy tail: the largest trade dwarfs the typical one.
    assert max(doge) > 100 * statistics.median(doge)
    # People type round numbers.
    round_amounts = sum(1 for a in doge if a >= 10 and a % 10 == 0)
    assert round_amounts > len(doge) // 5


def test_pumps_jump_and_then_partially_revert() -> None:
    # A quiet coin with pumps only: the jumps stand out of the noise.
    params = MarketParams(
        daily_vol=0.01,
        vol_of_vol=0.0,
        jumps_per_day=24.0,
        jump_mean=0.2,
        pump_share=1.0,
        jump_keep=0.4,
        jump_rise_s=10.0,
        jump_revert_s=300.0,
    )
    spec = PRESETS["DOGE"]
    found = 0
    for seed in range(5):
        trades = run(MarketModel(spec, seed, params), T0, 3 * 3600, 1.0, step_ms=60_000)
        prices = [t.price for t in trades]
        for i in range(60, len(prices) - 2000):
            before = prices[i - 60]
            peak = max(prices[i : i + 60])
            if peak > before * 1.15:  # A pump...
                after = prices[i + 1800]  # ... half an hour later:
                if before * 1.02 < after < peak * 0.95:  # partly given back, partly kept.
                    found += 1
                    break
    assert found >= 3

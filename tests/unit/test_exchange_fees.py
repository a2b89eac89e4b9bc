"""Fees: rounding, the fee collector, tiers by rolling 30-day volume."""

from exchange_helpers import RICH, balance, fills, fund, new_engine, ok, place

from memetrade.domain.exchange import DEFAULT_FEE_SCHEDULE, FeeSchedule, FeeTier, fee
from memetrade.domain.exchange.fees import DAY_MS


def test_fee_rounds_up_in_the_exchanges_favour() -> None:
    assert fee(10_000, 20) == 20
    assert fee(10_001, 20) == 21
    assert fee(1, 1) == 1
    assert fee(0, 20) == 0
    assert fee(12_345, 0) == 0


def test_default_schedule_is_the_published_one() -> None:
    rates = [(t.name, t.min_volume, t.maker_bps, t.taker_bps) for t in DEFAULT_FEE_SCHEDULE.tiers]
    assert rates == [
        ("Standard", 0, 10, 20),
        ("VIP1", 100_000, 5, 10),
        ("VIP2", 1_000_000, 2, 8),
        ("VIP3", 10_000_000, 0, 5),
    ]
    assert DEFAULT_FEE_SCHEDULE.window_days == 30


def test_both_sides_pay_in_quote_and_the_collector_gets_it() -> None:
    engine = new_engine()
    fund(engine, 1)
    fund(engine, 2)
    ok(place(engine, 1, "sell", price=5001, quantity=1))
    out = ok(place(engine, 2, "buy", price=5001, quantity=1))
    [f] = fills(out)
    assert (f.quote_amount, f.maker_fee, f.taker_fee, f.fee_asset) == (5001, 6, 11, "USDT")
    assert balance(engine, 1, "USDT") == (RICH + 5001 - 6, 0)
    assert balance(engine, 2, "USDT") == (RICH - 5001 - 11, 0)
    assert balance(engine, 0, "USDT") == (17, 0)
    total = sum(balance(engine, u, "USDT")[0] + balance(engine, u, "USDT")[1] for u in (0, 1, 2))
    assert total == 2 * RICH


SMALL_TIERS = FeeSchedule(
    (FeeTier("Standard", 0, 10, 20), FeeTier("VIP1", 100, 5, 10), FeeTier("VIP3", 1_000, 0, 5)),
    window_days=30,
)


def test_tier_follows_rolling_volume_and_falls_back_when_it_ages_out() -> None:
    engine = new_engine(SMALL_TIERS)
    fund(engine, 1)
    fund(engine, 2)
    day0 = 100 * DAY_MS
    ok(place(engine, 1, "sell", price=10_000, quantity=1, ts=day0))
    out = ok(place(engine, 2, "buy", price=10_000, quantity=1, ts=day0))  # 100 USDT each
    [f] = fills(out)
    assert (f.maker_fee, f.taker_fee) == (10, 20)  # tier from the volume before the fill
    tier, volume = engine.fee_tier(2, day0)
    assert (tier.name, volume) == ("VIP1", 10_000)
    ok(place(engine, 1, "sell", price=10_000, quantity=1, ts=day0 + 1))
    out = ok(place(engine, 2, "buy", price=10_000, quantity=1, ts=day0 + 1))
    assert [(f.maker_fee, f.taker_fee) for f in fills(out)] == [(5, 10)]
    # 29 days later both fills still count; on day 30 they leave the window.
    assert engine.fee_tier(2, day0 + 29 * DAY_MS)[0].name == "VIP1"
    assert engine.fee_tier(2, day0 + 30 * DAY_MS) == (SMALL_TIERS.tiers[0], 0)
    later = day0 + 30 * DAY_MS
    ok(place(engine, 1, "sell", price=10_000, quantity=1, ts=later))
    out = ok(place(engine, 2, "buy", price=10_000, quantity=1, ts=later))
    assert [(f.maker_fee, f.taker_fee) for f in fills(out)] == [(10, 20)]


def test_buy_reserve_covers_the_highest_rate_whatever_the_tier() -> None:
    engine = new_engine(SMALL_TIERS)
    fund(engine, 1, usdt=10_020, doge=0)  # exactly 1 lot at 10_000 plus 20 bps
    ok(place(engine, 1, "buy", price=10_000, quantity=1))
    assert balance(engine, 1, "USDT") == (0, 10_020)

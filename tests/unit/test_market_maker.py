"""The simulated participants' decisions (domain/market_maker.py), executed on a real engine."""

from exchange_helpers import MARKETS, fund, new_engine, ok, place
from hypothesis import given, settings
from hypothesis import strategies as st

from memetrade.domain.exchange import (
    BalanceInfo,
    CancelOrder,
    Command,
    Deposit,
    Engine,
    PlaceOrder,
)
from memetrade.domain.market_maker import (
    MakerParams,
    Quote,
    maker_commands,
    maker_params,
    quote_ladder,
    taker_orders,
    top_ups,
)
from memetrade.domain.trades import Side, Trade

DOGE = MARKETS[0]
MAKER = 7
PARAMS = MakerParams(
    levels=3,
    half_spread_ticks=2,
    step_ticks=5,
    quantity=10,
    target_inventory=1_000,
    inventory_limit=500,
    max_skew_steps=2,
)


def prices(quotes: list[Quote], side: str) -> list[int]:
    return [q.price for q in quotes if q.side == side]


def run(engine: Engine, commands: list[Command], ts: int = 2) -> None:
    for command in commands:
        ok(engine.execute(command, ts))


def book_of(engine: Engine, user: int = MAKER) -> list[tuple[str, int | None, int]]:
    return sorted((o.side, o.price, o.remaining) for o in engine.open_orders(user))


def test_a_balanced_maker_quotes_both_sides_on_the_step_grid_around_the_rounded_fair() -> None:
    ladder = quote_ladder(1_002, PARAMS.target_inventory, PARAMS)
    # 1002 rounds to the grid line 1000: bids 2 ticks under it, asks 2 over, 5 apart.
    assert prices(ladder, "buy") == [998, 993, 988]
    assert prices(ladder, "sell") == [1_002, 1_007, 1_012]
    assert {q.quantity for q in ladder} == {10}
    assert quote_ladder(1_003, PARAMS.target_inventory, PARAMS) == quote_ladder(
        1_007, PARAMS.target_inventory, PARAMS
    )


def test_inventory_skews_the_ladder_by_whole_steps_and_caps_the_side_that_adds_to_it() -> None:
    target, limit = PARAMS.target_inventory, PARAMS.inventory_limit
    # Long by half the limit: one step down (sell more, buy less); by the limit: no bids.
    assert prices(quote_ladder(1_000, target + limit // 2, PARAMS), "sell")[0] == 997
    assert prices(quote_ladder(1_000, target + limit, PARAMS), "buy") == []
    assert prices(quote_ladder(1_000, target + 10 * limit, PARAMS), "sell")[0] == 992
    # Short: the mirror.
    assert prices(quote_ladder(1_000, target - limit // 2, PARAMS), "buy")[0] == 1_003
    assert prices(quote_ladder(1_000, target - limit, PARAMS), "sell") == []
    # A small imbalance either way moves nothing.
    assert quote_ladder(1_000, target + 1, PARAMS) == quote_ladder(1_000, target - 1, PARAMS)


def test_prices_below_one_tick_are_not_quoted() -> None:
    ladder = quote_ladder(6, PARAMS.target_inventory, PARAMS)
    assert prices(ladder, "buy") == [3]
    assert prices(ladder, "sell") == [7, 12, 17]


def test_a_move_of_one_step_cancels_and_places_one_order_a_side() -> None:
    engine = new_engine()
    fund(engine, MAKER)
    run(engine, maker_commands(MAKER, "DOGE", quote_ladder(1_000, 1_000, PARAMS), []))
    assert book_of(engine) == [
        ("buy", 988, 10), ("buy", 993, 10), ("buy", 998, 10),
        ("sell", 1_002, 10), ("sell", 1_007, 10), ("sell", 1_012, 10),
    ]  # fmt: skip
    moved = quote_ladder(1_005, 1_000, PARAMS)
    commands = maker_commands(MAKER, "DOGE", moved, engine.open_orders(MAKER))
    cancelled = [c for c in commands if isinstance(c, CancelOrder)]
    placed = [c for c in commands if isinstance(c, PlaceOrder)]
    assert len(cancelled) == 2
    assert sorted((p.side, p.price) for p in placed) == [("buy", 1_003), ("sell", 1_017)]
    # Cancels go first, so their funds back the new orders.
    assert commands == [*cancelled, *placed]
    assert all(p.post_only and p.type == "limit" and p.time_in_force == "GTC" for p in placed)
    run(engine, commands)
    assert sorted((o.side, o.price) for o in engine.open_orders(MAKER)) == sorted(
        (q.side, q.price) for q in moved
    )


def test_an_order_more_than_half_filled_is_replaced_at_full_size() -> None:
    engine = new_engine()
    fund(engine, MAKER)
    fund(engine, 8)
    ladder = quote_ladder(1_000, 1_000, PARAMS)
    run(engine, maker_commands(MAKER, "DOGE", ladder, []))
    ok(place(engine, 8, "buy", type="market", quantity=4))  # 6 of 10 left at 1002: kept.
    assert maker_commands(MAKER, "DOGE", ladder, engine.open_orders(MAKER)) == []
    ok(place(engine, 8, "buy", type="market", quantity=2))  # 4 of 10 left: replaced.
    commands = maker_commands(MAKER, "DOGE", ladder, engine.open_orders(MAKER))
    assert [type(c) for c in commands] == [CancelOrder, PlaceOrder]
    run(engine, commands)
    assert ("sell", 1_002, 10) in book_of(engine)


@settings(max_examples=60, deadline=None)
@given(
    fair=st.integers(40, 3_000),  # Every level of 10 coins stays above min_notional.
    inventory=st.integers(0, 2_000),
    stray=st.lists(
        st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 3_000), st.integers(1, 20)),
        max_size=8,
    ),
)
def test_requoting_always_leaves_exactly_the_wanted_ladder(
    fair: int, inventory: int, stray: list[tuple[str, int, int]]
) -> None:
    engine = new_engine()
    fund(engine, MAKER)
    for side, price, quantity in stray:
        # Orders of earlier runs, wherever they are (some trade with each other; fine).
        place(engine, MAKER, side, price=price, quantity=quantity, stp="none")
    ladder = quote_ladder(fair, inventory, PARAMS)
    bids, asks = prices(ladder, "buy"), prices(ladder, "sell")
    assert not bids or not asks or max(bids) < min(asks)
    run(engine, maker_commands(MAKER, "DOGE", ladder, engine.open_orders(MAKER)))
    assert sorted((o.side, o.price) for o in engine.open_orders(MAKER)) == sorted(
        (q.side, q.price) for q in ladder
    )
    again = maker_commands(MAKER, "DOGE", ladder, engine.open_orders(MAKER))
    assert again == []


def test_params_scale_with_the_price_and_respect_the_minimum_notional() -> None:
    # DOGE here: 0.01 USDT ticks, whole coins, USDT in cents; min notional 1 USDT = 100.
    params = maker_params(
        DOGE, 12_340, half_spread_bps=2, step_bps=5, level_notional=100_000, levels=4
    )
    assert params.half_spread_ticks == 2  # 2 bps of 123.40 USDT is 2.4 ticks.
    assert params.step_ticks == 6
    assert params.quantity == 9  # 1,000 USDT of coins at 123.40, rounded up.
    assert params.target_inventory == 20 * 4 * 9
    tiny = maker_params(DOGE, 3, half_spread_bps=1, step_bps=1, level_notional=1, levels=2)
    assert tiny.half_spread_ticks == tiny.step_ticks == 1
    assert DOGE.notional(3, tiny.quantity) >= DOGE.min_notional


def trade(n: int, ts: int, side: Side, price: int, amount: int, symbol: str = "DOGE") -> Trade:
    return Trade(f"t{n}", symbol, price, amount, side, ts)


def test_the_tape_becomes_market_orders_and_sweeps_become_ioc_limits() -> None:
    tape = [
        trade(1, 10, Side.BUY, 1_001, 5),
        trade(2, 11, Side.SELL, 999, 3),
        trade(3, 11, Side.SELL, 998, 4),  # Same ms and side: one sweep with #2.
        trade(4, 11, Side.BUY, 1_002, 500),  # Same ms, other side: a new order, capped.
        trade(5, 12, Side.SELL, 999, 2, symbol="PEPE"),
    ]
    assert taker_orders(tape, [1, 2], max_quantity=50, reach_ticks=7) == [
        PlaceOrder(1, "DOGE", "buy", "market", quantity=5),
        PlaceOrder(2, "DOGE", "sell", "limit", quantity=7, price=991, time_in_force="IOC"),
        PlaceOrder(1, "DOGE", "buy", "market", quantity=50),
        PlaceOrder(2, "PEPE", "sell", "market", quantity=2),
    ]


def test_takers_trade_against_the_makers_ladder() -> None:
    engine = new_engine()
    fund(engine, MAKER)
    fund(engine, 8)
    run(engine, maker_commands(MAKER, "DOGE", quote_ladder(1_000, 1_000, PARAMS), []))
    tape = [trade(1, 5, Side.BUY, 1_001, 3), trade(2, 5, Side.BUY, 1_003, 14)]
    (order,) = taker_orders(tape, [8], max_quantity=100, reach_ticks=6)
    outcome = ok(engine.execute(order, 3))
    # IOC up to 1003 + 6 = 1009: the whole 1002 level and 7 of the 1007 one.
    assert book_of(engine)[3:] == [("sell", 1_007, 3), ("sell", 1_012, 10)]
    assert outcome.order_id is not None


def test_top_ups_refill_to_the_target_once_half_is_spent() -> None:
    targets = {"USDT": 1_000, "DOGE": 50}
    assert top_ups(3, {}, targets) == [Deposit(3, "USDT", 1_000), Deposit(3, "DOGE", 50)]
    balances = {"USDT": BalanceInfo(300, 199), "DOGE": BalanceInfo(20, 5)}
    assert top_ups(3, balances, targets) == [Deposit(3, "USDT", 501)]
    assert top_ups(3, {"USDT": BalanceInfo(500, 0), "DOGE": BalanceInfo(25, 0)}, targets) == []

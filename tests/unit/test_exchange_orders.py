"""Order types, time in force, post-only, self-trade prevention and cancels, by example."""

import pytest
from exchange_helpers import (
    RICH,
    balance,
    fills,
    fund,
    last_status,
    new_engine,
    ok,
    place,
    updates,
)

from memetrade.domain.exchange import BookLevelChange, CancelAll, CancelOrder, Engine


@pytest.fixture
def engine() -> Engine:
    e = new_engine()
    for user in range(1, 6):
        fund(e, user)
    return e


def test_limit_order_rests_and_reserves_notional_plus_highest_fee(engine: Engine) -> None:
    out = ok(place(engine, 1, "buy", price=100, quantity=10))
    assert out.order_id == 1
    assert last_status(out, 1) == ("new", None)
    # Per lot: 100 cents plus ceil(100 * 20 / 10_000) = 1 cent of fee.
    assert balance(engine, 1, "USDT") == (RICH - 1010, 1010)
    assert engine.depth("DOGE") == (1, [(100, 10)], [])
    assert engine.best_bid_ask("DOGE") == ((100, 10), None)
    [change] = [e for e in out.events if isinstance(e, BookLevelChange)]
    assert (change.side, change.price, change.quantity, change.update_id) == ("bid", 100, 10, 1)


def test_price_then_time_priority(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=101, quantity=5))
    ok(place(engine, 2, "sell", price=101, quantity=5))
    ok(place(engine, 3, "sell", price=100, quantity=5))
    out = ok(place(engine, 4, "buy", price=101, quantity=12))
    assert [(f.maker_user_id, f.price, f.quantity) for f in fills(out)] == [
        (3, 100, 5),
        (1, 101, 5),
        (2, 101, 2),
    ]
    assert [f.trade_id for f in fills(out)] == [1, 2, 3]
    assert last_status(out, 4) == ("filled", None)
    assert engine.depth("DOGE")[1:] == ([], [(101, 3)])
    # Notional 500 + 505 + 202; taker fees ceil(1.0) + ceil(1.01) + ceil(0.404) = 4.
    assert balance(engine, 4, "USDT") == (RICH - 1211, 0)
    assert balance(engine, 4, "DOGE") == (RICH + 12, 0)
    assert engine.last_price("DOGE") == 101


def test_partial_fill_rests_the_rest_and_refunds_price_improvement(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=100, quantity=5))
    out = ok(place(engine, 2, "buy", price=102, quantity=10))
    assert last_status(out, 2) == ("partially_filled", None)
    # Reserved 10 x 103; 5 lots filled for 500 + 1 fee, so 5 x 103 - 501 = 14 came back.
    assert balance(engine, 2, "USDT") == (RICH - 1030 + 14, 515)
    assert engine.depth("DOGE")[1:] == ([(102, 5)], [])
    [info] = engine.open_orders(2)
    assert (info.status, info.filled, info.remaining) == ("partially_filled", 5, 5)
    assert info.locked == 515


def test_ioc_expires_its_rest(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=100, quantity=5))
    out = ok(place(engine, 2, "buy", price=100, quantity=10, time_in_force="IOC"))
    assert sum(f.quantity for f in fills(out)) == 5
    assert last_status(out, 2) == ("expired", "ioc")
    assert engine.depth("DOGE")[1:] == ([], [])
    assert balance(engine, 2, "USDT") == (RICH - 501, 0)


def test_fok_fills_entirely_or_changes_nothing(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=100, quantity=5))
    out = ok(place(engine, 2, "buy", price=100, quantity=6, time_in_force="FOK"))
    assert fills(out) == []
    assert last_status(out, 2) == ("expired", "fok_not_filled")
    assert engine.depth("DOGE")[1:] == ([], [(100, 5)])
    assert balance(engine, 2, "USDT") == (RICH, 0)
    out = ok(place(engine, 2, "buy", price=100, quantity=5, time_in_force="FOK"))
    assert last_status(out, out.order_id or 0) == ("filled", None)


def test_post_only_is_refused_when_it_would_take(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=100, quantity=5))
    before = engine.state_hash()
    out = place(engine, 2, "buy", price=100, quantity=5, post_only=True)
    assert (out.ok, out.code) == (False, "would_take")
    assert engine.state_hash() == before
    ok(place(engine, 2, "buy", price=99, quantity=5, post_only=True))
    assert engine.best_bid_ask("DOGE") == ((99, 5), (100, 5))


def test_market_buy_by_quantity_walks_the_book(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=100, quantity=5))
    ok(place(engine, 2, "sell", price=101, quantity=5))
    out = ok(place(engine, 3, "buy", type="market", quantity=7))
    assert [(f.price, f.quantity) for f in fills(out)] == [(100, 5), (101, 2)]
    assert last_status(out, 3) == ("filled", None)
    assert balance(engine, 3, "USDT") == (RICH - 704, 0)
    out = ok(place(engine, 3, "buy", type="market", quantity=10))
    assert sum(f.quantity for f in fills(out)) == 3
    assert last_status(out, out.order_id or 0) == ("expired", "no_liquidity")


def test_market_order_on_an_empty_book_expires(engine: Engine) -> None:
    out = ok(place(engine, 1, "buy", type="market", quantity=7))
    assert fills(out) == []
    assert last_status(out, 1) == ("expired", "no_liquidity")
    assert balance(engine, 1, "USDT") == (RICH, 0)


def test_market_buy_by_quantity_needs_the_walked_cost() -> None:
    engine = new_engine()
    fund(engine, 1)
    fund(engine, 2, usdt=703, doge=0)
    ok(place(engine, 1, "sell", price=100, quantity=5))
    ok(place(engine, 1, "sell", price=101, quantity=5))
    # 500 + 1 + 202 + 1 = 704 at the highest fee rate.
    out = place(engine, 2, "buy", type="market", quantity=7)
    assert (out.ok, out.code) == (False, "insufficient_balance")


def test_market_sell_by_quantity(engine: Engine) -> None:
    ok(place(engine, 1, "buy", price=100, quantity=5))
    ok(place(engine, 2, "buy", price=99, quantity=5))
    out = ok(place(engine, 3, "sell", type="market", quantity=7))
    assert [(f.price, f.quantity) for f in fills(out)] == [(100, 5), (99, 2)]
    assert balance(engine, 3, "USDT") == (RICH + 500 - 1 + 198 - 1, 0)
    assert balance(engine, 3, "DOGE") == (RICH - 7, 0)


def test_market_buy_by_quote_amount_spends_at_most_that_fees_included(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=100, quantity=5))
    ok(place(engine, 2, "sell", price=101, quantity=5))
    out = ok(place(engine, 3, "buy", type="market", quote_amount=800))
    assert [(f.price, f.quantity) for f in fills(out)] == [(100, 5), (101, 2)]
    assert last_status(out, 3) == ("filled", None)
    # 501 + 203 spent; 96 left could not buy another lot at 101 and is released.
    assert balance(engine, 3, "USDT") == (RICH - 704, 0)
    assert balance(engine, 3, "DOGE") == (RICH + 7, 0)


def test_market_buy_by_quote_amount_too_small_for_one_lot(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=20_000, quantity=5))
    out = ok(place(engine, 3, "buy", type="market", quote_amount=100))
    assert last_status(out, 2) == ("expired", "quote_amount_too_small")
    assert balance(engine, 3, "USDT") == (RICH, 0)


def _self_trade_setup(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=100, quantity=5))  # order 1: user 1's own
    ok(place(engine, 2, "sell", price=101, quantity=5))  # order 2


def test_stp_expire_taker_is_the_default(engine: Engine) -> None:
    _self_trade_setup(engine)
    out = ok(place(engine, 1, "buy", price=101, quantity=10))
    assert fills(out) == []
    assert last_status(out, 3) == ("expired", "self_trade")
    assert engine.depth("DOGE")[1:] == ([], [(100, 5), (101, 5)])
    assert balance(engine, 1, "USDT") == (RICH, 0)


def test_stp_expire_maker_removes_own_orders_and_goes_on(engine: Engine) -> None:
    _self_trade_setup(engine)
    out = ok(place(engine, 1, "buy", price=101, quantity=10, stp="expire_maker"))
    assert last_status(out, 1) == ("expired", "self_trade")
    assert [(f.maker_order_id, f.quantity) for f in fills(out)] == [(2, 5)]
    assert last_status(out, 3) == ("partially_filled", None)
    assert engine.depth("DOGE")[1:] == ([(101, 5)], [])
    assert balance(engine, 1, "DOGE") == (RICH + 5, 0)


def test_stp_expire_both(engine: Engine) -> None:
    _self_trade_setup(engine)
    out = ok(place(engine, 1, "buy", price=101, quantity=10, stp="expire_both"))
    assert fills(out) == []
    assert last_status(out, 1) == ("expired", "self_trade")
    assert last_status(out, 3) == ("expired", "self_trade")
    assert engine.depth("DOGE")[1:] == ([], [(101, 5)])


def test_stp_none_trades_with_itself_and_pays_both_fees(engine: Engine) -> None:
    _self_trade_setup(engine)
    out = ok(place(engine, 1, "buy", price=101, quantity=10, stp="none"))
    assert [(f.maker_user_id, f.taker_user_id) for f in fills(out)] == [(1, 1), (2, 1)]
    first = fills(out)[0]
    assert (first.maker_fee, first.taker_fee) == (1, 1)
    assert engine.balances(0)["USDT"].available == sum(
        f.maker_fee + f.taker_fee for f in fills(out)
    )


def test_cancel_releases_the_reservation(engine: Engine) -> None:
    ok(place(engine, 1, "buy", price=100, quantity=10, client_order_id="a-1"))
    out = ok(engine.execute(CancelOrder(1, 1), 2))
    [update] = updates(out)
    assert (update.status, update.reason, update.client_order_id) == (
        "canceled",
        "canceled_by_user",
        "a-1",
    )
    assert balance(engine, 1, "USDT") == (RICH, 0)
    assert engine.depth("DOGE") == (2, [], [])
    assert engine.order(1) is None
    again = engine.execute(CancelOrder(1, 1), 3)
    assert (again.ok, again.code) == (False, "order_not_open")


def test_cancel_of_another_users_order_looks_like_an_ended_one(engine: Engine) -> None:
    ok(place(engine, 1, "buy", price=100, quantity=10))
    out = engine.execute(CancelOrder(2, 1), 2)
    assert (out.ok, out.code) == (False, "order_not_open")
    out = engine.execute(CancelOrder(2, 99), 2)
    assert (out.ok, out.code) == (False, "unknown_order")
    assert engine.order(1) is not None


def test_cancel_all_by_symbol_and_everywhere(engine: Engine) -> None:
    ok(place(engine, 1, "buy", price=100, quantity=10))
    ok(place(engine, 1, "sell", price=200, quantity=10))
    ok(place(engine, 1, "sell", type="stop_market", stop_price=90, quantity=3))
    ok(place(engine, 2, "buy", price=99, quantity=2))
    out = ok(engine.execute(CancelAll(1, "PEPE"), 2))
    assert out.events == []
    out = ok(engine.execute(CancelAll(1, "DOGE"), 2))
    assert [u.order_id for u in updates(out)] == [1, 2, 3]
    assert engine.open_orders(1) == []
    assert [o.order_id for o in engine.open_orders(2)] == [4]
    assert balance(engine, 1, "USDT") == (RICH, 0)
    assert balance(engine, 1, "DOGE") == (RICH, 0)

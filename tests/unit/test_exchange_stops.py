"""Stop orders: reservation at placement, triggering, cascades and their order."""

import pytest
from exchange_helpers import RICH, balance, fills, fund, last_status, new_engine, ok, place, updates

from memetrade.domain.exchange import CancelOrder, Engine


@pytest.fixture
def engine() -> Engine:
    e = new_engine()
    for user in range(1, 8):
        fund(e, user)
    return e


def test_stop_limit_waits_with_funds_reserved_then_triggers(engine: Engine) -> None:
    out = ok(place(engine, 1, "buy", type="stop_limit", stop_price=105, price=106, quantity=5))
    assert last_status(out, 1) == ("new", None)
    assert balance(engine, 1, "USDT") == (RICH - 5 * 107, 5 * 107)
    [info] = engine.open_orders(1)
    assert (info.type, info.triggered, info.locked) == ("stop_limit", False, 535)
    assert engine.depth("DOGE")[1:] == ([], [])  # a waiting stop is not in the book

    ok(place(engine, 2, "sell", price=105, quantity=5))
    ok(place(engine, 2, "sell", price=106, quantity=5))
    out = ok(place(engine, 3, "buy", price=105, quantity=1))  # prints 105: triggers the stop
    statuses = [(u.order_id, u.status) for u in updates(out)]
    assert statuses.index((1, "triggered")) > statuses.index((4, "filled"))
    assert [(f.taker_order_id, f.price, f.quantity) for f in fills(out)] == [
        (4, 105, 1),
        (1, 105, 4),
        (1, 106, 1),
    ]
    assert last_status(out, 1) == ("filled", None)
    assert balance(engine, 1, "USDT")[1] == 0
    assert engine.last_price("DOGE") == 106


def test_triggered_stop_limit_rests_like_a_limit(engine: Engine) -> None:
    ok(place(engine, 1, "buy", type="stop_limit", stop_price=105, price=105, quantity=5))
    ok(place(engine, 2, "sell", price=105, quantity=1))
    ok(place(engine, 3, "buy", price=105, quantity=1))
    [info] = engine.open_orders(1)
    assert (info.triggered, info.status, info.remaining) == (True, "new", 5)
    assert engine.depth("DOGE")[1:] == ([(105, 5)], [])


def test_stop_that_would_trigger_at_once_is_refused(engine: Engine) -> None:
    ok(place(engine, 1, "sell", price=100, quantity=1))
    ok(place(engine, 2, "buy", price=100, quantity=1))
    assert engine.last_price("DOGE") == 100
    out = place(engine, 3, "buy", type="stop_market", stop_price=100, quote_amount=1000)
    assert (out.ok, out.code) == (False, "would_trigger")
    out = place(engine, 3, "sell", type="stop_market", stop_price=100, quantity=10)
    assert (out.ok, out.code) == (False, "would_trigger")
    ok(place(engine, 3, "sell", type="stop_market", stop_price=99, quantity=10))
    ok(place(engine, 3, "buy", type="stop_market", stop_price=101, quote_amount=1000))


def test_stop_cascade_within_one_command(engine: Engine) -> None:
    for price in (100, 95, 90):
        ok(place(engine, 1, "buy", price=price, quantity=5))
    ok(place(engine, 2, "sell", type="stop_market", stop_price=100, quantity=5))  # id 4
    ok(place(engine, 3, "sell", type="stop_market", stop_price=95, quantity=5))  # id 5
    out = ok(place(engine, 4, "sell", type="market", quantity=1))
    assert [(f.taker_order_id, f.price, f.quantity) for f in fills(out)] == [
        (6, 100, 1),
        (4, 100, 4),
        (4, 95, 1),
        (5, 95, 4),
        (5, 90, 1),
    ]
    assert last_status(out, 4) == ("filled", None)
    assert last_status(out, 5) == ("filled", None)
    assert engine.last_price("DOGE") == 90
    assert engine.depth("DOGE")[1:] == ([(90, 4)], [])


def test_stops_triggered_together_run_in_placement_order(engine: Engine) -> None:
    ok(place(engine, 1, "buy", price=100, quantity=10))
    ok(place(engine, 2, "sell", type="stop_market", stop_price=99, quantity=2))  # id 2
    ok(place(engine, 3, "sell", type="stop_market", stop_price=100, quantity=2))  # id 3
    ok(place(engine, 4, "sell", type="stop_limit", stop_price=100, price=100, quantity=2))
    out = ok(place(engine, 5, "sell", price=100, quantity=1))
    assert [f.taker_order_id for f in fills(out)] == [5, 3, 4]
    assert engine.open_orders(2)[0].triggered is False


def test_stop_market_buy_spends_its_reserved_quote_amount(engine: Engine) -> None:
    ok(place(engine, 1, "buy", type="stop_market", stop_price=101, quote_amount=1_000))
    assert balance(engine, 1, "USDT") == (RICH - 1_000, 1_000)
    ok(place(engine, 2, "sell", price=101, quantity=20))
    out = ok(place(engine, 3, "buy", price=101, quantity=1))
    [stop_fill] = [f for f in fills(out) if f.taker_order_id == 1]
    # 9 lots: 909 + ceil(1.818) = 911 <= 1000; 10 lots would cost 1012.
    assert (stop_fill.quantity, stop_fill.taker_fee) == (9, 2)
    assert balance(engine, 1, "USDT") == (RICH - 911, 0)


def test_canceling_a_stop_releases_it(engine: Engine) -> None:
    ok(place(engine, 1, "sell", type="stop_market", stop_price=90, quantity=7))
    assert balance(engine, 1, "DOGE") == (RICH - 7, 7)
    ok(engine.execute(CancelOrder(1, 1), 2))
    assert balance(engine, 1, "DOGE") == (RICH, 0)
    ok(place(engine, 2, "sell", price=90, quantity=2))
    out = ok(place(engine, 3, "buy", price=90, quantity=2))
    assert len(fills(out)) == 1

"""Every refusal code, and that a refused command changes nothing at all."""

from typing import Any

import pytest
from exchange_helpers import RICH, fund, new_engine, ok, place

from memetrade.domain.exchange import (
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    Engine,
    PlaceOrder,
    Withdraw,
)


@pytest.fixture
def engine() -> Engine:
    e = new_engine(max_open_orders=3)
    fund(e, 1)
    fund(e, 2, usdt=1_000, doge=5)  # 1_089 USDT after its sale below
    ok(place(e, 1, "sell", price=100, quantity=10))
    ok(place(e, 1, "buy", price=90, quantity=10))
    ok(place(e, 2, "sell", quantity=1, type="market"))  # last price 90; user 2 keeps 4 DOGE
    return e


def order(**fields: Any) -> PlaceOrder:
    fields.setdefault("user_id", 2)
    fields.setdefault("symbol", "DOGE")
    fields.setdefault("side", "buy")
    fields.setdefault("type", "limit")
    if fields["type"] == "limit":
        fields.setdefault("price", 95)
        fields.setdefault("quantity", 2)
    return PlaceOrder(**fields)


CASES: list[tuple[str, Command]] = [
    ("unknown_symbol", order(symbol="BTC")),
    ("unknown_symbol", CancelAll(1, "BTC")),
    ("invalid_user", order(user_id=0)),
    ("invalid_user", Deposit(0, "USDT", 5)),
    ("unknown_asset", Deposit(2, "BTC", 5)),
    ("invalid_quantity", Deposit(2, "USDT", 0)),
    ("invalid_quantity", Withdraw(2, "USDT", -1)),
    ("insufficient_balance", Withdraw(2, "USDT", 1_090)),
    ("insufficient_balance", Withdraw(3, "USDT", 1)),
    ("invalid_order", order(side="hold")),  # type: ignore[arg-type]
    ("invalid_order", order(type="iceberg")),  # type: ignore[arg-type]
    ("invalid_order", order(time_in_force="GTD")),  # type: ignore[arg-type]
    ("invalid_order", order(stp="maybe")),  # type: ignore[arg-type]
    ("invalid_order", order(price=None)),
    ("invalid_order", order(quote_amount=100)),
    ("invalid_order", order(stop_price=90)),
    ("invalid_order", order(post_only=True, time_in_force="IOC")),
    ("invalid_order", order(client_order_id="")),
    ("invalid_order", order(type="market", quantity=1, quote_amount=100)),
    ("invalid_order", order(type="market")),
    ("invalid_order", order(type="market", side="sell", quote_amount=100)),
    ("invalid_order", order(type="market", quantity=1, price=95)),
    ("invalid_order", order(type="market", quantity=1, time_in_force="FOK")),
    ("invalid_order", order(type="stop_market", quantity=1)),
    ("invalid_order", order(type="stop_market", stop_price=95, quantity=1)),
    ("invalid_order", order(type="stop_market", side="sell", stop_price=80, quote_amount=100)),
    ("invalid_order", order(type="stop_limit", stop_price=95, quantity=1)),
    (
        "invalid_order",
        order(type="stop_limit", stop_price=95, price=95, quantity=2, post_only=True),
    ),
    ("invalid_price", order(price=0)),
    ("invalid_price", order(price=-5)),
    ("invalid_price", order(type="stop_market", stop_price=0, quote_amount=100)),
    ("invalid_quantity", order(quantity=0)),
    ("invalid_quantity", order(type="market", quote_amount=-1)),
    ("invalid_quantity", order(quantity=2**63)),
    ("below_min_notional", order(price=95, quantity=1)),
    ("below_min_notional", order(type="market", quote_amount=99)),
    ("below_min_notional", order(type="stop_market", side="sell", stop_price=80, quantity=1)),
    ("insufficient_balance", order(price=95, quantity=12)),
    ("insufficient_balance", order(side="sell", price=95, quantity=5)),
    ("insufficient_balance", order(type="market", quote_amount=1_090)),
    ("insufficient_balance", order(user_id=3, price=95, quantity=2)),
    ("would_take", order(price=100, post_only=True)),
    ("would_take", order(side="sell", price=90, quantity=2, post_only=True)),
    ("would_trigger", order(type="stop_market", stop_price=90, quote_amount=100)),
    ("would_trigger", order(type="stop_market", side="sell", stop_price=91, quantity=2)),
    ("too_many_orders", order(user_id=1, price=95)),
    ("unknown_order", CancelOrder(2, 1_000)),
    ("order_not_open", CancelOrder(2, 1)),
    ("order_not_open", CancelOrder(1, 3)),
]


@pytest.mark.parametrize(("code", "command"), CASES)
def test_refused_command_changes_nothing(engine: Engine, code: str, command: Command) -> None:
    if code == "too_many_orders":
        ok(place(engine, 1, "buy", price=80, quantity=2))  # the third open order
    before = engine.state_hash()
    out = engine.execute(command, 10)
    assert (out.ok, out.code, out.events, out.order_id) == (False, code, [], None)
    assert out.message
    assert engine.state_hash() == before


def test_orders_that_cannot_rest_are_not_capped(engine: Engine) -> None:
    ok(place(engine, 1, "buy", price=80, quantity=2))
    assert len(engine.open_orders(1)) == 3
    ok(place(engine, 1, "buy", type="market", quantity=1))
    ok(place(engine, 1, "buy", price=80, quantity=2, time_in_force="IOC"))


def test_deposit_and_withdraw(engine: Engine) -> None:
    ok(engine.execute(Deposit(3, "PEPE", 7), 1))
    assert engine.balances(3)["PEPE"].available == 7
    ok(engine.execute(Withdraw(3, "PEPE", 7), 2))
    assert engine.balances(3)["PEPE"].available == 0
    fees = engine.balances(0)["USDT"].available
    assert fees > 0
    ok(engine.execute(Withdraw(0, "USDT", fees), 3))
    assert engine.balances(1)["USDT"].available < RICH

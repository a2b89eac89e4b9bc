"""Shared set-up for the exchange tests: one readable market and shorthand for commands.

DOGE/USDT with a price tick of 0.01 and a lot of 1 DOGE, so prices are cents, quantities are
whole coins and USDT balances are cents (``quote_decimals == 2``, one tick x one lot is one
quote unit). ``min_notional`` is 1 USDT (100). Standard fees: maker 10 bps, taker 20 bps.
"""

from typing import Any

from memetrade.domain.exchange import (
    Deposit,
    Engine,
    FeeSchedule,
    Fill,
    Market,
    OrderUpdate,
    Outcome,
    PlaceOrder,
    build_markets,
)
from memetrade.domain.exchange.fees import DEFAULT_FEE_SCHEDULE
from memetrade.domain.symbols import SymbolSpec

MARKETS: tuple[Market, ...] = build_markets([SymbolSpec("DOGE", 2, 0), SymbolSpec("PEPE", 2, 0)])
RICH = 10**12


def new_engine(
    schedule: FeeSchedule = DEFAULT_FEE_SCHEDULE, max_open_orders: int = 1_000
) -> Engine:
    return Engine(MARKETS, schedule, max_open_orders)


def fund(engine: Engine, user: int, usdt: int = RICH, doge: int = RICH, ts: int = 0) -> None:
    for asset, amount in (("USDT", usdt), ("DOGE", doge)):
        if amount:
            assert engine.execute(Deposit(user, asset, amount), ts).ok


def place(engine: Engine, user: int, side: str, ts: int = 1, **fields: Any) -> Outcome:
    fields.setdefault("symbol", "DOGE")
    fields.setdefault("type", "limit")
    return engine.execute(PlaceOrder(user, side=side, **fields), ts)  # type: ignore[arg-type]


def ok(outcome: Outcome) -> Outcome:
    assert outcome.ok, (outcome.code, outcome.message)
    return outcome


def fills(outcome: Outcome) -> list[Fill]:
    return [e for e in outcome.events if isinstance(e, Fill)]


def updates(outcome: Outcome, order_id: int | None = None) -> list[OrderUpdate]:
    return [
        e
        for e in outcome.events
        if isinstance(e, OrderUpdate) and (order_id is None or e.order_id == order_id)
    ]


def last_status(outcome: Outcome, order_id: int) -> tuple[str, str | None]:
    update = updates(outcome, order_id)[-1]
    return update.status, update.reason


def balance(engine: Engine, user: int, asset: str) -> tuple[int, int]:
    info = engine.balances(user).get(asset)
    return (0, 0) if info is None else (info.available, info.locked)

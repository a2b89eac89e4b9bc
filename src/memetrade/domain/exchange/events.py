"""Events: what a command changed. They become bus messages, WebSocket payloads and SQL rows,
so their tags and field names are stable. Every event carries the command's ``ts`` (epoch ms).
"""

from typing import Literal

import msgspec

from memetrade.domain.exchange.commands import (
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

__all__ = [
    "BalanceInfo",
    "BalanceUpdate",
    "BookLevelChange",
    "BookSide",
    "Event",
    "Fill",
    "OrderInfo",
    "OrderStatus",
    "OrderUpdate",
    "Outcome",
]

OrderStatus = Literal[
    "new", "partially_filled", "filled", "canceled", "expired", "rejected", "triggered"
]
BookSide = Literal["bid", "ask"]


class _Event(msgspec.Struct, frozen=True, tag_field="event"):
    pass


class OrderUpdate(_Event, frozen=True, tag="order"):
    """An order's state after a change. An incoming order reports once, after matching:
    ``new`` or ``partially_filled`` if it rests, else how it ended (so its first update may
    already be ``filled`` or ``expired``); a stop reports ``new`` when placed and ``triggered``
    when its price is reached; a resting order reports each fill and its end.

    ``filled`` and ``remaining`` are lots (``remaining`` is 0 for a buy by ``quote_amount``,
    whose size is not known in lots); ``cum_quote`` is the notional filled so far (quote units;
    the average price is ``cum_quote / filled``) and ``cum_fee`` the fees paid on it.
    ``reason`` says why an order ended early: ``self_trade``, ``no_liquidity``,
    ``fok_not_filled``, ``ioc``, ``canceled_by_user``.
    """

    order_id: int
    user_id: int
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    price: int | None
    stop_price: int | None
    quantity: int | None
    filled: int
    remaining: int
    cum_quote: int
    cum_fee: int
    reason: str | None
    client_order_id: str | None
    ts: int


class Fill(_Event, frozen=True, tag="fill"):
    """One trade between a resting (maker) and an incoming (taker) order.

    Both fees are in ``fee_asset`` (the quote asset), in quote units.
    """

    trade_id: int
    symbol: str
    price: int
    quantity: int
    quote_amount: int
    taker_side: Side
    maker_order_id: int
    taker_order_id: int
    maker_user_id: int
    taker_user_id: int
    maker_fee: int
    taker_fee: int
    fee_asset: str
    ts: int


class BalanceUpdate(_Event, frozen=True, tag="balance"):
    """A balance after the command changed it (one per user and asset touched). The fee
    collector's balance (user 0) is reported only for its own withdrawals: fills change it
    all the time, and each ``Fill`` carries its fees."""

    user_id: int
    asset: str
    available: int
    locked: int
    ts: int


class BookLevelChange(_Event, frozen=True, tag="book"):
    """A price level's new total quantity (0: the level is gone).

    ``update_id`` counts book changes per symbol (1, 2, 3, ...); ``Engine.depth`` returns the
    last one, so a depth stream can start from a snapshot and apply later changes exactly.
    """

    symbol: str
    side: BookSide
    price: int
    quantity: int
    update_id: int
    ts: int


Event = OrderUpdate | Fill | BalanceUpdate | BookLevelChange


class Outcome(msgspec.Struct, frozen=True):
    """The result of one command: ``ok`` with its events, or a refusal (``code`` is
    machine-readable, ``message`` for people) that changed nothing."""

    ok: bool
    events: list[Event]
    order_id: int | None = None
    code: str | None = None
    message: str | None = None


class OrderInfo(msgspec.Struct, frozen=True):
    """An open order, as the queries return it. ``triggered`` is False for a stop order still
    waiting for its stop price."""

    order_id: int
    user_id: int
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    price: int | None
    stop_price: int | None
    quantity: int | None
    quote_amount: int | None
    filled: int
    remaining: int
    cum_quote: int
    cum_fee: int
    locked: int
    time_in_force: TimeInForce
    post_only: bool
    stp: SelfTradePrevention
    triggered: bool
    client_order_id: str | None
    ts: int


class BalanceInfo(msgspec.Struct, frozen=True):
    available: int
    locked: int

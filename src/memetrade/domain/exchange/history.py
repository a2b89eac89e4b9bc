"""Order history and fills as users query them: the records the history store keeps, projected
from ``OrderUpdate`` and ``Fill`` events. Plain data; storing them lives in ``adapters/``.
"""

from typing import Final, Literal

import msgspec

from memetrade.domain.exchange.commands import OrderType, Side
from memetrade.domain.exchange.events import OrderStatus

__all__ = [
    "ENDED_STATUSES",
    "OPEN_STATUSES",
    "FillRecord",
    "FillRole",
    "OrderRecord",
    "StatusFilter",
]

# ``triggered``: a stop order whose stop price was reached, now working as a market or limit
# order; a stop still waiting for its price is ``new``.
OPEN_STATUSES: Final[tuple[OrderStatus, ...]] = ("new", "partially_filled", "triggered")
ENDED_STATUSES: Final[tuple[OrderStatus, ...]] = ("filled", "canceled", "expired", "rejected")

StatusFilter = Literal["open", "ended", "all"]
FillRole = Literal["maker", "taker"]


class OrderRecord(msgspec.Struct, frozen=True):
    """An order's last known state: the fields of its newest ``OrderUpdate``, with the time of
    its first one (``created_at``, when it was placed) and of its newest (``updated_at``)."""

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
    created_at: int
    updated_at: int


class FillRecord(msgspec.Struct, frozen=True):
    """One user's side of a ``Fill``: the order of theirs it filled, the side that order was on,
    whether it rested (``maker``) or came in (``taker``), and the fee it paid in ``fee_asset``.

    A trade between two orders of one user (self-trade prevention ``none``) is two records,
    one per role."""

    trade_id: int
    user_id: int
    order_id: int
    symbol: str
    side: Side
    role: FillRole
    price: int
    quantity: int
    quote_amount: int
    fee: int
    fee_asset: str
    ts: int

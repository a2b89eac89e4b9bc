"""Simulated market participants: what a market maker quotes and what a taker sends, as
exchange commands. The decisions only; the asyncio driver that submits them lives in
``services/market_sim.py``.

Pure: state comes in (fair price, inventory, open orders, balances, the model's tape), commands
go out. Integers only: prices in ticks, quantities in lots, balances in asset units.

* **Makers** quote a ladder of post-only GTC limit orders, ``levels`` a side, ``step_ticks``
  apart, the best ones ``half_spread_ticks`` from a centre. The centre is the fair price
  rounded to a multiple of ``step_ticks``, so every price a maker quotes lies on one fixed grid:
  when the fair price moves by a step, one order per side is cancelled and one placed, instead
  of the whole ladder. Inventory skews the centre by whole steps (a long maker lowers both
  sides to sell more and buy less) and, past ``inventory_limit``, it stops quoting the side
  that would take it further. An order more than half filled is replaced at full size.
* **Takers** replay the tape of the market model (``domain/market_model.py``) as orders: a
  lone trade becomes a market order of its side and size; a sweep (trades of one millisecond,
  side and symbol) becomes one IOC limit order a little past the sweep's worst price. Sizes
  are capped so that one whale does not empty the book.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from memetrade.domain.exchange.commands import (
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    Side,
)
from memetrade.domain.exchange.events import BalanceInfo, OrderInfo
from memetrade.domain.exchange.markets import Market
from memetrade.domain.exchange.validation import MAX_UNITS
from memetrade.domain.trades import Side as TradeSide
from memetrade.domain.trades import Trade

__all__ = [
    "MakerParams",
    "Quote",
    "maker_commands",
    "maker_params",
    "quote_ladder",
    "taker_orders",
    "top_ups",
]

_BPS = 10_000


@dataclass(frozen=True, slots=True)
class Quote:
    """One order a maker wants resting: ``price`` ticks, ``quantity`` lots."""

    side: Side
    price: int
    quantity: int


@dataclass(frozen=True, slots=True)
class MakerParams:
    """One maker's ladder. ``target_inventory`` and ``inventory_limit`` are lots of base; the
    skew reaches ``max_skew_steps`` steps at ``inventory_limit`` lots away from the target."""

    levels: int
    half_spread_ticks: int
    step_ticks: int
    quantity: int
    target_inventory: int
    inventory_limit: int
    max_skew_steps: int

    def __post_init__(self) -> None:
        for name in ("levels", "half_spread_ticks", "step_ticks", "quantity", "inventory_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.target_inventory < 0 or self.max_skew_steps < 0:
            raise ValueError("target_inventory and max_skew_steps must not be negative")


def maker_params(
    market: Market,
    price: int,
    *,
    half_spread_bps: int,
    step_bps: int,
    level_notional: int,
    levels: int,
    ladders_held: int = 20,
    max_skew_steps: int = 3,
) -> MakerParams:
    """Params for quoting ``market`` around ``price`` ticks: spreads and steps as basis points
    of the price (at least one tick), each level worth about ``level_notional`` quote units (and
    at least the market's minimum), and a target inventory of ``ladders_held`` full sides."""
    if price < 1 or level_notional < 1 or half_spread_bps < 1 or step_bps < 1:
        raise ValueError("price, level_notional and the spreads must be positive")
    per_lot = market.notional(price, 1)
    notional = max(level_notional, market.min_notional)
    quantity = max(1, -(-notional // per_lot))
    target = ladders_held * levels * quantity
    return MakerParams(
        levels=levels,
        half_spread_ticks=max(1, price * half_spread_bps // _BPS),
        step_ticks=max(1, price * step_bps // _BPS),
        quantity=quantity,
        target_inventory=target,
        inventory_limit=max(1, target // 2),
        max_skew_steps=max_skew_steps,
    )


def quote_ladder(fair: int, inventory: int, params: MakerParams) -> list[Quote]:
    """The orders a maker holding ``inventory`` lots of base wants around ``fair`` ticks: bids
    best first, then asks best first. Prices below one tick are left out."""
    p = params
    excess = inventory - p.target_inventory
    # Whole steps, truncated toward zero so that a small imbalance either way moves nothing.
    steps = min(p.max_skew_steps, p.max_skew_steps * abs(excess) // p.inventory_limit)
    skew = -steps if excess > 0 else steps
    centre = ((2 * fair + p.step_ticks) // (2 * p.step_ticks) + skew) * p.step_ticks
    quotes: list[Quote] = []
    if excess < p.inventory_limit:
        for i in range(p.levels):
            price = centre - p.half_spread_ticks - i * p.step_ticks
            if price >= 1:
                quotes.append(Quote("buy", price, p.quantity))
    if -excess < p.inventory_limit:
        for i in range(p.levels):
            price = centre + p.half_spread_ticks + i * p.step_ticks
            quotes.append(Quote("sell", price, p.quantity))
    return quotes


def maker_commands(
    user_id: int, symbol: str, desired: Sequence[Quote], resting: Sequence[OrderInfo]
) -> list[Command]:
    """Cancel/replace: the commands that turn the maker's ``resting`` orders in ``symbol`` into
    ``desired``. Cancels come first, so that their funds are free for the new orders.

    A resting limit order is kept when it has a desired quote's side and price and more than
    half of its quantity left; everything else is cancelled, and desired quotes left unmatched
    are placed.
    """
    wanted: dict[tuple[Side, int], int] = {}
    for quote in desired:
        wanted[(quote.side, quote.price)] = quote.quantity
    cancels: list[Command] = []
    for order in resting:
        key: tuple[Side, int] = (order.side, order.price or 0)
        quantity = wanted.get(key)
        if order.type == "limit" and quantity is not None and 2 * order.remaining > quantity:
            del wanted[key]
        else:
            cancels.append(CancelOrder(user_id, order.order_id))
    places: list[Command] = [
        PlaceOrder(user_id, symbol, side, "limit", quantity=quantity, price=price, post_only=True)
        for (side, price), quantity in wanted.items()
    ]
    return cancels + places


def taker_orders(
    tape: Sequence[Trade], users: Sequence[int], max_quantity: int, reach_ticks: int
) -> list[Command]:
    """The orders behind ``tape`` (sorted by time), sent by ``users`` in turn, each at most
    ``max_quantity`` lots. A sweep's IOC limit reaches ``reach_ticks`` past its worst printed
    price: the model prints near its mid, the makers quote a spread around it."""
    if not users or max_quantity < 1 or reach_ticks < 0:
        raise ValueError("takers need users, a positive size cap and a reach of 0 or more")
    orders: list[Command] = []
    i = 0
    while i < len(tape):
        first = tape[i]
        j, quantity = i + 1, first.amount
        while j < len(tape) and _same_order(first, tape[j]):
            quantity += tape[j].amount
            j += 1
        side: Side = "buy" if first.side is TradeSide.BUY else "sell"
        user = users[len(orders) % len(users)]
        quantity = min(quantity, max_quantity)
        if j - i == 1:
            orders.append(PlaceOrder(user, first.symbol, side, "market", quantity=quantity))
        else:
            last = tape[j - 1].price
            worst = last + reach_ticks if side == "buy" else max(1, last - reach_ticks)
            orders.append(
                PlaceOrder(
                    user,
                    first.symbol,
                    side,
                    "limit",
                    quantity=quantity,
                    price=worst,
                    time_in_force="IOC",
                )
            )
        i = j
    return orders


def _same_order(a: Trade, b: Trade) -> bool:
    return a.ts == b.ts and a.side is b.side and a.symbol == b.symbol


def top_ups(
    user_id: int, balances: Mapping[str, BalanceInfo], targets: Mapping[str, int]
) -> list[Command]:
    """Deposits bringing each asset of ``targets`` back to its target once the user holds less
    than half of it (available and locked together); none while above. One deposit is capped
    at the engine's largest amount."""
    deposits: list[Command] = []
    for asset, target in targets.items():
        held = balances.get(asset)
        total = 0 if held is None else held.available + held.locked
        if 2 * total < target:
            deposits.append(Deposit(user_id, asset, min(target - total, MAX_UNITS)))
    return deposits

"""The exchange's live streams: order-book diffs per symbol and each user's own events,
published to the hub once the journal has made the command that caused them durable.

Depth. Every accepted command reports each price level it touched once, with the level's new
total and consecutive ``update_id`` s per symbol (``domain/exchange/matching.py``). One
command becomes one diff per symbol it touched, ``U`` (its first update id) to ``u`` (its
last), so a stream's diffs chain with ``U == previous u + 1``. The engine runs ahead of the
journal (commands execute before their batch is written), so a snapshot read from the engine
may hold changes whose diff is not published yet. A subscriber instead gets its snapshot from
the book as published (``depth``): a mirror of the levels, changed only by the published
diffs, so its ``lastUpdateId`` is exactly the last ``u`` sent on the topic and the first diff
it receives after subscribing (in the same synchronous step) starts at ``lastUpdateId + 1``.

User streams. A command's ``OrderUpdate``, ``Fill`` and ``BalanceUpdate`` events go, as one
publication, to the topic of each user they concern and to nobody else: a fill to its maker
as ``role: "maker"`` with the maker fee and to its taker as ``"taker"`` with the taker fee.
Messages are encoded only for topics someone listens to, once for all of its subscribers.

Wire values: prices, quantities and amounts are exact decimal strings in the market's (or the
asset's) units; ``null`` where the order has none (a market order's price).
"""

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from memetrade.domain.exchange.events import (
    BalanceUpdate,
    BookLevelChange,
    Event,
    Fill,
    OrderInfo,
    OrderUpdate,
)
from memetrade.domain.exchange.markets import Market
from memetrade.domain.numbers import format_units
from memetrade.services.exchange import ExchangeService
from memetrade.services.hub import Hub

__all__ = [
    "DepthDiff",
    "DepthSink",
    "ExchangeStreams",
    "depth_diff_json",
    "depth_topic",
    "levels_json",
    "user_snapshot_json",
    "user_topic",
]

Levels = list[tuple[int, int]]
"""``(price ticks, total lots)`` per level, best first; a total of 0 removes the level."""

_encode = msgspec.json.encode


def depth_topic(symbol: str) -> str:
    return f"depth:{symbol}"


def user_topic(user_id: int) -> str:
    return f"user:{user_id}"


class DepthDiff(msgspec.Struct, frozen=True):
    """The levels one command changed in one book: update ids ``first_id..last_id``."""

    symbol: str
    first_id: int
    last_id: int
    bids: Levels
    asks: Levels
    ts: int


class DepthSink(Protocol):
    def on_depth(self, diff: DepthDiff) -> None:
        """Called with every published diff, in order; must not block."""
        ...


def levels_json(market: Market, levels: Levels) -> list[list[str]]:
    return [[market.price_text(p), market.quantity_text(q)] for p, q in levels]


def depth_diff_json(market: Market, diff: DepthDiff) -> str:
    """The native diff: Binance's ``depthUpdate`` shape with the native symbol name."""
    return _encode(
        {
            "e": "depthUpdate",
            "E": diff.ts,
            "s": diff.symbol,
            "U": diff.first_id,
            "u": diff.last_id,
            "b": levels_json(market, diff.bids),
            "a": levels_json(market, diff.asks),
        }
    ).decode()


class _Mirror:
    """One book's levels as published: price -> total, per side."""

    __slots__ = ("asks", "bids", "last_id")

    def __init__(self, last_id: int, bids: Levels, asks: Levels) -> None:
        self.last_id = last_id
        self.bids = dict(bids)
        self.asks = dict(asks)


def _apply(side: dict[int, int], price: int, quantity: int) -> None:
    if quantity:
        side[price] = quantity
    else:
        side.pop(price, None)


class ExchangeStreams:
    """An exchange listener publishing depth diffs and user events to the hub."""

    def __init__(self, hub: Hub, service: ExchangeService) -> None:
        self._hub = hub
        self._service = service
        self._markets = service.markets
        self._mirrors: dict[str, _Mirror] = {}
        self._sinks: list[DepthSink] = []

    def add_depth_sink(self, sink: DepthSink) -> None:
        self._sinks.append(sink)

    @property
    def markets(self) -> dict[str, Market]:
        return self._markets

    def sync(self) -> None:
        """Mirror the engine's books. Call once recovery is over and before any new command:
        only then does the engine hold exactly the published state (diffs replayed before it
        are already in what it copies, and are not published)."""
        engine = self._service.engine
        for symbol in self._markets:
            last_id, bids, asks = engine.depth(symbol, limit=2**62)
            self._mirrors[symbol] = _Mirror(last_id, bids, asks)

    def depth(self, symbol: str, limit: int) -> tuple[int, Levels, Levels]:
        """``(lastUpdateId, bids, asks)`` of the book as published, ``limit`` levels a side
        best first; raise ``KeyError`` for a symbol the exchange does not trade."""
        mirror = self._mirrors[symbol]
        bids = sorted(mirror.bids.items(), reverse=True)[:limit]
        asks = sorted(mirror.asks.items())[:limit]
        return mirror.last_id, bids, asks

    # -- ExchangeListener -----------------------------------------------------------------------

    def on_exchange_events(self, seq: int, events: Sequence[Event]) -> None:
        changes: dict[str, list[BookLevelChange]] = {}
        by_user: dict[int, list[str]] = {}
        hub = self._hub
        for event in events:
            kind = type(event)
            if kind is BookLevelChange:
                assert isinstance(event, BookLevelChange)
                changes.setdefault(event.symbol, []).append(event)
            elif kind is OrderUpdate:
                assert isinstance(event, OrderUpdate)
                if hub.has_subscribers(user_topic(event.user_id)):
                    by_user.setdefault(event.user_id, []).append(self._order_json(event))
            elif kind is Fill:
                assert isinstance(event, Fill)
                for user_id, role in (
                    (event.maker_user_id, "maker"),
                    (event.taker_user_id, "taker"),
                ):
                    if hub.has_subscribers(user_topic(user_id)):
                        by_user.setdefault(user_id, []).append(self._fill_json(event, role))
            elif kind is BalanceUpdate:
                assert isinstance(event, BalanceUpdate)
                if hub.has_subscribers(user_topic(event.user_id)):
                    by_user.setdefault(event.user_id, []).append(self._balance_json(event))
        for symbol, levels in changes.items():
            self._publish_depth(symbol, levels)
        for user_id, messages in by_user.items():
            hub.publish_many(user_topic(user_id), messages)

    async def flush(self) -> None:
        """Nothing to store: what was published is gone to the clients."""

    # -- depth ----------------------------------------------------------------------------------

    def _publish_depth(self, symbol: str, levels: list[BookLevelChange]) -> None:
        mirror = self._mirrors.get(symbol)
        if mirror is None:
            # Replayed during recovery, before ``sync``: the copy taken then includes it.
            return
        bids: Levels = []
        asks: Levels = []
        for change in levels:
            if change.side == "bid":
                _apply(mirror.bids, change.price, change.quantity)
                bids.append((change.price, change.quantity))
            else:
                _apply(mirror.asks, change.price, change.quantity)
                asks.append((change.price, change.quantity))
        mirror.last_id = levels[-1].update_id
        diff = DepthDiff(
            symbol, levels[0].update_id, levels[-1].update_id, bids, asks, levels[0].ts
        )
        topic = depth_topic(symbol)
        if self._hub.has_subscribers(topic):
            self._hub.publish(topic, depth_diff_json(self._markets[symbol], diff))
        for sink in self._sinks:
            sink.on_depth(diff)

    # -- user events ----------------------------------------------------------------------------

    def _order_json(self, order: OrderUpdate) -> str:
        fields = _order_fields(self._markets[order.symbol], order)
        return _encode({"e": "order", **fields, "reason": order.reason}).decode()

    def _fill_json(self, fill: Fill, role: str) -> str:
        market = self._markets[fill.symbol]
        taker = role == "taker"
        side = fill.taker_side if taker else ("sell" if fill.taker_side == "buy" else "buy")
        return _encode(
            {
                "e": "fill",
                "s": fill.symbol,
                "trade_id": fill.trade_id,
                "order_id": fill.taker_order_id if taker else fill.maker_order_id,
                "side": side,
                "role": role,
                "price": market.price_text(fill.price),
                "quantity": market.quantity_text(fill.quantity),
                "quote_amount": market.quote_text(fill.quote_amount),
                "fee": market.quote_text(fill.taker_fee if taker else fill.maker_fee),
                "fee_asset": fill.fee_asset,
                "ts": fill.ts,
            }
        ).decode()

    def _balance_json(self, balance: BalanceUpdate) -> str:
        decimals = self._service.engine.asset_decimals(balance.asset)
        return _encode(
            {
                "e": "balance",
                "asset": balance.asset,
                "available": format_units(balance.available, decimals),
                "locked": format_units(balance.locked, decimals),
                "ts": balance.ts,
            }
        ).decode()


def _order_fields(market: Market, order: OrderUpdate | OrderInfo) -> dict[str, Any]:
    def price(ticks: int | None) -> str | None:
        return None if ticks is None else market.price_text(ticks)

    return {
        "s": order.symbol,
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "side": order.side,
        "type": order.type,
        "status": order.status,
        "price": price(order.price),
        "stop_price": price(order.stop_price),
        "quantity": None if order.quantity is None else market.quantity_text(order.quantity),
        "filled": market.quantity_text(order.filled),
        "remaining": market.quantity_text(order.remaining),
        "cum_quote": market.quote_text(order.cum_quote),
        "cum_fee": market.quote_text(order.cum_fee),
        "ts": order.ts,
    }


def user_snapshot_json(service: ExchangeService, user_id: int) -> str:
    """What a new user-stream subscriber gets first: its balances and open orders now. The
    engine may be ahead of the events published so far; events that follow then repeat
    states the snapshot already shows, and as every event carries a whole state (not a
    change), applying them again leaves the same result."""
    engine = service.engine
    balances = {
        asset: {
            "available": format_units(b.available, engine.asset_decimals(asset)),
            "locked": format_units(b.locked, engine.asset_decimals(asset)),
        }
        for asset, b in engine.balances(user_id).items()
    }
    orders = [
        _order_fields(service.markets[o.symbol], o) | {"reason": None}
        for o in engine.open_orders(user_id)
    ]
    return _encode(
        {"e": "snapshot", "user_id": user_id, "balances": balances, "open_orders": orders}
    ).decode()

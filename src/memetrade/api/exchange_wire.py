"""The exchange's wire format: order requests in, orders, fills, balances, depth and markets
out, as JSON with every number a decimal string (``"0.000001234"``) so no float touches money.

Amounts are parsed exactly in the market's steps: a price off the tick is 400
``price_off_tick``, a quantity off the lot 400 ``quantity_off_lot``, text that is not a number
400 ``invalid_number``. What the engine then refuses is 422 with its own code (``refusal``).
"""

from typing import Any, Final

import msgspec

from memetrade.api.errors import ApiError
from memetrade.domain.exchange.commands import (
    OrderType,
    PlaceOrder,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from memetrade.domain.exchange.events import (
    BalanceInfo,
    Fill,
    OrderInfo,
    OrderStatus,
    OrderUpdate,
    Outcome,
)
from memetrade.domain.exchange.fees import FeeSchedule
from memetrade.domain.exchange.history import FillRecord, FillRole, OrderRecord
from memetrade.domain.exchange.markets import Market
from memetrade.domain.numbers import format_units, parse_units

__all__ = [
    "SCHEMA_COMPONENTS",
    "BalanceOut",
    "BalancesOut",
    "DepthOut",
    "MarketsOut",
    "OrderIn",
    "OrderOut",
    "OrdersOut",
    "PlacedOut",
    "TradeOut",
    "TradesOut",
    "TransferIn",
    "TransferOut",
    "amount_units",
    "balance_out",
    "body_schema",
    "fee_tiers_out",
    "market_out",
    "order_out",
    "place_order",
    "refusal",
    "trade_from_fill",
    "trade_from_record",
]

# Decimals enough for any number a client can mean: a value that parses with these but not in
# the market's step is a well-formed number off the step (400 ``*_off_tick``), anything else is
# not a number at all.
_ANY_DECIMALS: Final = 60

# Refusals that are not "the exchange will not do this order" (422) but a missing thing or a
# state conflict.
_REFUSAL_STATUS: Final = {"unknown_symbol": 404, "unknown_order": 404, "order_not_open": 409}

Number = str | int


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/v1/orders``: amounts as decimal strings (integers are accepted too)."""

    symbol: str
    side: Side
    type: OrderType
    quantity: Number | None = None
    quote_amount: Number | None = None
    price: Number | None = None
    stop_price: Number | None = None
    time_in_force: TimeInForce = "GTC"
    post_only: bool = False
    stp: SelfTradePrevention = "expire_taker"
    client_order_id: str | None = None


class TransferIn(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/v1/admin/deposit`` and ``/withdraw``."""

    user_id: int
    asset: str
    amount: Number


class OrderOut(msgspec.Struct):
    """An order's state. ``avg_price`` is ``cum_quote / filled`` rounded to the quote asset's
    unit (null before a fill); ``fee`` is what the order has paid, in ``fee_asset``."""

    order_id: int
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    price: str | None
    stop_price: str | None
    quantity: str | None
    filled: str
    remaining: str
    cum_quote: str
    avg_price: str | None
    fee: str
    fee_asset: str
    reason: str | None
    created_at: int | None
    updated_at: int | None


class TradeOut(msgspec.Struct):
    """One fill of one of the caller's orders: as ``maker`` (resting) or ``taker``."""

    trade_id: int
    order_id: int
    symbol: str
    side: Side
    role: FillRole
    price: str
    quantity: str
    quote_amount: str
    fee: str
    fee_asset: str
    time: int


class PlacedOut(msgspec.Struct):
    order: OrderOut
    fills: list[TradeOut]


class OrdersOut(msgspec.Struct):
    orders: list[OrderOut]


class TradesOut(msgspec.Struct):
    trades: list[TradeOut]


class BalanceOut(msgspec.Struct):
    asset: str
    available: str
    locked: str
    total: str


class BalancesOut(msgspec.Struct):
    balances: list[BalanceOut]


class TransferOut(msgspec.Struct):
    user_id: int
    balance: BalanceOut


class DepthOut(msgspec.Struct):
    """Price levels ``[price, quantity]``, best first; ``lastUpdateId`` numbers book changes."""

    symbol: str
    # Binance's name, which depth clients know.
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class MarketOut(msgspec.Struct):
    symbol: str
    base: str
    quote: str
    tick_size: str
    lot_size: str
    min_notional: str


class FeeTierOut(msgspec.Struct):
    """A fee tier from ``min_volume`` (quote asset, 30 days); rates as fractions (0.001)."""

    name: str
    min_volume: str
    maker_rate: str
    taker_rate: str


class MarketsOut(msgspec.Struct):
    markets: list[MarketOut]
    fee_tiers: list[FeeTierOut]


_REF: Final = "#/components/schemas/{name}"
_, SCHEMA_COMPONENTS = msgspec.json.schema_components(
    [
        OrderIn,
        TransferIn,
        PlacedOut,
        OrderOut,
        OrdersOut,
        TradesOut,
        BalancesOut,
        TransferOut,
        DepthOut,
        MarketsOut,
    ],
    ref_template=_REF,
)


# -- input ----------------------------------------------------------------------------------------


def _units(value: Number | None, decimals: int, name: str, off_step: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_units(value, decimals, name)
    except ValueError as exc:
        try:
            parse_units(value, _ANY_DECIMALS, name)
        except ValueError:
            raise ApiError(400, "invalid_number", str(exc)) from None
        raise ApiError(400, off_step, str(exc)) from None


def place_order(body: OrderIn, market: Market, user_id: int) -> PlaceOrder:
    """The engine's command for ``body``, amounts in ticks, lots and quote units."""
    price_decimals = market.price_decimals
    return PlaceOrder(
        user_id,
        market.symbol,
        body.side,
        body.type,
        _units(body.quantity, market.amount_decimals, "quantity", "quantity_off_lot"),
        _units(body.quote_amount, market.quote_decimals, "quote_amount", "quote_amount_off_unit"),
        _units(body.price, price_decimals, "price", "price_off_tick"),
        _units(body.stop_price, price_decimals, "stop_price", "price_off_tick"),
        body.time_in_force,
        body.post_only,
        body.stp,
        body.client_order_id,
    )


def amount_units(amount: Number, decimals: int) -> int:
    """A transfer amount in the asset's units; 400 when off its unit or not a number."""
    units = _units(amount, decimals, "amount", "amount_off_unit")
    assert units is not None
    return units


def refusal(outcome: Outcome) -> ApiError:
    """The API error for a refused command: 422 with the engine's code, except the codes
    that mean a missing thing (404) or a state conflict (409)."""
    code = outcome.code or "refused"
    return ApiError(_REFUSAL_STATUS.get(code, 422), code, outcome.message or code)


# -- output ---------------------------------------------------------------------------------------


def _price(market: Market, ticks: int | None) -> str | None:
    return None if ticks is None else market.price_text(ticks)


def _avg_price(market: Market, cum_quote: int, filled: int) -> str | None:
    if not filled:
        return None
    # Quote units per whole base unit, rounded half up: exact integers all the way.
    per_base = cum_quote * 10**market.amount_decimals
    return market.quote_text((2 * per_base + filled) // (2 * filled))


def order_out(
    market: Market, order: OrderUpdate | OrderInfo | OrderRecord, *, placing: bool = False
) -> OrderOut:
    """An order from the engine (``OrderInfo``, ``OrderUpdate``) or from the history;
    ``placing``: the update is of the command that placed it, so its time is the order's."""
    created: int | None
    updated: int | None
    if isinstance(order, OrderRecord):
        created, updated, reason = order.created_at, order.updated_at, order.reason
    elif isinstance(order, OrderInfo):
        created, updated, reason = order.ts, None, None
    else:
        created, updated, reason = order.ts if placing else None, order.ts, order.reason
    quantity = order.quantity
    return OrderOut(
        order.order_id,
        order.client_order_id,
        order.symbol,
        order.side,
        order.type,
        order.status,
        _price(market, order.price),
        _price(market, order.stop_price),
        None if quantity is None else market.quantity_text(quantity),
        market.quantity_text(order.filled),
        market.quantity_text(order.remaining),
        market.quote_text(order.cum_quote),
        _avg_price(market, order.cum_quote, order.filled),
        market.quote_text(order.cum_fee),
        market.quote,
        reason,
        created,
        updated,
    )


def trade_from_fill(market: Market, fill: Fill, side: Side) -> TradeOut:
    """The taker's side of ``fill`` (an order just placed takes; it never rests first)."""
    return TradeOut(
        fill.trade_id,
        fill.taker_order_id,
        fill.symbol,
        side,
        "taker",
        market.price_text(fill.price),
        market.quantity_text(fill.quantity),
        market.quote_text(fill.quote_amount),
        market.quote_text(fill.taker_fee),
        fill.fee_asset,
        fill.ts,
    )


def trade_from_record(market: Market, record: FillRecord) -> TradeOut:
    return TradeOut(
        record.trade_id,
        record.order_id,
        record.symbol,
        record.side,
        record.role,
        market.price_text(record.price),
        market.quantity_text(record.quantity),
        market.quote_text(record.quote_amount),
        market.quote_text(record.fee),
        record.fee_asset,
        record.ts,
    )


def balance_out(asset: str, decimals: int, cell: BalanceInfo | None) -> BalanceOut:
    available, locked = (0, 0) if cell is None else (cell.available, cell.locked)
    return BalanceOut(
        asset,
        format_units(available, decimals),
        format_units(locked, decimals),
        format_units(available + locked, decimals),
    )


def market_out(market: Market) -> MarketOut:
    return MarketOut(
        market.symbol,
        market.base,
        market.quote,
        format_units(1, market.price_decimals),
        format_units(1, market.amount_decimals),
        market.quote_text(market.min_notional),
    )


def fee_tiers_out(schedule: FeeSchedule) -> list[FeeTierOut]:
    return [
        FeeTierOut(
            tier.name,
            str(tier.min_volume),
            format_units(tier.maker_bps, 4),
            format_units(tier.taker_bps, 4),
        )
        for tier in schedule.tiers
    ]


def body_schema(name: str) -> dict[str, Any]:
    """An OpenAPI JSON body of the schema component ``name`` (one of the Structs above)."""
    return {"content": {"application/json": {"schema": {"$ref": _REF.format(name=name)}}}}

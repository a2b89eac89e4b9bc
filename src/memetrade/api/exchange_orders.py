"""Trading over HTTP: place and cancel orders, the caller's open orders, order history, fills
("my trades") and balances. Every route authenticates the caller and counts against their rate
limit (``CurrentPrincipal``); every order and cancel is written to the audit log.

Open orders come from the engine (always current). Ended orders and fills come from the history
store, read after it has caught up with every command answered so far, so a caller always finds
what they just did.

Someone else's order answers exactly like an order that never existed (404 ``unknown_order``):
ids reveal nothing about other users. Only the caller's own ended order is 409
``order_not_open``.
"""

from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from memetrade.api.auth_routes import CurrentPrincipal
from memetrade.api.context import AppContext, context
from memetrade.api.errors import ApiError
from memetrade.api.exchange_deps import (
    asset_names,
    audit,
    body,
    exchange,
    history,
    json_response,
    market,
    submit,
)
from memetrade.api.exchange_wire import (
    BalancesOut,
    OrderIn,
    OrderOut,
    OrdersOut,
    PlacedOut,
    TradesOut,
    balance_out,
    body_schema,
    order_out,
    place_order,
    trade_from_fill,
    trade_from_record,
)
from memetrade.api.params import limit_param, time_param
from memetrade.domain.exchange.commands import CancelAll, CancelOrder
from memetrade.domain.exchange.events import Fill, OrderUpdate
from memetrade.domain.exchange.history import StatusFilter
from memetrade.services.auth import Principal

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["exchange"])

_HISTORY_LIMIT: Final = 1000
_STATUSES: Final[tuple[StatusFilter, ...]] = ("open", "ended", "all")


def _symbol(ctx: AppContext, request: Request) -> str | None:
    symbol = request.query_params.get("symbol") or None
    if symbol is not None:
        market(exchange(ctx), symbol)
    return symbol


def _unknown(order_id: int) -> ApiError:
    return ApiError(404, "unknown_order", f"you have no order {order_id}")


@router.post(
    "/orders",
    status_code=201,
    openapi_extra={"requestBody": {"required": True, **body_schema("OrderIn")}},
    responses={201: body_schema("PlacedOut")},
)
async def place(request: Request, principal: CurrentPrincipal) -> Response:
    """Place an order: 201 ``{"order", "fills"}`` once it is durable, with the fills it made
    as taker. 400 ``price_off_tick``, ``quantity_off_lot``, ``invalid_number``; 404
    ``unknown_symbol``; 422 with the exchange's code (``insufficient_balance``,
    ``below_min_notional``, ``would_take``, ``would_trigger``, ``invalid_order``, ...).
    A refused order changes nothing."""
    ctx = context(request)
    service = exchange(ctx)
    parsed = await body(request, OrderIn)
    try:
        pair = market(service, parsed.symbol)
        outcome = await submit(ctx, place_order(parsed, pair, principal.user_id))
    except ApiError as exc:
        ctx.metrics.orders_refused.labels(exc.code).inc()
        await audit(request, principal, "order_refused", symbol=parsed.symbol, code=exc.code)
        raise
    order_id = outcome.order_id
    updates = [e for e in outcome.events if type(e) is OrderUpdate and e.order_id == order_id]
    fills = [e for e in outcome.events if type(e) is Fill and e.taker_order_id == order_id]
    state: OrderUpdate | None = updates[-1] if updates else None
    assert state is not None  # The engine reports every order it accepts.
    ctx.metrics.orders_accepted.labels(parsed.type).inc()
    await audit(
        request,
        principal,
        "order_placed",
        order_id=order_id,
        symbol=parsed.symbol,
        side=parsed.side,
        type=parsed.type,
        status=state.status,
    )
    placed = PlacedOut(
        order_out(pair, state, placing=True),
        [trade_from_fill(pair, fill, parsed.side) for fill in fills],
    )
    return json_response(placed, 201)


async def _own_ended(ctx: AppContext, principal: Principal, order_id: int) -> OrderOut | None:
    """The caller's order ``order_id`` from the history, None if they have none by that id."""
    store = history(ctx)
    await store.synced()
    record = await store.store.order(principal.user_id, order_id)
    if record is None:
        return None
    return order_out(exchange(ctx).markets[record.symbol], record)


@router.delete("/orders/{order_id}", responses={200: body_schema("OrderOut")})
async def cancel(request: Request, order_id: int, principal: CurrentPrincipal) -> Response:
    """Cancel one of the caller's open orders: the order as canceled. 404 ``unknown_order``
    (no such order of the caller's), 409 ``order_not_open`` (it has ended)."""
    ctx = context(request)
    service = exchange(ctx)
    open_order = service.engine.order(order_id)
    if open_order is None or open_order.user_id != principal.user_id:
        if open_order is None and await _own_ended(ctx, principal, order_id) is not None:
            raise ApiError(409, "order_not_open", f"order {order_id} is not open")
        raise _unknown(order_id)
    outcome = await submit(ctx, CancelOrder(principal.user_id, order_id))
    await audit(request, principal, "order_canceled", order_id=order_id)
    state = next(e for e in outcome.events if type(e) is OrderUpdate and e.order_id == order_id)
    return json_response(order_out(service.markets[state.symbol], state))


@router.delete("/orders", responses={200: body_schema("OrdersOut")})
async def cancel_all(request: Request, principal: CurrentPrincipal) -> Response:
    """Cancel every open order of the caller (stops included), or those of ``symbol``:
    ``{"orders"}``, the orders canceled."""
    ctx = context(request)
    service = exchange(ctx)
    symbol = _symbol(ctx, request)
    outcome = await submit(ctx, CancelAll(principal.user_id, symbol))
    canceled = [e for e in outcome.events if type(e) is OrderUpdate]
    await audit(
        request,
        principal,
        "orders_canceled",
        symbol=symbol,
        order_ids=[order.order_id for order in canceled],
    )
    out = [order_out(service.markets[order.symbol], order) for order in canceled]
    return json_response(OrdersOut(out))


@router.get("/orders/history", responses={200: body_schema("OrdersOut")})
async def order_history(request: Request, principal: CurrentPrincipal) -> Response:
    """The caller's orders, ended ones included, newest first: filters ``symbol``,
    ``status`` (``open``, ``ended``, ``all``), ``startTime``/``endTime`` (placed at, epoch ms
    or ISO 8601, inclusive), ``limit`` (default 100, at most 1000) and ``before`` (an order
    id: the page after the one that ended with it)."""
    ctx = context(request)
    service = exchange(ctx)
    query = request.query_params
    symbol = _symbol(ctx, request)
    status = query.get("status", "all")
    if status not in _STATUSES:
        raise ApiError(400, "invalid_status", f"status must be one of {', '.join(_STATUSES)}")
    before = query.get("before")
    if before is not None and not before.isdigit():
        raise ApiError(400, "invalid_order_id", f"before {before!r} is not an order id")
    store = history(ctx)
    await store.synced()
    records = await store.store.orders(
        principal.user_id,
        symbol=symbol,
        status=status,
        start=time_param("startTime", query.get("startTime")),
        end=time_param("endTime", query.get("endTime")),
        before=None if before is None else int(before),
        limit=limit_param(query.get("limit"), 100, _HISTORY_LIMIT),
    )
    out = [order_out(service.markets[record.symbol], record) for record in records]
    return json_response(OrdersOut(out))


@router.get("/orders/{order_id}", responses={200: body_schema("OrderOut")})
async def get_order(request: Request, order_id: int, principal: CurrentPrincipal) -> Response:
    """One of the caller's orders, open or ended. 404 ``unknown_order``."""
    ctx = context(request)
    service = exchange(ctx)
    open_order = service.engine.order(order_id)
    if open_order is not None:
        if open_order.user_id != principal.user_id:
            raise _unknown(order_id)
        return json_response(order_out(service.markets[open_order.symbol], open_order))
    ended = await _own_ended(ctx, principal, order_id)
    if ended is None:
        raise _unknown(order_id)
    return json_response(ended)


@router.get("/orders", responses={200: body_schema("OrdersOut")})
async def open_orders(request: Request, principal: CurrentPrincipal) -> Response:
    """The caller's open orders (stops waiting for their price included), oldest first;
    ``symbol`` filters."""
    ctx = context(request)
    service = exchange(ctx)
    symbol = _symbol(ctx, request)
    orders = service.engine.open_orders(principal.user_id, symbol)
    return json_response(OrdersOut([order_out(service.markets[o.symbol], o) for o in orders]))


@router.get("/my-trades", responses={200: body_schema("TradesOut")})
async def my_trades(request: Request, principal: CurrentPrincipal) -> Response:
    """The caller's fills, as maker or taker, with the fee each paid: filters ``symbol``,
    ``startTime``/``endTime`` (inclusive), ``limit`` (default 500, at most 1000), ``fromId``
    (trade id: the first ``limit`` from it, oldest first; without it the newest ``limit``)."""
    ctx = context(request)
    service = exchange(ctx)
    query = request.query_params
    symbol = _symbol(ctx, request)
    from_id = query.get("fromId")
    if from_id is not None and not from_id.isdigit():
        raise ApiError(400, "invalid_trade_id", f"fromId {from_id!r} is not a trade id")
    store = history(ctx)
    await store.synced()
    records = await store.store.fills(
        principal.user_id,
        symbol=symbol,
        start=time_param("startTime", query.get("startTime")),
        end=time_param("endTime", query.get("endTime")),
        from_id=None if from_id is None else int(from_id),
        limit=limit_param(query.get("limit"), 500, _HISTORY_LIMIT),
    )
    out = [trade_from_record(service.markets[record.symbol], record) for record in records]
    return json_response(TradesOut(out))


@router.get("/balances", responses={200: body_schema("BalancesOut")})
async def balances(request: Request, principal: CurrentPrincipal) -> Response:
    """Every asset of the exchange with the caller's ``available``, ``locked`` (held by open
    orders) and ``total``, zero included."""
    service = exchange(context(request))
    engine = service.engine
    held = engine.balances(principal.user_id)
    out = [
        balance_out(asset, engine.asset_decimals(asset), held.get(asset))
        for asset in asset_names(service)
    ]
    return json_response(BalancesOut(out))

"""Moving money in and out of the exchange (admins only): deposits and withdrawals of any
user, each written to the audit log with the admin as actor."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from memetrade.api.auth_routes import CurrentPrincipal
from memetrade.api.context import AppContext, context
from memetrade.api.errors import ApiError
from memetrade.api.exchange_deps import audit, body, exchange, json_response, submit
from memetrade.api.exchange_wire import (
    TransferIn,
    TransferOut,
    amount_units,
    balance_out,
    body_schema,
)
from memetrade.domain.exchange.commands import Deposit, Withdraw
from memetrade.domain.numbers import format_units
from memetrade.services.auth import AuthService, Principal

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

_BODY = {"requestBody": {"required": True, **body_schema("TransferIn")}}
_ANSWER: dict[int | str, dict[str, Any]] = {200: body_schema("TransferOut")}


async def _transfer(
    request: Request, principal: Principal, kind: type[Deposit] | type[Withdraw]
) -> Response:
    ctx: AppContext = context(request)
    AuthService.require_admin(principal)
    service = exchange(ctx)
    transfer = await body(request, TransferIn)
    try:
        decimals = service.engine.asset_decimals(transfer.asset)
    except KeyError:
        raise ApiError(404, "unknown_asset", f"unknown asset {transfer.asset!r}") from None
    units = amount_units(transfer.amount, decimals)
    assert ctx.auth is not None  # CurrentPrincipal needs accounts.
    if await ctx.auth.store.user_by_id(transfer.user_id) is None:
        raise ApiError(404, "unknown_user", f"there is no user {transfer.user_id}")
    await submit(ctx, kind(transfer.user_id, transfer.asset, units))
    action = "deposit" if kind is Deposit else "withdraw"
    await audit(
        request,
        principal,
        action,
        user_id=transfer.user_id,
        asset=transfer.asset,
        amount=format_units(units, decimals),
    )
    cell = service.engine.balances(transfer.user_id).get(transfer.asset)
    return json_response(TransferOut(transfer.user_id, balance_out(transfer.asset, decimals, cell)))


@router.post("/deposit", openapi_extra=_BODY, responses=_ANSWER)
async def deposit(request: Request, principal: CurrentPrincipal) -> Response:
    """Credit ``amount`` of ``asset`` to ``user_id``: ``{"user_id", "balance"}``. 403 for
    non-admins; 404 ``unknown_asset``, ``unknown_user``; 400 ``amount_off_unit``."""
    return await _transfer(request, principal, Deposit)


@router.post("/withdraw", openapi_extra=_BODY, responses=_ANSWER)
async def withdraw(request: Request, principal: CurrentPrincipal) -> Response:
    """Debit ``amount`` of ``asset`` from ``user_id``'s available balance: ``{"user_id",
    "balance"}``. 422 ``insufficient_balance`` beyond what is available."""
    return await _transfer(request, principal, Withdraw)

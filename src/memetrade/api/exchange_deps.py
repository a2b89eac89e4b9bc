"""What the exchange's routes share: reaching the services, reading bodies, submitting a
command with its metrics, and the audit log."""

import time
from typing import Any, Final, TypeVar

import msgspec
from fastapi import Request
from starlette.responses import Response

from memetrade.api.context import AppContext
from memetrade.api.errors import ApiError
from memetrade.api.exchange_wire import refusal
from memetrade.domain.exchange.commands import Command
from memetrade.domain.exchange.events import Fill, Outcome
from memetrade.domain.exchange.markets import Market
from memetrade.services.auth import AuthService, Principal
from memetrade.services.exchange import ExchangeService
from memetrade.services.exchange_history_feed import ExchangeHistory

__all__ = [
    "asset_names",
    "audit",
    "body",
    "exchange",
    "history",
    "json_response",
    "market",
    "submit",
]

_MAX_BODY: Final = 16 * 1024
_S = TypeVar("_S")


def exchange(ctx: AppContext) -> ExchangeService:
    if ctx.exchange is None:
        raise ApiError(404, "not_found", "the exchange is not served by this process")
    return ctx.exchange


def history(ctx: AppContext) -> ExchangeHistory:
    if ctx.history is None:
        raise ApiError(404, "not_found", "the exchange is not served by this process")
    return ctx.history


def asset_names(service: ExchangeService) -> list[str]:
    """Every asset the exchange holds balances in, sorted."""
    markets = service.markets.values()
    return sorted({m.quote for m in markets} | {m.base for m in markets})


def market(service: ExchangeService, symbol: str) -> Market:
    found = service.markets.get(symbol)
    if found is None:
        raise ApiError(404, "unknown_symbol", f"unknown symbol {symbol!r}")
    return found


async def body(request: Request, kind: type[_S]) -> _S:
    """The JSON body as ``kind``: 413 when too large, 400 ``malformed_json``, 422
    ``invalid_request`` when fields are missing or of the wrong type."""
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise ApiError(413, "body_too_large", f"body is larger than {_MAX_BODY} bytes")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def json_response(content: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(content), status_code=status, media_type="application/json")


async def submit(ctx: AppContext, command: Command) -> Outcome:
    """Submit ``command``, timed from submit until durable; raise the API error of a refusal."""
    started = time.perf_counter()
    outcome = await exchange(ctx).submit(command)
    metrics = ctx.metrics
    metrics.command_seconds.labels(type(command).__name__).observe(time.perf_counter() - started)
    if not outcome.ok:
        raise refusal(outcome)
    fills = sum(1 for event in outcome.events if type(event) is Fill)
    if fills:
        metrics.fills.inc(fills)
    return outcome


async def audit(request: Request, principal: Principal, action: str, **detail: Any) -> None:
    """Write ``action`` by the caller to the audit log."""
    auth = request.app.state.ctx.auth
    assert isinstance(auth, AuthService)  # Routes with a principal exist only with accounts.
    ip = request.client.host if request.client is not None else None
    await auth.record(principal.user_id, action, ip, **detail)

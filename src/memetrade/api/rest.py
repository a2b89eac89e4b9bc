"""REST routes: health, metrics, symbols and candle history in both seed dialects."""

import asyncio

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from memetrade.api.context import AppContext, Ctx
from memetrade.api.errors import ApiError
from memetrade.api.params import limit_param, time_param
from memetrade.api.wire import candle_json
from memetrade.domain.intervals import INTERVALS, parse_interval
from memetrade.services.market_data import MAX_KLINES

__all__ = ["router"]

router = APIRouter()

_INTERVAL_HELP = "One of " + ", ".join(i.name for i in INTERVALS)


def _json(body: bytes | str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


@router.get("/health", response_class=PlainTextResponse, tags=["operations"])
async def health() -> PlainTextResponse:
    """Liveness: ``OK`` while the process serves requests."""
    return PlainTextResponse("OK")


# A check that hangs (a pool waiting for a connection to a server that is gone) must not hang
# the probe: load balancers and orchestrators time out in a few seconds and want an answer.
READY_TIMEOUT_S = 2.0


@router.get("/ready", tags=["operations"])
async def ready(ctx: Ctx) -> Response:
    """Readiness: 200 when storage (and the bus, in scale-out roles) answers, 503 otherwise."""
    checks = ctx.ready_checks or (("storage", ctx.store.ping),)
    for name, check in checks:
        try:
            await asyncio.wait_for(check(), READY_TIMEOUT_S)
        except TimeoutError:
            message = f"{name} did not answer within {READY_TIMEOUT_S:g} s"
            raise ApiError(503, "not_ready", message) from None
        except Exception as exc:
            raise ApiError(503, "not_ready", f"{name} is not reachable: {exc}") from exc
    return _json(b'{"status":"ready"}')


@router.get("/metrics", tags=["operations"])
async def metrics(ctx: Ctx) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/api/v1/symbols", tags=["market data"])
async def symbols(ctx: Ctx) -> Response:
    """The symbols served, with their tick and lot sizes and the candle intervals."""
    items = [
        {
            "symbol": spec.name,
            "tick_size": spec.tick_size,
            "lot_size": spec.lot_size,
            "intervals": [interval.name for interval in INTERVALS],
        }
        for spec in ctx.market.specs.values()
    ]
    return _json(msgspec.json.encode({"symbols": items}))


async def _klines(
    ctx: AppContext,
    symbol: str,
    interval: str | None,
    limit: str | None,
    start: str | None = None,
    end: str | None = None,
) -> Response:
    market = ctx.market
    spec = market.spec(symbol.upper())
    iv = parse_interval("1m" if interval is None else interval)  # "interval=" is an error
    count = limit_param(limit, 100, MAX_KLINES)
    first, last = time_param("from", start), time_param("to", end)
    if first is not None and last is not None and first > last:
        raise ApiError(400, "invalid_range", "from must not be after to")
    key = (spec.name, iv.name, count, first, last)
    book = market.books[spec.name]
    cached = ctx.klines_cache.get(key, book.seq(iv))
    if cached is None:
        candles, seq = await market.klines(spec.name, iv, count, first, last)
        open_t = book.open_time(iv)
        data = ",".join(candle_json(spec, iv, c, c.open_time < open_t) for c in candles)
        body = f'{{"symbol":"{spec.name}","interval":"{iv.name}","seq":{seq},"data":[{data}]}}'
        cached = body.encode(), len(candles)
        ctx.klines_cache.put(key, seq, *cached)
    ctx.metrics.candles_served.inc(cached[1])
    return _json(cached[0])


def _query_docs(*params: tuple[str, str]) -> dict[str, object]:
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": description,
            }
            for name, description in params
        ]
    }


_INTERVAL_DOC = ("interval", _INTERVAL_HELP + " (default 1m).")
_LIMIT_DOC = ("limit", f"Candles, 1..{MAX_KLINES} (default 100).")
_FROM_DOC = ("from", "First open time: epoch ms or ISO 8601 (inclusive).")
_TO_DOC = ("to", "Last open time: epoch ms or ISO 8601 (inclusive).")

# The klines routes read their query themselves (documented through ``openapi_extra``): they
# are the hottest routes, and FastAPI's per-parameter validation cost them a fifth of their
# throughput against a route without parameters.


@router.get(
    "/api/klines/{symbol}",
    tags=["market data"],
    openapi_extra=_query_docs(_INTERVAL_DOC, _LIMIT_DOC),
)
async def klines_seed000(ctx: Ctx, symbol: str, request: Request) -> Response:
    """The most recent candles, oldest first, the open one included (seed 000 dialect)."""
    query = request.query_params
    return await _klines(ctx, symbol, query.get("interval"), query.get("limit"))


@router.get(
    "/api/v1/klines/{symbol}",
    tags=["market data"],
    openapi_extra=_query_docs(_INTERVAL_DOC, _LIMIT_DOC, _FROM_DOC, _TO_DOC),
)
async def klines_v1(ctx: Ctx, symbol: str, request: Request) -> Response:
    """Candles, oldest first. With ``from``: the first ``limit`` from it; otherwise the last
    ``limit`` up to ``to`` (default: now, the open candle included). Intervals without trades
    are flat candles at the previous close with zero volume."""
    query = request.query_params
    return await _klines(
        ctx, symbol, query.get("interval"), query.get("limit"), query.get("from"), query.get("to")
    )

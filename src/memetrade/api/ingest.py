"""``POST /internal/trades``: durable, idempotent trade ingest (seed 000's ingest endpoint)."""

import asyncio
import hmac
from collections.abc import Coroutine
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from memetrade.api.context import context
from memetrade.api.errors import ApiError
from memetrade.api.wire import TradeIn, trade_from_wire
from memetrade.domain.errors import InvalidTrade
from memetrade.domain.trades import Trade
from memetrade.ports import StorageUnavailable
from memetrade.services.market_data import IngestResult

__all__ = ["MAX_BODY_BYTES", "MAX_TRADES", "router"]

router = APIRouter()

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_TRADES = 50_000
# How long a request waits for its trades to be stored. While the store is unreachable the
# writer keeps retrying; the client gets a 503 instead of a hung request, and its retry is
# deduplicated by trade id whether or not the first attempt was stored in the end.
STORE_WAIT_S = 10.0

_decoder = msgspec.json.Decoder(TradeIn | list[TradeIn])

(_SCHEMA,), SCHEMA_COMPONENTS = msgspec.json.schema_components(
    [TradeIn | list[TradeIn]], ref_template="#/components/schemas/{name}"
)


def _authorize(request: Request, token: str | None) -> None:
    if token is None:
        raise ApiError(
            403,
            "ingest_disabled",
            "ingest is disabled: start the server with INGEST_TOKEN=<secret> "
            "(or --ingest-token) and send 'Authorization: Bearer <secret>'",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong 'Authorization: Bearer' token")


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"body is larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, request: Request) -> list[Trade]:
    try:
        decoded = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_trade", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    items = decoded if isinstance(decoded, list) else [decoded]
    if len(items) > MAX_TRADES:
        raise ApiError(413, "too_many_trades", f"at most {MAX_TRADES} trades per request")
    specs = context(request).market.specs
    trades, problems = [], []
    for index, item in enumerate(items):
        try:
            trades.append(trade_from_wire(specs, item))
        except InvalidTrade as exc:
            problems.append({"index": index, "code": exc.code, "message": exc.message})
    if problems:
        raise ApiError(
            422,
            "invalid_trade",
            f"{len(problems)} of {len(items)} trades are invalid; nothing was stored",
            problems,
        )
    return trades


@router.post(
    "/internal/trades",
    tags=["ingest"],
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _SCHEMA}}}
    },
)
async def ingest_trades(request: Request) -> Response:
    """Ingest one trade or an array of trades. Requires ``Authorization: Bearer
    $INGEST_TOKEN``. All or nothing: a batch with any invalid trade stores none. Answers
    ``{"accepted", "duplicates"}`` only once the accepted trades are durably stored; a trade
    id seen before counts as a duplicate and changes nothing, so retries are safe."""
    ctx = context(request)
    _authorize(request, ctx.settings.ingest_token)
    trades = _parse(await _read_body(request), request)
    result = await _within_store_wait((ctx.ingest_sink or ctx.market).ingest(trades))
    if result.rejected:
        details = [
            {"index": r.index, "code": r.code, "message": r.message}
            for r in sorted(result.rejected, key=lambda r: r.index)
        ]
        raise ApiError(
            422,
            "invalid_trade",
            f"{len(details)} of {len(trades)} trades were refused; nothing was stored",
            details,
        )
    body = msgspec.json.encode({"accepted": result.accepted, "duplicates": result.duplicates})
    return Response(body, media_type="application/json")


async def _within_store_wait(ingest: Coroutine[Any, Any, IngestResult]) -> IngestResult:
    task = asyncio.ensure_future(ingest)
    # The ingest runs on after a timeout (its trades may be stored later): collect its outcome
    # so a late failure is not reported as never retrieved.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    try:
        return await asyncio.wait_for(asyncio.shield(task), STORE_WAIT_S)
    except TimeoutError:
        raise StorageUnavailable(
            f"the trades were not stored within {STORE_WAIT_S:g} s; retry"
        ) from None

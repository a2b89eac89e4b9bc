"""WebSocket routes: live trades and live candles.

Close codes (with a human-readable reason):

* 1013 the server holds ``MAX_CONNECTIONS`` connections; retry later
* 4404 unknown symbol or interval
* 4400 a bad query parameter
* 4008 the client read too slowly and fell too far behind its trade stream
* 1011 the history behind ``?indicators=`` could not be read (storage failed)
* 1012 the server is shutting down or restarting (sent by uvicorn on SIGTERM/SIGINT)
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState
from uvicorn.protocols.utils import ClientDisconnected

from memetrade.api.context import AppContext
from memetrade.api.market_streams import parse_indicator_list, serve_klines_with_indicators
from memetrade.api.streams import kline_message, kline_topic, trade_topic
from memetrade.api.ws_protocol import DIRECT_SEND, DirectSend
from memetrade.domain.candles import CandleUpdate
from memetrade.domain.errors import DomainError
from memetrade.domain.intervals import parse_interval
from memetrade.services.hub import Subscriber, TooSlow

__all__ = ["CLOSE_BAD_REQUEST", "CLOSE_NOT_FOUND", "CLOSE_TOO_SLOW", "router"]

router = APIRouter()

CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400
CLOSE_TOO_SLOW = 4008
CLOSE_AT_CAPACITY = 1013
# How long a close may wait for the client to read what is queued before it.
CLOSE_TIMEOUT_S = 10.0


def _ctx(websocket: WebSocket) -> AppContext:
    ctx = websocket.app.state.ctx
    assert isinstance(ctx, AppContext)
    return ctx


async def _drain_client(websocket: WebSocket) -> None:
    # Clients have nothing to say on these streams; reading notices when they leave.
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _pump(websocket: WebSocket, subscriber: Subscriber, direct: DirectSend | None) -> None:
    while True:
        for text, frame in await subscriber.next_batch():
            if direct is not None:
                await direct.write(frame)
            else:
                await websocket.send_text(text)


async def _serve(websocket: WebSocket, topic: str, first: list[str]) -> None:
    await through_gate(websocket, lambda: _serve_admitted(websocket, topic, first))


async def through_gate(websocket: WebSocket, serve: Callable[[], Awaitable[None]]) -> None:
    """Run ``serve`` holding a place under a MAX_CONNECTIONS shared by every API instance
    (REDIS_URL), or refuse the connection with 1013 when none is free; without a shared gate,
    just run it (the hub caps this instance's connections)."""
    ctx = _ctx(websocket)
    gate = ctx.connection_gate
    if gate is None:
        await serve()
        return
    if not await gate.acquire():
        reason = f"service at capacity ({ctx.settings.max_connections} connections)"
        await _refuse(websocket, CLOSE_AT_CAPACITY, reason)
        return
    try:
        await serve()
    finally:
        await gate.release()


async def accept_subscriber(websocket: WebSocket) -> Subscriber | None:
    """Accept the connection and register it with the hub; when the hub holds
    ``MAX_CONNECTIONS`` already, close it with 1013 and return None."""
    ctx = _ctx(websocket)
    subscriber = ctx.hub.connect()
    await websocket.accept()
    if subscriber is None:
        await websocket.close(
            CLOSE_AT_CAPACITY, f"server at capacity ({ctx.hub.max_connections} connections)"
        )
    return subscriber


async def _serve_admitted(websocket: WebSocket, topic: str, first: list[str]) -> None:
    ctx = _ctx(websocket)
    subscriber = await accept_subscriber(websocket)
    if subscriber is None:
        return
    try:
        ctx.hub.subscribe(subscriber, topic)
        for message in first:
            await websocket.send_text(message)
        # Only now: what was published meanwhile is queued, and goes out after ``first``.
        direct: DirectSend | None = websocket.scope["extensions"].get(DIRECT_SEND)
        if direct is not None:
            subscriber.enable_direct(direct.try_write)
        error = await run_connection(websocket, subscriber, _drain_client(websocket), direct)
        if error is not None:
            raise error
    except (WebSocketDisconnect, ClientDisconnected, OSError):
        pass
    finally:
        ctx.hub.disconnect(subscriber)


async def run_connection(
    websocket: WebSocket,
    subscriber: Subscriber,
    reader: Coroutine[Any, Any, None],
    direct: DirectSend | None,
) -> BaseException | None:
    """Run ``reader`` (the client's side), the pump of ``subscriber`` and a watch on its
    backlog until one of them ends, then stop the others. A client that fell too far behind is
    closed here with 4008, and a disconnect ends quietly; any other error of a finished task
    is returned for the caller to map."""
    ctx = _ctx(websocket)
    tasks = (
        asyncio.create_task(reader),
        asyncio.create_task(_pump(websocket, subscriber, direct)),
        # The pump may be stuck in a send for as long as the client does not read: watch the
        # backlog separately, so such a client is cut off (and its place freed) when it
        # overflows, not whenever it reads again.
        overflow := asyncio.create_task(subscriber.overflowed()),
    )
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if overflow in done:
        ctx.hub.disconnect(subscriber)
        reason = f"too slow: more than {ctx.hub.max_backlog} messages behind"
        await _close(websocket, CLOSE_TOO_SLOW, reason)
        return None
    for task in done:
        error = task.exception()
        if isinstance(error, TooSlow):
            await _close(websocket, CLOSE_TOO_SLOW, f"too slow: {error}")
        elif error is not None and not isinstance(
            error, WebSocketDisconnect | ClientDisconnected | OSError
        ):
            return error
    return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state != WebSocketState.DISCONNECTED:
        # The close frame queues behind data the client has not read yet; a client that
        # never reads again must not hold this task forever (the server then drops the TCP
        # connection once its buffers drain, or at the ping timeout).
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await websocket.close(code, reason)


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.accept()
    await _close(websocket, code, reason)


async def _trades(websocket: WebSocket, symbol: str) -> None:
    ctx = _ctx(websocket)
    try:
        spec = ctx.market.spec(symbol.upper())
    except DomainError as exc:
        await _refuse(websocket, CLOSE_NOT_FOUND, exc.message)
        return
    await _serve(websocket, trade_topic(spec.name), [])


@router.websocket("/ws/transactions/{symbol}")
async def ws_transactions(websocket: WebSocket, symbol: str) -> None:
    """Live trades of ``symbol`` (seed 001)."""
    await _trades(websocket, symbol)


@router.websocket("/ws/klines/{symbol}/{interval}")
async def ws_klines(websocket: WebSocket, symbol: str, interval: str) -> None:
    """Live candle updates: the open candle on every change, and a final ``closed`` update
    when each interval ends. ``?closed_only=1`` sends closed candles only;
    ``?indicators=sma20,rsi14`` adds each candle's indicator values."""
    ctx = _ctx(websocket)
    try:
        spec = ctx.market.spec(symbol.upper())
        iv = parse_interval(interval)
    except DomainError as exc:
        await _refuse(websocket, CLOSE_NOT_FOUND, exc.message)
        return
    flag = websocket.query_params.get("closed_only", "0")
    if flag not in ("0", "1", "true", "false"):
        await _refuse(websocket, CLOSE_BAD_REQUEST, "closed_only must be 1 or 0")
        return
    closed_only = flag in ("1", "true")
    if "indicators" in websocket.query_params:
        # The same stream with each candle's indicator values (api/market_streams.py).
        try:
            wanted = parse_indicator_list(websocket.query_params["indicators"])
        except DomainError as exc:
            await _refuse(websocket, CLOSE_BAD_REQUEST, exc.message)
            return
        await serve_klines_with_indicators(websocket, ctx, spec, iv, wanted, closed_only, _serve)
        return
    first: list[str] = []
    book = ctx.market.books[spec.name]
    if not closed_only:
        # The current state, so a client has the open candle before its first change.
        open_t = book.open_time(iv)
        current = book.candles(iv, open_t, open_t) if open_t >= 0 else []
        if current:
            update = CandleUpdate(spec.name, iv, current[0], False, book.seq(iv))
            first.append(kline_message(spec, update))
    await _serve(websocket, kline_topic(spec.name, iv, closed_only), first)


@router.websocket("/ws/{symbol}")
async def ws_trades(websocket: WebSocket, symbol: str) -> None:
    """Live trades of ``symbol`` (seed 000)."""
    await _trades(websocket, symbol)

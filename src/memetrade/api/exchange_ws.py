"""The exchange's native WebSocket streams: ``/ws/depth/{symbol}`` and ``/ws/user``.

``/ws/depth/{symbol}[?limit=100]``: first ``{"e":"depthSnapshot","s","lastUpdateId","bids",
"asks"}`` (``limit`` levels a side, 1..1000, best first, as ``[price, quantity]`` strings),
then ``{"e":"depthUpdate","E","s","U","u","b","a"}`` diffs, one per command that changed the
book: the first has ``U == lastUpdateId + 1`` and each next ``U`` is the previous ``u + 1``
(``services/exchange_streams.py``), so a client that sees a gap knows it missed something.

``/ws/user``: the caller's own events. Credentials, tried in this order: ``X-API-Key``,
``Authorization: Bearer``, the session cookie (only from a page of this server: a cookie
sent with another ``Origin`` is refused, so no other site can open a stream as its visitor),
and ``?token=<session token>`` for browser clients that cannot set headers. First
``{"e":"snapshot","user_id","balances","open_orders"}``, then ``order``, ``fill`` and
``balance`` events as commands become durable. The credentials are checked again every
``CREDENTIAL_RECHECK_S`` seconds: a signed-out or expired token, a revoked key or a disabled
account closes the stream (4401, 4403), so access ends with the credential, not with the
connection.

Close codes beyond ``api/ws.py``'s: 4401 no or bad credentials, 4403 a disabled account,
4429 over the caller's request rate (each connection attempt counts as one request).
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import msgspec
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected

from memetrade.api.auth_routes import COOKIE, session_token
from memetrade.api.context import AppContext
from memetrade.api.ws import (
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    _ctx,
    _drain_client,
    _refuse,
    accept_subscriber,
    run_connection,
    through_gate,
)
from memetrade.api.ws_protocol import DIRECT_SEND, DirectSend
from memetrade.ports import StorageError
from memetrade.services.auth import Principal
from memetrade.services.credentials import AuthError, Forbidden, RateLimited, Unauthorized
from memetrade.services.exchange_streams import (
    ExchangeStreams,
    depth_topic,
    levels_json,
    user_snapshot_json,
    user_topic,
)
from memetrade.services.rate_limit import identity

__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_RATE_LIMITED",
    "CLOSE_UNAUTHORIZED",
    "CREDENTIAL_RECHECK_S",
    "DEFAULT_DEPTH_LIMIT",
    "MAX_DEPTH_LIMIT",
    "depth_snapshot",
    "router",
]

router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429
DEFAULT_DEPTH_LIMIT = 100
MAX_DEPTH_LIMIT = 1000
# How often an open user stream checks its credentials again: the longest a stream outlives a
# sign-out, a revoked key or a disabled account.
CREDENTIAL_RECHECK_S = 5.0


def depth_snapshot(streams: ExchangeStreams, symbol: str, limit: int) -> dict[str, object]:
    """The published book's ``lastUpdateId``, ``bids`` and ``asks`` as wire values."""
    last_id, bids, asks = streams.depth(symbol, limit)
    market = streams.markets[symbol]
    return {
        "lastUpdateId": last_id,
        "bids": levels_json(market, bids),
        "asks": levels_json(market, asks),
    }


async def _serve(
    websocket: WebSocket,
    topic: str,
    first: Callable[[], str],
    recheck: Callable[[], Awaitable[Principal]] | None = None,
) -> None:
    """Accept, subscribe ``topic``, then send ``first()``, computed right after subscribing
    with no ``await`` in between so that nothing published on ``topic`` is missed. With
    ``recheck``, the credentials are checked again while the connection lasts."""
    ctx = _ctx(websocket)
    subscriber = await accept_subscriber(websocket)
    if subscriber is None:
        return
    watcher = None if recheck is None else asyncio.create_task(_keep_checking(websocket, recheck))
    try:
        ctx.hub.subscribe(subscriber, topic)
        await websocket.send_text(first())
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
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


async def _keep_checking(websocket: WebSocket, recheck: Callable[[], Awaitable[Principal]]) -> None:
    while True:
        await asyncio.sleep(CREDENTIAL_RECHECK_S)
        try:
            await recheck()
        except StorageError:
            continue  # Accounts unreachable for a moment: check again next time.
        except AuthError as exc:
            code = CLOSE_FORBIDDEN if isinstance(exc, Forbidden) else CLOSE_UNAUTHORIZED
            gone = (RuntimeError, WebSocketDisconnect, ClientDisconnected, OSError)
            with contextlib.suppress(*gone):  # The other side may have closed meanwhile.
                await websocket.close(code, f"{exc.code}: {exc.message}")
            return


@router.websocket("/ws/depth/{symbol}")
async def ws_depth(websocket: WebSocket, symbol: str) -> None:
    """The order book of ``symbol``: a snapshot, then every change as a numbered diff."""
    streams = _ctx(websocket).exchange_streams
    name = symbol.upper()
    if streams is None or name not in streams.markets:
        reason = "the exchange is not served here" if streams is None else f"unknown symbol {name}"
        await _refuse(websocket, CLOSE_NOT_FOUND, reason)
        return
    text = websocket.query_params.get("limit", str(DEFAULT_DEPTH_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= MAX_DEPTH_LIMIT:
        await _refuse(websocket, CLOSE_BAD_REQUEST, f"limit must be 1..{MAX_DEPTH_LIMIT}")
        return
    limit = int(text)

    def snapshot() -> str:
        body = {"e": "depthSnapshot", "s": name, **depth_snapshot(streams, name, limit)}
        return msgspec.json.encode(body).decode()

    await through_gate(websocket, lambda: _serve(websocket, depth_topic(name), snapshot))


def _same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # Not a browser: no page can have sent it on a visitor's behalf.
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


def _credential(websocket: WebSocket, ctx: AppContext) -> Callable[[], Awaitable[Principal]]:
    """How to check the connection's credentials (now, and again later); raise
    ``Unauthorized`` when it brings none that could be checked."""
    auth = ctx.auth
    if auth is None:
        raise Unauthorized("unauthorized", "accounts are not served by this process")
    key = websocket.headers.get("x-api-key")
    if key is not None:
        return lambda: auth.principal_from_api_key(key.strip())
    # The cookie only from a page of this server, when it is the credential used (no header).
    cookie_used = "authorization" not in websocket.headers and websocket.cookies.get(COOKIE)
    if cookie_used and not _same_origin(websocket):
        raise Unauthorized("unauthorized", "the session cookie is accepted from this site only")
    token = session_token(websocket) or websocket.query_params.get("token")
    if token:
        return lambda: auth.principal_from_token(token)
    raise Unauthorized(
        "unauthorized", "send X-API-Key, Authorization: Bearer, the session cookie or ?token="
    )


@router.websocket("/ws/user")
async def ws_user(websocket: WebSocket) -> None:
    """The caller's order updates, fills and balance changes."""
    ctx = _ctx(websocket)
    service = ctx.exchange
    if service is None or ctx.exchange_streams is None:
        await _refuse(websocket, CLOSE_NOT_FOUND, "the exchange is not served here")
        return
    try:
        recheck = _credential(websocket, ctx)
        principal = await recheck()
        if ctx.rate_limiter is not None:
            client = websocket.client.host if websocket.client is not None else None
            who = identity(principal.api_key_id, principal.user_id, client)
            await ctx.rate_limiter.check(who)
    except AuthError as exc:
        code = CLOSE_UNAUTHORIZED
        if isinstance(exc, Forbidden):
            code = CLOSE_FORBIDDEN
        elif isinstance(exc, RateLimited):
            code = CLOSE_RATE_LIMITED
        await _refuse(websocket, code, f"{exc.code}: {exc.message}")
        return
    user_id = principal.user_id
    await through_gate(
        websocket,
        lambda: _serve(
            websocket,
            user_topic(user_id),
            lambda: user_snapshot_json(service, user_id),
            recheck,
        ),
    )

"""``WS /ws/stream``: one connection, any number of native streams, JSON control messages.

Streams: ``trades.<SYMBOL>``, ``candles.<SYMBOL>.<interval>`` (1s 1m 5m 15m 1h),
``ticker.<SYMBOL>``, ``signals.<interval>``, and ``depth.<SYMBOL>`` where the exchange runs.
Every stream message is ``{"stream": "<name>", "data": <the native message>}`` (the payload
of ``/ws/{symbol}``, ``/ws/klines/...``, ``GET /api/v1/ticker/{symbol}``, a ``/ws`` signal
event, or a ``/ws/depth/{symbol}`` diff).

Control (client → server), each with an optional ``id`` echoed in the reply:

* ``{"op": "subscribe", "streams": [...], "snapshot": 100}`` → ``{"type": "subscribed", …}``;
  then, per new candle stream, ``{"type": "snapshot", "stream", "seq", "data": [candles]}``
  (the last ``snapshot`` candles, default 100, 0 for none, at most ``MAX_SNAPSHOT``), per
  new ticker stream its current ticker, and per new depth stream
  ``{"type": "snapshot", "stream", "lastUpdateId", "bids", "asks"}`` (``snapshot`` levels a
  side; its first diff has ``U == lastUpdateId + 1``); then live messages.
* ``{"op": "unsubscribe", "streams": [...]}`` → ``{"type": "unsubscribed", …}``.
* ``{"op": "list"}`` → ``{"type": "subscriptions", "streams": [...]}``.
* ``{"op": "ping"}`` → ``{"type": "pong"}``.
* Errors: ``{"type": "error", "id", "code", "message"}`` with ``code`` one of
  ``malformed_json``, ``invalid_request``, ``unknown_op``, ``unknown_stream``,
  ``too_many_streams``; a request with an error changes nothing.

Gap-free candles: the snapshot and the subscription are taken in one step with no ``await``
between them, so the first live update of the stream has a ``seq`` above the snapshot's and
every later change arrives (a slow client gets the latest state of each candle: ``seq`` may
skip, no candle's last state is lost). Limits: ``MAX_STREAMS`` per connection,
``MAX_MESSAGES_PER_S`` incoming messages per second (beyond it: close 1008).
"""

from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket

from memetrade.api.analytics_wire import ticker_json
from memetrade.api.context import AppContext
from memetrade.api.dialect_streams import mux_topic
from memetrade.api.exchange_ws import depth_snapshot
from memetrade.api.wire import candle_json
from memetrade.api.ws import _ctx
from memetrade.api.ws_control import ControlConnection, serve_controlled
from memetrade.domain.errors import DomainError
from memetrade.domain.intervals import INTERVALS, parse_interval

__all__ = ["DEFAULT_SNAPSHOT", "MAX_MESSAGES_PER_S", "MAX_SNAPSHOT", "MAX_STREAMS", "router"]

router = APIRouter()

MAX_STREAMS = 256
MAX_MESSAGES_PER_S = 50
DEFAULT_SNAPSHOT = 100
MAX_SNAPSHOT = 1000
_MINUTE = INTERVALS[1]


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _canonical(ctx: AppContext, name: str) -> str:
    """``name`` in canonical form (symbol upper-case); raise ``_BadRequest`` if unknown."""
    parts = name.split(".")
    try:
        if parts[0] in ("trades", "ticker") and len(parts) == 2:
            return f"{parts[0]}.{ctx.market.spec(parts[1].upper()).name}"
        if parts[0] == "candles" and len(parts) == 3:
            spec = ctx.market.spec(parts[1].upper())
            return f"candles.{spec.name}.{parse_interval(parts[2]).name}"
        if parts[0] == "signals" and len(parts) == 2:
            return f"signals.{parse_interval(parts[1]).name}"
    except DomainError as exc:
        raise _BadRequest("unknown_stream", f"{name}: {exc.message}") from None
    books = ctx.exchange_streams
    if parts[0] == "depth" and len(parts) == 2 and books is not None:
        if parts[1].upper() not in books.markets:
            raise _BadRequest("unknown_stream", f"{name}: unknown symbol {parts[1].upper()}")
        return f"depth.{parts[1].upper()}"
    raise _BadRequest(
        "unknown_stream",
        f"unknown stream {name!r}: use trades.SYMBOL, candles.SYMBOL.INTERVAL, ticker.SYMBOL,"
        " signals.INTERVAL or depth.SYMBOL",
    )


class _Session:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.streams: dict[str, None] = {}

    def start(self, conn: ControlConnection) -> None:
        pass

    def handle(self, conn: ControlConnection, text: str) -> None:
        request_id: Any = None
        try:
            try:
                request = msgspec.json.decode(text)
            except msgspec.DecodeError as exc:
                raise _BadRequest("malformed_json", f"not JSON: {exc}") from None
            if not isinstance(request, dict):
                raise _BadRequest("invalid_request", "a control message is a JSON object")
            request_id = request.get("id")
            op = request.get("op")
            if op == "ping":
                conn.send(_encode({"type": "pong", "id": request_id}))
            elif op == "list":
                conn.send(_reply("subscriptions", request_id, list(self.streams)))
            elif op in ("subscribe", "unsubscribe"):
                names = request.get("streams")
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise _BadRequest("invalid_request", "streams must be a list of names")
                canonical = list(dict.fromkeys(_canonical(self.ctx, n) for n in names))
                if op == "subscribe":
                    self._subscribe(conn, canonical, request.get("snapshot"), request_id)
                else:
                    for stream in canonical:
                        if self.streams.pop(stream, 0) is None:
                            conn.unsubscribe(mux_topic(stream))
                    conn.send(_reply("unsubscribed", request_id, canonical))
            else:
                raise _BadRequest(
                    "unknown_op", f"unknown op {op!r}: use subscribe, unsubscribe, list or ping"
                )
        except _BadRequest as exc:
            conn.send(
                _encode(
                    {"type": "error", "id": request_id, "code": exc.code, "message": exc.message}
                )
            )

    def _subscribe(
        self, conn: ControlConnection, streams: list[str], snapshot: Any, request_id: Any
    ) -> None:
        count = DEFAULT_SNAPSHOT if snapshot is None else snapshot
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_SNAPSHOT:
            raise _BadRequest("invalid_request", f"snapshot must be 0..{MAX_SNAPSHOT}")
        new = [stream for stream in streams if stream not in self.streams]
        if len(self.streams) + len(new) > MAX_STREAMS:
            raise _BadRequest("too_many_streams", f"at most {MAX_STREAMS} streams per connection")
        # No await from here on: each subscription and its snapshot are one step (see above).
        conn.send(_reply("subscribed", request_id, streams))
        for stream in new:
            self.streams[stream] = None
            conn.subscribe(mux_topic(stream))
            first = self._first(stream, count)
            if first is not None:
                conn.send(first)

    def _first(self, stream: str, count: int) -> str | None:
        """What a new subscriber of ``stream`` gets before live messages."""
        market = self.ctx.market
        kind, _, rest = stream.partition(".")
        if kind == "candles" and count:
            symbol, _, name = rest.partition(".")
            spec, iv = market.specs[symbol], parse_interval(name)
            book = market.books[symbol]
            open_t = book.open_time(iv)
            candles = []
            if open_t >= 0:
                start = max(book.memory_start(iv), open_t - (count - 1) * iv.ms)
                candles = book.candles(iv, start, open_t)
            data = ",".join(candle_json(spec, iv, c, c.open_time < open_t) for c in candles)
            return f'{{"type":"snapshot","stream":"{stream}","seq":{book.seq(iv)},"data":[{data}]}}'
        if kind == "ticker":
            spec = market.specs[rest]
            analytics = self.ctx.analytics
            text = ticker_json(
                spec, _MINUTE, analytics.ticker(rest), analytics.snapshot(rest, _MINUTE)
            )
            return f'{{"stream":"{stream}","data":{text}}}'
        if kind == "depth" and count and self.ctx.exchange_streams is not None:
            levels = depth_snapshot(self.ctx.exchange_streams, rest, count)
            return _encode({"type": "snapshot", "stream": stream, **levels})
        return None


def _encode(value: dict[str, Any]) -> str:
    return msgspec.json.encode(value).decode()


def _reply(kind: str, request_id: Any, streams: list[str]) -> str:
    return _encode({"type": kind, "id": request_id, "streams": streams})


@router.websocket("/ws/stream")
async def ws_stream(websocket: WebSocket) -> None:
    """Many native streams over one connection, with control messages."""
    session = _Session(_ctx(websocket))
    await serve_controlled(websocket, session.start, session.handle, MAX_MESSAGES_PER_S)

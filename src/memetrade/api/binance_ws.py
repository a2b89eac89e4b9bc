"""Binance-compatible WebSocket market streams.

* Raw: ``/ws/<stream>`` (``pepeusdt@trade``, ``pepeusdt@kline_1m``, ``pepeusdt@ticker``,
  ``pepeusdt@miniTicker``, ``pepeusdt@depth[@100ms]``, ``pepeusdt@depth5|10|20[@100ms]``;
  several as ``/ws/a/b``): each message is the event itself. Order-book streams exist where
  the exchange runs (``api/depth_streams.py``).
* Combined: ``/stream?streams=a/b``: each message is ``{"stream": "<name>", "data": event}``.
* Live control, as JSON text: ``{"method": "SUBSCRIBE"|"UNSUBSCRIBE", "params": [...], "id":
  1}`` answers ``{"result": null, "id": 1}``; ``LIST_SUBSCRIPTIONS`` answers the stream names;
  ``SET_PROPERTY``/``GET_PROPERTY`` of ``combined`` switch or read the wrapping. Errors
  answer ``{"error": {"code", "msg"}, "id"}`` with Binance's codes (0 unknown property,
  1 invalid value type, 2 invalid request, 3 invalid JSON).
* Limits per connection: ``MAX_STREAMS`` streams (a SUBSCRIBE beyond it is refused with code
  2 and changes nothing) and ``MAX_MESSAGES_PER_S`` incoming messages per second (beyond it
  the connection is closed with 1008 and the reason), Binance's own numbers. Ping/pong: the
  server pings every 20 s and answers client pings, at the protocol level.
* Cadence: trades as they are stored; klines and tickers at most once a second per stream
  (``api/dialect_streams.py``). A kline of a derived interval (3m, 4h, 1d, …) is the exact
  merge of the stored candles it spans; ``x`` is true once its window has ended.

A path with an ``@`` is a Binance stream; every other ``/ws/...`` path is native, so the
routes cannot be confused (``/ws/pepe`` is PEPE's native trade stream).
"""

import re
from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket
from starlette.convertors import Convertor, register_url_convertor

from memetrade.api.binance_wire import BinanceNames
from memetrade.api.dialect_streams import binance_topics
from memetrade.api.ws import CLOSE_NOT_FOUND, _ctx, _refuse
from memetrade.api.ws_control import ControlConnection, serve_controlled
from memetrade.domain.resample import BINANCE_INTERVALS

__all__ = ["MAX_MESSAGES_PER_S", "MAX_STREAMS", "parse_stream", "router"]

router = APIRouter()

MAX_STREAMS = 1024
MAX_MESSAGES_PER_S = 5

_STREAM_RE = re.compile(
    r"^([a-zA-Z0-9]{1,30})@(trade|ticker|miniTicker|kline_([0-9]+[smhd])|depth(?:5|10|20)?(?:@100ms)?)$"
)
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


class _BinanceStreams(Convertor[str]):
    """Path segments holding at least one Binance stream (an ``@``), as ``a`` or ``a/b``."""

    regex = r"[^/]*@[^/]*(?:/[^/]*@[^/]*)*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("binance_streams", _BinanceStreams())


def parse_stream(name: str, names: BinanceNames, books: bool = True) -> str:
    """The canonical name of stream ``name`` (symbol lower-cased); raise ``ValueError``
    naming what is wrong. ``books``: whether order-book (``@depth``) streams are served."""
    match = _STREAM_RE.match(name)
    if match is None:
        raise ValueError(f"invalid stream {name!r}")
    symbol, kind, interval = match.groups()
    if names.spec(symbol) is None:
        raise ValueError(f"invalid stream {name!r}: unknown symbol {symbol.upper()}")
    if kind.startswith("depth") and not books:
        raise ValueError(f"invalid stream {name!r}: no order books are served here")
    if interval is not None and interval not in BINANCE_INTERVALS:
        raise ValueError(f"invalid stream {name!r}: unknown interval {interval}")
    return f"{symbol.lower()}@{kind}"


class _Session:
    """One connection's streams and mode (raw events or ``{"stream","data"}``)."""

    def __init__(
        self, names: BinanceNames, streams: list[str], combined: bool, books: bool
    ) -> None:
        self.names = names
        self.books = books
        self.streams: dict[str, None] = dict.fromkeys(streams)
        self.combined = combined

    def _topic(self, stream: str) -> str:
        raw, comb = binance_topics(stream)
        return comb if self.combined else raw

    def start(self, conn: ControlConnection) -> None:
        for stream in self.streams:
            conn.subscribe(self._topic(stream))

    def handle(self, conn: ControlConnection, text: str) -> None:
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            conn.send(_error(3, f"Invalid JSON: {exc}", None))
            return
        if not isinstance(request, dict):
            conn.send(_error(2, "Invalid request: expected an object", None))
            return
        request_id = request.get("id")
        if request_id is not None and (
            not isinstance(request_id, int | str) or isinstance(request_id, bool)
        ):
            conn.send(_error(2, "Invalid request: request ID must be an unsigned integer", None))
            return
        method = request.get("method")
        if method is None:
            conn.send(_error(2, "Invalid request: missing field `method`", request_id))
            return
        if method not in _METHODS:
            expected = ", ".join(f"`{m}`" for m in _METHODS)
            conn.send(
                _error(
                    2,
                    f"Invalid request: unknown variant `{method}`, expected one of {expected}",
                    request_id,
                )
            )
            return
        params = request.get("params", [])
        if not isinstance(params, list):
            conn.send(_error(2, "Invalid request: params must be a list", request_id))
            return
        if method == "LIST_SUBSCRIPTIONS":
            conn.send(_result(list(self.streams), request_id))
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self._change(conn, method == "SUBSCRIBE", params, request_id)
        else:
            self._property(conn, method, params, request_id)

    def _change(
        self, conn: ControlConnection, subscribe: bool, params: list[Any], request_id: Any
    ) -> None:
        wanted: list[str] = []
        for name in params:
            if not isinstance(name, str):
                conn.send(_error(2, "Invalid request: stream names must be strings", request_id))
                return
            try:
                wanted.append(parse_stream(name, self.names, self.books))
            except ValueError as exc:
                conn.send(_error(2, f"Invalid request: {exc}", request_id))
                return
        if subscribe:
            new = [s for s in dict.fromkeys(wanted) if s not in self.streams]
            if len(self.streams) + len(new) > MAX_STREAMS:
                conn.send(
                    _error(
                        2,
                        f"Invalid request: too many streams: at most {MAX_STREAMS} per connection",
                        request_id,
                    )
                )
                return
            for stream in new:
                self.streams[stream] = None
                conn.subscribe(self._topic(stream))
        else:
            for stream in wanted:
                if self.streams.pop(stream, 0) is None:
                    conn.unsubscribe(self._topic(stream))
        conn.send(_result(None, request_id))

    def _property(
        self, conn: ControlConnection, method: str, params: list[Any], request_id: Any
    ) -> None:
        if not params or params[0] != "combined":
            conn.send(_error(0, "Unknown property", request_id))
            return
        if method == "GET_PROPERTY":
            conn.send(_result(self.combined, request_id))
            return
        if len(params) != 2 or not isinstance(params[1], bool):
            conn.send(_error(1, "Invalid value type: expected Boolean", request_id))
            return
        if params[1] != self.combined:
            for stream in self.streams:
                conn.unsubscribe(self._topic(stream))
            self.combined = params[1]
            for stream in self.streams:
                conn.subscribe(self._topic(stream))
        conn.send(_result(None, request_id))


def _result(result: Any, request_id: Any) -> str:
    return msgspec.json.encode({"result": result, "id": request_id}).decode()


def _error(code: int, msg: str, request_id: Any) -> str:
    return msgspec.json.encode({"error": {"code": code, "msg": msg}, "id": request_id}).decode()


async def _serve(websocket: WebSocket, names: list[str], combined: bool) -> None:
    ctx = _ctx(websocket)
    binance = BinanceNames(ctx.market.specs, ctx.settings.quote_asset)
    books = ctx.exchange_streams is not None
    try:
        streams = [parse_stream(name, binance, books) for name in names if name]
    except ValueError as exc:
        await _refuse(websocket, CLOSE_NOT_FOUND, str(exc))
        return
    if len(dict.fromkeys(streams)) > MAX_STREAMS:
        await _refuse(websocket, CLOSE_NOT_FOUND, f"at most {MAX_STREAMS} streams per connection")
        return
    session = _Session(binance, streams, combined, books)
    await serve_controlled(websocket, session.start, session.handle, MAX_MESSAGES_PER_S)


@router.websocket("/ws/{streams:binance_streams}")
async def binance_raw(websocket: WebSocket, streams: str) -> None:
    """Raw Binance streams: ``/ws/pepeusdt@trade`` (or ``/ws/a/b``)."""
    await _serve(websocket, streams.split("/"), combined=False)


@router.websocket("/stream")
async def binance_combined(websocket: WebSocket) -> None:
    """Combined Binance streams: ``/stream?streams=pepeusdt@trade/dogeusdt@kline_1m``."""
    await _serve(websocket, websocket.query_params.get("streams", "").split("/"), combined=True)

"""The connection loop of WebSockets that take control messages (subscribe, unsubscribe, …):
the Binance-compatible streams and the native multiplexed ``/ws/stream``.

One hub ``Subscriber`` per connection, subscribed to any number of topics. Everything the
connection sends (replies and snapshots as much as stream messages) goes through that
subscriber, so its order is the order things happened in: a reply or snapshot pushed right
after ``Hub.subscribe``, with no ``await`` in between, reaches the client before any message
published on that topic afterwards, whether the frame is written directly (the hub's fast
path, enabled from the start since nothing has to go first) or queued. State messages
(candles) must be published with keys unique per topic (``(topic, open_time)``), as one
subscriber holds many topics.

Limits per connection, enforced here: ``max_messages_per_s`` incoming messages per second
(a client sending more is disconnected with 1008 and the reason) and incoming messages of at
most the server's ``ws_max_size``. The stream count limit is the handler's (it knows what a
stream is).
"""

import contextlib
import time
from collections.abc import Callable

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected

from memetrade.api.ws import (
    _close,
    _ctx,
    accept_subscriber,
    run_connection,
    through_gate,
)
from memetrade.api.ws_protocol import DIRECT_SEND, DirectSend
from memetrade.services.hub import Subscriber, frame_text

__all__ = ["CLOSE_POLICY", "ControlConnection", "serve_controlled"]

# RFC 6455 "policy violation": the client broke a documented limit.
CLOSE_POLICY = 1008


class ControlConnection:
    """What a handler sees of its connection: send a message in order, (un)subscribe topics."""

    def __init__(self, websocket: WebSocket, subscriber: Subscriber) -> None:
        self._ctx = _ctx(websocket)
        self.subscriber = subscriber
        self.websocket = websocket

    def send(self, text: str) -> None:
        """Queue ``text`` behind everything sent or published to this connection so far."""
        self.subscriber.push(frame_text(text))

    def subscribe(self, topic: str) -> None:
        self._ctx.hub.subscribe(self.subscriber, topic)

    def unsubscribe(self, topic: str) -> None:
        self._ctx.hub.unsubscribe(self.subscriber, topic)


Handler = Callable[[ControlConnection, str], None]
"""Called with each text message, synchronously: it answers through ``send``."""


async def serve_controlled(
    websocket: WebSocket,
    start: Callable[[ControlConnection], None],
    handle: Handler,
    max_messages_per_s: int,
) -> None:
    """Accept, run ``start`` (initial subscriptions), then feed incoming text messages to
    ``handle`` until the client leaves, reads too slowly, or sends too fast."""
    await through_gate(
        websocket, lambda: _serve_admitted(websocket, start, handle, max_messages_per_s)
    )


async def _serve_admitted(
    websocket: WebSocket,
    start: Callable[[ControlConnection], None],
    handle: Handler,
    max_messages_per_s: int,
) -> None:
    ctx = _ctx(websocket)
    subscriber = await accept_subscriber(websocket)
    if subscriber is None:
        return
    conn = ControlConnection(websocket, subscriber)
    try:
        direct: DirectSend | None = websocket.scope["extensions"].get(DIRECT_SEND)
        if direct is not None:
            subscriber.enable_direct(direct.try_write)
        start(conn)
        reader = _read(websocket, conn, handle, max_messages_per_s)
        error = await run_connection(websocket, subscriber, reader, direct)
        if isinstance(error, _TooFast):
            ctx.hub.disconnect(subscriber)
            await _close(websocket, CLOSE_POLICY, str(error))
        elif error is not None:
            raise error
    except (WebSocketDisconnect, ClientDisconnected, OSError):
        pass
    finally:
        ctx.hub.disconnect(subscriber)


class _TooFast(Exception):
    pass


async def _read(
    websocket: WebSocket, conn: ControlConnection, handle: Handler, max_per_s: int
) -> None:
    # A sliding one-second window of arrival times: more than max_per_s in it is a violation.
    arrivals: list[float] = []
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            now = time.monotonic()
            arrivals = [t for t in arrivals if now - t < 1.0]
            arrivals.append(now)
            if len(arrivals) > max_per_s:
                raise _TooFast(f"too many messages: at most {max_per_s} per second")
            text = message.get("text")
            if text is None:
                data = message.get("bytes") or b""
                text = data.decode("utf-8", "replace")
            handle(conn, text)

"""uvicorn's sans-I/O WebSocket protocol plus a direct write path for fan-out.

Through ASGI, every message to every client is an ``await websocket.send_text``: a task
wake-up and several awaits per delivery, which capped fan-out at about 30,000 deliveries per
CPU second. This protocol adds an ASGI scope extension, ``DIRECT_SEND``, through which the
hub writes a ready-made frame (serialised once per message, identical for every client since
server frames are unmasked and compression is off) straight to a connection's transport, in
the publisher's own call, while that connection keeps up. A connection whose transport
buffer is full (its reader is slow) falls back to its queue and its own sending task, which
waits for the transport to drain.
"""

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

__all__ = ["DIRECT_SEND", "DirectSend", "FanoutWebSocketProtocol"]

DIRECT_SEND = "memetrade.direct_send"


class DirectSend:
    """Frame writes to one accepted connection, bypassing the ASGI send path."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: "FanoutWebSocketProtocol") -> None:
        self._protocol = protocol

    def try_write(self, frame: bytes) -> bool:
        """Write ``frame`` now if the connection is open and its transport keeps up; return
        whether it was written."""
        protocol = self._protocol
        if protocol.direct_ok:
            protocol.transport.write(frame)
            return True
        return False

    async def write(self, frame: bytes) -> None:
        """Write ``frame`` once the transport has room; raise ``ClientDisconnected`` if the
        connection is gone or closing."""
        protocol = self._protocol
        await protocol.writable.wait()
        if protocol.close_sent or protocol.disconnected:
            raise ClientDisconnected()
        protocol.transport.write(frame)


class FanoutWebSocketProtocol(WebSocketsSansIOProtocol):
    """Pass as uvicorn's ``ws`` protocol class."""

    # One flag for the per-delivery check, kept in step with the states that forbid a write:
    # closing, disconnected, or the transport's buffer above its high-water mark.
    direct_ok = True

    def pause_writing(self) -> None:
        super().pause_writing()
        self.direct_ok = False

    def resume_writing(self) -> None:
        super().resume_writing()
        self.direct_ok = not (self.close_sent or self.disconnected)

    def connection_lost(self, exc: Exception | None) -> None:
        self.direct_ok = False
        super().connection_lost(exc)

    async def send(self, message: Any) -> None:
        try:
            await super().send(message)
        finally:
            if self.close_sent:
                self.direct_ok = False

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # ``scope`` exists only when the handshake was valid; the ASGI task that reads it
        # starts on the next loop iteration, after this.
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DIRECT_SEND] = DirectSend(self)

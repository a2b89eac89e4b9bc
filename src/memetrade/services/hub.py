"""Fan-out of encoded messages to WebSocket subscribers, with bounded memory per client.

Each message is encoded once by the publisher (text) and framed once by the hub (the bytes of
its WebSocket frame, the same for every client), and that one pair is handed to every
subscriber. A subscriber never blocks the publisher or other subscribers: a subscriber with
a direct writer and nothing queued gets the frame written to its socket at once, without
waiting (the fast path, taken while the client keeps up); otherwise ``publish`` only appends
to its buffer, and the connection drains that buffer in its own task.

Two buffer policies, by what the stream carries:

* events (trades): every message matters, so the buffer is a bounded FIFO; a subscriber that
  still holds ``max_backlog`` messages of earlier publications when a new one comes is cut off
  (its connection is closed with a reason) rather than silently skipping trades or growing
  without bound. One publication (the trades of one ingest batch) is never split: a burst larger
  than ``max_backlog`` reaches a subscriber that keeps up, and a buffer holds at most
  ``max_backlog`` messages plus one publication (references to strings shared by everyone).
* state (candles): only the latest state of each candle matters, so pending messages are
  conflated by key (the candle's open time); the buffer holds at most one message per candle.
"""

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Sequence

from websockets.frames import Frame, Opcode

__all__ = ["Hub", "Message", "Subscriber", "TooSlow", "frame_text"]

Message = tuple[str, bytes]
"""A message's text and its WebSocket frame."""

DirectWrite = Callable[[bytes], bool]
"""Writes a frame to a connection now, or returns False when it cannot take it now."""


def frame_text(text: str) -> Message:
    """``text`` with its unmasked, uncompressed WebSocket text frame (what a server sends)."""
    return text, Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class TooSlow(Exception):
    """The subscriber fell too far behind its event stream."""


class Subscriber:
    """One connection's view of the hub: ``next_batch`` waits for messages to send."""

    __slots__ = (
        "_conflated",
        "_events",
        "_max_backlog",
        "_overflow",
        "_overflowed",
        "_ready",
        "_write",
        "topics",
    )

    def __init__(self, max_backlog: int) -> None:
        self._events: deque[Message] = deque()
        self._conflated: dict[Hashable, Message] = {}
        self._write: DirectWrite | None = None
        self._ready = asyncio.Event()
        self._overflow = asyncio.Event()
        self._max_backlog = max_backlog
        self._overflowed = False
        self.topics: set[str] = set()

    def enable_direct(self, write: DirectWrite) -> None:
        """Let publishers write frames straight to the connection while nothing is queued.
        Enable it only once the connection has sent anything it must send first."""
        self._write = write

    def push(self, message: Message) -> None:
        self.push_many((message,))

    def push_many(self, messages: Sequence[Message]) -> None:
        if self._overflowed:
            return
        write = self._write
        if write is not None and not self._events and not self._conflated:
            for i, (_, frame) in enumerate(messages):
                if not write(frame):
                    messages = messages[i:]
                    break
            else:
                return
        if len(self._events) >= self._max_backlog:
            self._overflowed = True
            self._write = None
            self._events.clear()
            self._overflow.set()
        else:
            self._events.extend(messages)
        self._ready.set()

    def push_state(self, key: Hashable, message: Message) -> None:
        write = self._write
        if write is not None and not self._events and not self._conflated and write(message[1]):
            return
        # Re-inserting moves the key to the end, so messages keep the order of their latest
        # state: a candle's final update is never sent before an older candle's.
        self._conflated.pop(key, None)
        self._conflated[key] = message
        self._ready.set()

    async def overflowed(self) -> None:
        """Return once the backlog overflowed. A connection stuck in a send (its peer stopped
        reading and the socket buffers are full) never gets back to ``next_batch``; this lets
        it be cut off anyway."""
        await self._overflow.wait()

    async def next_batch(self) -> list[Message]:
        """Wait for and take everything pending, oldest first; raise ``TooSlow`` once the
        backlog overflowed."""
        await self._ready.wait()
        self._ready.clear()
        if self._overflowed:
            raise TooSlow(f"more than {self._max_backlog} messages behind")
        batch = list(self._events)
        self._events.clear()
        if self._conflated:
            batch.extend(self._conflated.values())
            self._conflated.clear()
        return batch


class Hub:
    """Topic-keyed fan-out; also the registry that enforces the connection cap."""

    def __init__(self, max_connections: int, max_backlog: int = 5000) -> None:
        self._topics: dict[str, list[Subscriber]] = {}
        self._subscribers: set[Subscriber] = set()
        self.max_connections = max_connections
        self.max_backlog = max_backlog
        self.delivered = 0

    @property
    def connections(self) -> int:
        return len(self._subscribers)

    def connect(self) -> Subscriber | None:
        """Register a connection, or return None when ``max_connections`` are open."""
        if len(self._subscribers) >= self.max_connections:
            return None
        subscriber = Subscriber(self.max_backlog)
        self._subscribers.add(subscriber)
        return subscriber

    def disconnect(self, subscriber: Subscriber) -> None:
        for topic in subscriber.topics:
            subscribers = self._topics.get(topic)
            if subscribers is not None:
                subscribers.remove(subscriber)
                if not subscribers:
                    del self._topics[topic]
        subscriber.topics.clear()
        self._subscribers.discard(subscriber)

    def subscribe(self, subscriber: Subscriber, topic: str) -> None:
        if topic not in subscriber.topics:
            subscriber.topics.add(topic)
            self._topics.setdefault(topic, []).append(subscriber)

    def unsubscribe(self, subscriber: Subscriber, topic: str) -> None:
        """Stop sending ``topic`` to ``subscriber``; what is queued for it already stays."""
        if topic in subscriber.topics:
            subscriber.topics.discard(topic)
            subscribers = self._topics.get(topic)
            if subscribers is not None:
                subscribers.remove(subscriber)
                if not subscribers:
                    del self._topics[topic]

    def has_subscribers(self, topic: str) -> bool:
        return topic in self._topics

    def publish(self, topic: str, message: str) -> None:
        self.publish_many(topic, (message,))

    def publish_many(self, topic: str, messages: Sequence[str]) -> None:
        """Send ``messages`` (one publication, never split) to every subscriber of ``topic``."""
        subscribers = self._topics.get(topic)
        if subscribers:
            framed = [frame_text(message) for message in messages]
            frame = framed[0][1] if len(framed) == 1 else None
            # A copy: a direct write can end in a disconnect that edits the list.
            for subscriber in tuple(subscribers):
                # The fast path of ``push_many`` inlined for the common single message: this
                # loop runs once per client per trade.
                write = subscriber._write
                if (
                    frame is None
                    or write is None
                    or subscriber._events
                    or subscriber._conflated
                    or not write(frame)
                ):
                    subscriber.push_many(framed)
            self.delivered += len(subscribers) * len(messages)

    def publish_state(self, topic: str, key: Hashable, message: str) -> None:
        subscribers = self._topics.get(topic)
        if subscribers:
            framed = frame_text(message)
            for subscriber in tuple(subscribers):
                subscriber.push_state(key, framed)
            self.delivered += len(subscribers)

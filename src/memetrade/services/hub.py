"""Fan-out of encoded messages to WebSocket subscribers, with bounded memory per client.

Each message is encoded once by the publisher and the same ``str`` is handed to every
subscriber. A subscriber never blocks the publisher or other subscribers: ``publish`` only
appends to per-subscriber buffers, and each connection drains its own buffer in its own task.

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
from collections.abc import Hashable, Sequence

__all__ = ["Hub", "Subscriber", "TooSlow"]


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
        "topics",
    )

    def __init__(self, max_backlog: int) -> None:
        self._events: deque[str] = deque()
        self._conflated: dict[Hashable, str] = {}
        self._ready = asyncio.Event()
        self._overflow = asyncio.Event()
        self._max_backlog = max_backlog
        self._overflowed = False
        self.topics: set[str] = set()

    def push(self, message: str) -> None:
        self.push_many((message,))

    def push_many(self, messages: Sequence[str]) -> None:
        if self._overflowed:
            return
        if len(self._events) >= self._max_backlog:
            self._overflowed = True
            self._events.clear()
            self._overflow.set()
        else:
            self._events.extend(messages)
        self._ready.set()

    def push_state(self, key: Hashable, message: str) -> None:
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

    async def next_batch(self) -> list[str]:
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

    def has_subscribers(self, topic: str) -> bool:
        return topic in self._topics

    def publish(self, topic: str, message: str) -> None:
        self.publish_many(topic, (message,))

    def publish_many(self, topic: str, messages: Sequence[str]) -> None:
        """Append ``messages`` (one publication, never split) to every subscriber of ``topic``."""
        subscribers = self._topics.get(topic)
        if subscribers:
            for subscriber in subscribers:
                subscriber.push_many(messages)
            self.delivered += len(subscribers) * len(messages)

    def publish_state(self, topic: str, key: Hashable, message: str) -> None:
        subscribers = self._topics.get(topic)
        if subscribers:
            for subscriber in subscribers:
                subscriber.push_state(key, message)
            self.delivered += len(subscribers)

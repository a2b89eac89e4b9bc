"""The in-process bus: the embedded default's ``Bus`` and the test double of the NATS one.

Durable subjects are kept in one in-memory log per bus (so "durable" means: for the life of
the process); consumers keep their acknowledgements in the bus, so a consumer reopened under
the same name resumes where the last one stopped and gets unacknowledged messages again,
exactly as a JetStream durable consumer does. Unlike JetStream there is no ack timeout:
an unacknowledged message is redelivered when its consumer is reopened or on ``nak``.
"""

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from memetrade.ports import BusError, Delivery

__all__ = ["DURABLE_PREFIXES", "LocalBus", "subject_matches"]

DURABLE_PREFIXES = ("trades.", "stored.")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


@dataclass(slots=True)
class _Entry:
    seq: int
    subject: str
    data: bytes
    ts_ms: int


@dataclass(slots=True)
class _Consumer:
    pattern: str
    changed: asyncio.Condition
    acked: set[int] = field(default_factory=set)
    delivered: set[int] = field(default_factory=set)
    # Messages given back with ``nak``, delivered again before anything new.
    retry: deque[int] = field(default_factory=deque)
    floor: int = 0  # Every seq below it is acknowledged.


@dataclass(slots=True)
class _LocalDelivery:
    subject: str
    data: bytes
    redelivered: bool
    _seq: int
    _consumer: _Consumer

    async def ack(self) -> None:
        consumer = self._consumer
        consumer.acked.add(self._seq)
        while consumer.floor in consumer.acked:
            consumer.acked.discard(consumer.floor)
            consumer.floor += 1

    async def nak(self) -> None:
        if self._seq >= self._consumer.floor and self._seq not in self._consumer.acked:
            self._consumer.retry.append(self._seq)
            async with self._consumer.changed:
                self._consumer.changed.notify_all()


class LocalBus:
    """``Bus`` in one process. ``clock`` gives epoch ms (for ``follow``'s start time)."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._log: list[_Entry] = []
        self._consumers: dict[str, _Consumer] = {}
        self._listeners: list[tuple[str, asyncio.Queue[tuple[str, bytes]]]] = []
        self._changed = asyncio.Condition()
        self._closed = False

    async def open(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        async with self._changed:
            self._changed.notify_all()

    async def ping(self) -> None:
        if self._closed:
            raise BusError("the bus is closed")

    async def publish(self, subject: str, data: bytes) -> None:
        await self.ping()
        if not subject.startswith(DURABLE_PREFIXES):
            raise BusError(f"{subject!r} is not a durable subject")
        self._log.append(_Entry(len(self._log), subject, data, self._clock()))
        self._tell(subject, data)
        async with self._changed:
            self._changed.notify_all()

    async def broadcast(self, subject: str, data: bytes) -> None:
        await self.ping()
        self._tell(subject, data)

    def _tell(self, subject: str, data: bytes) -> None:
        for pattern, queue in self._listeners:
            if subject_matches(pattern, subject):
                # Live delivery is at most once: a listener that fell this far behind loses
                # the oldest messages rather than growing without bound.
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait((subject, data))

    async def consume(
        self, pattern: str, durable: str, batch: int
    ) -> AsyncGenerator[list[Delivery], None]:
        consumer = self._consumers.get(durable)
        if consumer is None or consumer.pattern != pattern:
            consumer = self._consumers[durable] = _Consumer(pattern, self._changed)
        # A new session: everything delivered but not acknowledged is due again.
        consumer.retry.clear()
        cursor = consumer.floor
        previously = consumer.delivered
        consumer.delivered = set()
        while True:
            out: list[Delivery] = []
            while consumer.retry and len(out) < batch:
                seq = consumer.retry.popleft()
                if seq >= consumer.floor and seq not in consumer.acked:
                    entry = self._log[seq]
                    out.append(_LocalDelivery(entry.subject, entry.data, True, seq, consumer))
            while cursor < len(self._log) and len(out) < batch:
                entry = self._log[cursor]
                cursor += 1
                if entry.seq in consumer.acked or not subject_matches(pattern, entry.subject):
                    continue
                again = entry.seq in previously
                consumer.delivered.add(entry.seq)
                out.append(_LocalDelivery(entry.subject, entry.data, again, entry.seq, consumer))
            if out:
                yield out
                continue
            await self._wait_for_more(cursor, consumer)

    async def follow(self, pattern: str, since_ms: int) -> AsyncGenerator[bytes, None]:
        cursor = 0
        while True:
            while cursor < len(self._log):
                entry = self._log[cursor]
                cursor += 1
                if entry.ts_ms >= since_ms and subject_matches(pattern, entry.subject):
                    yield entry.data
            await self._wait_for_more(cursor, None)

    async def listen(self, pattern: str) -> AsyncGenerator[tuple[str, bytes], None]:
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=10_000)
        listener = (pattern, queue)
        self._listeners.append(listener)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.remove(listener)

    async def _wait_for_more(self, cursor: int, consumer: _Consumer | None) -> None:
        def ready() -> bool:
            more = cursor < len(self._log) or (consumer is not None and bool(consumer.retry))
            return more or self._closed

        async with self._changed:
            await self._changed.wait_for(ready)
        if self._closed:
            raise BusError("the bus is closed")

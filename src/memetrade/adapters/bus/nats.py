"""The scale-out ``Bus``: NATS JetStream (``BUS_URL=nats://host:4222``), through nats-py.

Two file-backed streams hold the durable subjects: ``MEMETRADE_TRADES`` (``trades.>``: trades
as ingested, before aggregation) and ``MEMETRADE_STORED`` (``stored.>``: trades once the
aggregator has stored them, which API instances follow). Live subjects (``candles.…``) are
core NATS, at most once.

Durability of ``publish``: it returns when the stream leader has written the message and sent
its PubAck. With the server's default ``sync_interval`` the file is fsynced every two minutes,
so an acknowledged message survives any crash of our processes and of nats-server, but not
the loss of the machine's page cache (power cut, kernel panic) unless nats-server runs with
``sync_interval: always`` or the stream is replicated (``replicas`` > 1 in a cluster).

Durable consumers acknowledge explicitly; a message not acknowledged within ``ack_wait_s``
(its worker died or hung) is delivered again, to the same durable consumer.
"""

import contextlib
import datetime
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from memetrade.adapters.bus.local import DURABLE_PREFIXES
from memetrade.ports import BusError, Delivery

__all__ = ["STREAMS", "NatsBus"]

log = logging.getLogger(__name__)

# How long a consumer waits for more messages after the first of a batch: a fetch that finds the
# stream empty turns into a lingering pull for this long. Short, since under load the messages
# are there already, and with a trickle each one should go on at once.
_MORE_WAIT_S = 0.002

# Stream name -> (subjects, max age in seconds). Trades wait for their aggregator for up to a
# week (a longer outage needs a replay from the source); stored trades only serve API instances
# catching up after a restart.
STREAMS = {
    "MEMETRADE_TRADES": ("trades.>", 7 * 86_400.0),
    "MEMETRADE_STORED": ("stored.>", 3_600.0),
}


@dataclass(slots=True)
class _NatsDelivery:
    subject: str
    data: bytes
    redelivered: bool
    _msg: Msg

    async def ack(self) -> None:
        try:
            await self._msg.ack()
        except nats.errors.Error as exc:
            raise BusError(f"ack failed: {exc!r}") from exc

    async def nak(self) -> None:
        try:
            await self._msg.nak()
        except nats.errors.Error as exc:
            raise BusError(f"nak failed: {exc!r}") from exc


class NatsBus:
    """``Bus`` on a NATS server with JetStream enabled."""

    def __init__(self, url: str, *, ack_wait_s: float = 5.0, timeout_s: float = 5.0) -> None:
        self._url = url
        self._ack_wait = ack_wait_s
        self._timeout = timeout_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._last_error: str | None = None

    async def open(self) -> None:
        try:
            # Reconnect forever: an outage of the server shows in ``ping`` (not ready) and in
            # failing publishes, never as a dead client.
            self._nc = await nats.connect(
                self._url,
                connect_timeout=self._timeout,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
            self._js = self._nc.jetstream(timeout=self._timeout)
            for name, (subject, max_age) in STREAMS.items():
                config = api.StreamConfig(
                    name=name,
                    subjects=[subject],
                    storage=api.StorageType.FILE,
                    retention=api.RetentionPolicy.LIMITS,
                    max_age=max_age,
                )
                try:
                    await self._js.add_stream(config)
                except nats.js.errors.BadRequestError:
                    await self._js.update_stream(config)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            await self.close()
            raise BusError(f"NATS at {_redacted(self._url)}: {exc!r}") from exc

    # nats-py's defaults log every failed reconnect attempt (two a second) with a traceback; an
    # outage is an expected state here, worth a line when something changes.
    async def _on_error(self, exc: Exception) -> None:
        if repr(exc) != self._last_error:
            self._last_error = repr(exc)
            log.warning("NATS at %s: %r", _redacted(self._url), exc)

    async def _on_disconnected(self) -> None:
        if self._nc is None:
            return  # Closing: not an outage.
        log.warning("NATS at %s: disconnected; reconnecting", _redacted(self._url))

    async def _on_reconnected(self) -> None:
        self._last_error = None
        log.warning("NATS at %s: reconnected", _redacted(self._url))

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await nc.drain()
            with contextlib.suppress(nats.errors.Error):
                await nc.close()

    def _client(self) -> tuple[Client, JetStreamContext]:
        if self._nc is None or self._js is None:
            raise BusError("the bus is not open")
        return self._nc, self._js

    async def ping(self) -> None:
        nc, _ = self._client()
        if not nc.is_connected:
            raise BusError(f"NATS at {_redacted(self._url)} is not connected")
        try:
            await nc.flush(timeout=2)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusError(f"NATS does not answer: {exc!r}") from exc

    async def publish(self, subject: str, data: bytes) -> None:
        _, js = self._client()
        if not subject.startswith(DURABLE_PREFIXES):
            raise BusError(f"{subject!r} is not a durable subject")
        try:
            await js.publish(subject, data)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusError(f"publish to {subject} failed: {exc!r}") from exc

    async def broadcast(self, subject: str, data: bytes) -> None:
        nc, _ = self._client()
        try:
            await nc.publish(subject, data)
        except nats.errors.Error as exc:
            raise BusError(f"broadcast to {subject} failed: {exc!r}") from exc

    async def consume(
        self, pattern: str, durable: str, batch: int
    ) -> AsyncGenerator[list[Delivery], None]:
        _, js = self._client()
        config = api.ConsumerConfig(
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            deliver_policy=api.DeliverPolicy.ALL,
            filter_subject=pattern,
            max_ack_pending=max(1000, 4 * batch),
        )
        try:
            sub = await js.pull_subscribe(pattern, durable=durable, config=config)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusError(f"consumer {durable} on {pattern}: {exc!r}") from exc
        try:
            while True:
                # nats-py's fetch(batch) waits, once it has a first message, for the rest of the
                # batch until its timeout (up to a second of latency for a trickle of trades).
                # So: wait for one message, then take what else is there now.
                # No message in time is not a failure. nats-py signals it with its own
                # TimeoutError or, when a pull's deadline runs out, asyncio's (the builtin
                # one here): both are caught as TimeoutError.
                try:
                    msgs = await sub.fetch(1, timeout=1.0)
                except TimeoutError:
                    continue
                except nats.errors.Error as exc:
                    raise BusError(f"fetch for {durable} failed: {exc!r}") from exc
                if batch > 1:
                    try:
                        msgs += await sub.fetch(batch - 1, timeout=_MORE_WAIT_S)
                    except TimeoutError:
                        pass
                    except nats.errors.Error as exc:
                        raise BusError(f"fetch for {durable} failed: {exc!r}") from exc
                yield [
                    _NatsDelivery(m.subject, m.data, m.metadata.num_delivered > 1, m) for m in msgs
                ]
        finally:
            # Only this subscription goes: the durable consumer and its position stay.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await sub.unsubscribe()

    async def follow(self, pattern: str, since_ms: int) -> AsyncGenerator[bytes, None]:
        _, js = self._client()
        start = datetime.datetime.fromtimestamp(since_ms / 1000, tz=datetime.UTC)
        try:
            sub = await js.subscribe(
                pattern,
                ordered_consumer=True,
                config=api.ConsumerConfig(
                    deliver_policy=api.DeliverPolicy.BY_START_TIME, opt_start_time=start
                ),
            )
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusError(f"follow {pattern}: {exc!r}") from exc
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                except (nats.errors.Error, TimeoutError) as exc:
                    raise BusError(f"follow {pattern} failed: {exc!r}") from exc
                yield msg.data
        finally:
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await sub.unsubscribe()

    async def listen(self, pattern: str) -> AsyncGenerator[tuple[str, bytes], None]:
        nc, _ = self._client()
        sub = await nc.subscribe(pattern)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                yield msg.subject, msg.data
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


def _redacted(url: str) -> str:
    """``url`` without credentials."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]

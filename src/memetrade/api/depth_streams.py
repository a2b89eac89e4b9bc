"""Order-book streams in the multiplexed ``/ws/stream`` and the Binance dialect, fed by the
depth diffs of ``services/exchange_streams.py``.

* ``/ws/stream``'s ``depth.<SYMBOL>``: every diff at once, as on ``/ws/depth/{symbol}``,
  wrapped as ``{"stream","data"}`` (its snapshot is sent by ``api/ws_stream.py``).
* Binance ``<symbol>@depth`` and ``<symbol>@depth@100ms``: ``depthUpdate`` events pushed
  every 1000 ms / 100 ms, Binance's cadences. The diffs of a period are merged (a level's last
  total wins) into one event spanning ``U`` (the first merged diff's) to ``u`` (the last's),
  so consecutive events chain with ``U == previous u + 1``. Merging starts with the first diff
  published while the stream has subscribers; a subscriber builds its book as Binance
  documents: ``GET /api/v3/depth``, drop events with ``u <= lastUpdateId``, the first kept one
  has ``U <= lastUpdateId + 1 <= u``.
* Binance ``<symbol>@depth<5|10|20>[@100ms]``: the top levels, ``{"lastUpdateId","bids",
  "asks"}``, pushed every period while the stream has subscribers (Binance pushes them
  whether or not the book changed).
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from memetrade.api import binance_wire as bw
from memetrade.api.dialect_streams import binance_topics, mux_topic
from memetrade.domain.symbols import SymbolSpec
from memetrade.services.exchange_streams import DepthDiff, ExchangeStreams, depth_diff_json
from memetrade.services.hub import Hub

__all__ = ["FAST_PERIOD_S", "PARTIAL_LEVELS", "DepthPublisher"]

FAST_PERIOD_S = 0.1
# The slow (default) streams are pushed every this many fast periods: 1000 ms.
_SLOW_EVERY = 10
PARTIAL_LEVELS = (5, 10, 20)
_SPEEDS = ("", "@100ms")


@dataclass(slots=True)
class _Merged:
    first_id: int
    last_id: int
    ts: int
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)


class DepthPublisher:
    """A ``DepthSink`` publishing the ``/ws/stream`` and Binance order-book streams."""

    def __init__(
        self,
        hub: Hub,
        streams: ExchangeStreams,
        specs: dict[str, SymbolSpec],
        names: bw.BinanceNames,
        now_ms: Callable[[], int],
    ) -> None:
        self._hub = hub
        self._streams = streams
        self._specs = specs
        self._names = names
        self._now_ms = now_ms
        self._lower = {symbol: names.name(specs[symbol]).lower() for symbol in streams.markets}
        # Diffs merged since the last push, per (symbol, speed suffix).
        self._merged: dict[tuple[str, str], _Merged] = {}

    def on_depth(self, diff: DepthDiff) -> None:
        hub, symbol = self._hub, diff.symbol
        stream = f"depth.{symbol}"
        topic = mux_topic(stream)
        if hub.has_subscribers(topic):
            data = depth_diff_json(self._streams.markets[symbol], diff)
            hub.publish(topic, f'{{"stream":"{stream}","data":{data}}}')
        lower = self._lower[symbol]
        for speed in _SPEEDS:
            key = (symbol, speed)
            merged = self._merged.get(key)
            if merged is None:
                if not self._listened(f"{lower}@depth{speed}"):
                    continue
                merged = self._merged[key] = _Merged(diff.first_id, diff.last_id, diff.ts)
            merged.last_id, merged.ts = diff.last_id, diff.ts
            for price, quantity in diff.bids:
                merged.bids[price] = quantity
            for price, quantity in diff.asks:
                merged.asks[price] = quantity

    def _listened(self, stream: str) -> bool:
        raw, comb = binance_topics(stream)
        return self._hub.has_subscribers(raw) or self._hub.has_subscribers(comb)

    def _publish(self, stream: str, event: str) -> None:
        raw, comb = binance_topics(stream)
        if self._hub.has_subscribers(raw):
            self._hub.publish(raw, event)
        if self._hub.has_subscribers(comb):
            self._hub.publish(comb, f'{{"stream":"{stream}","data":{event}}}')

    async def run(self, period_s: float = FAST_PERIOD_S) -> None:
        """Push the Binance order-book streams every ``period_s`` (the fast ones) and every
        ten periods (the others), until cancelled."""
        tick = 0
        while True:
            await asyncio.sleep(period_s)
            tick += 1
            self.push(slow=tick % _SLOW_EVERY == 0)

    def push(self, slow: bool) -> None:
        """Push the fast streams, and the slow ones too when ``slow``."""
        speeds = _SPEEDS if slow else ("@100ms",)
        for (symbol, speed), merged in list(self._merged.items()):
            if speed in speeds:
                del self._merged[(symbol, speed)]
                self._publish(
                    f"{self._lower[symbol]}@depth{speed}", self._diff_event(symbol, merged)
                )
        for symbol, lower in self._lower.items():
            for levels in PARTIAL_LEVELS:
                for speed in speeds:
                    stream = f"{lower}@depth{levels}{speed}"
                    if self._listened(stream):
                        self._publish(stream, self._partial_event(symbol, levels))

    def _diff_event(self, symbol: str, merged: _Merged) -> str:
        spec = self._specs[symbol]
        return msgspec.json.encode(
            {
                "e": "depthUpdate",
                "E": self._now_ms(),
                "s": self._names.name(spec),
                "U": merged.first_id,
                "u": merged.last_id,
                "b": _levels(spec, sorted(merged.bids.items(), reverse=True)),
                "a": _levels(spec, sorted(merged.asks.items())),
            }
        ).decode()

    def _partial_event(self, symbol: str, levels: int) -> str:
        last_id, bids, asks = self._streams.depth(symbol, levels)
        spec = self._specs[symbol]
        return msgspec.json.encode(
            {"lastUpdateId": last_id, "bids": _levels(spec, bids), "asks": _levels(spec, asks)}
        ).decode()


def _levels(spec: SymbolSpec, levels: list[tuple[int, int]]) -> list[list[str]]:
    return [
        [bw.fixed(price, spec.price_decimals), bw.fixed(qty, spec.amount_decimals)]
        for price, qty in levels
    ]

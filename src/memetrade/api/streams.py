"""Stream topics, and the listener that encodes service events once and fans them out."""

from collections.abc import Sequence

from memetrade.api.wire import candle_json, trade_json
from memetrade.domain.candles import CandleUpdate
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade
from memetrade.services.hub import Hub

__all__ = ["HubPublisher", "kline_message", "kline_topic", "trade_topic"]


def trade_topic(symbol: str) -> str:
    return f"trades:{symbol}"


def kline_topic(symbol: str, interval: Interval, closed_only: bool) -> str:
    return f"klines:{symbol}:{interval.name}{':closed' if closed_only else ''}"


def kline_message(spec: SymbolSpec, update: CandleUpdate) -> str:
    return (
        f'{{"symbol":"{update.symbol}","interval":"{update.interval.name}","seq":{update.seq},'
        f'"candle":{candle_json(spec, update.interval, update.candle, update.closed)}}}'
    )


class HubPublisher:
    """A ``services.market_data.Listener`` that turns events into WebSocket messages. A message
    is encoded only if some client listens, and then once for all of them."""

    def __init__(self, hub: Hub, specs: dict[str, SymbolSpec]) -> None:
        self._hub = hub
        self._specs = specs

    def on_trades(self, trades: Sequence[Trade]) -> None:
        hub = self._hub
        # One publication per topic: the hub never splits it, so a big ingest batch reaches
        # clients that keep up even when it is larger than their backlog limit.
        by_topic: dict[str, list[str]] = {}
        for trade in trades:
            topic = trade_topic(trade.symbol)
            messages = by_topic.get(topic)
            if messages is None:
                if not hub.has_subscribers(topic):
                    continue
                messages = by_topic[topic] = []
            messages.append(trade_json(self._specs[trade.symbol], trade))
        for topic, messages in by_topic.items():
            hub.publish_many(topic, messages)

    def on_candles(self, updates: Sequence[CandleUpdate]) -> None:
        hub = self._hub
        for update in updates:
            live = kline_topic(update.symbol, update.interval, closed_only=False)
            closed = kline_topic(update.symbol, update.interval, closed_only=True)
            wanted_closed = update.closed and hub.has_subscribers(closed)
            if not (hub.has_subscribers(live) or wanted_closed):
                continue
            message = kline_message(self._specs[update.symbol], update)
            key = update.candle.open_time
            hub.publish_state(live, key, message)
            if wanted_closed:
                hub.publish_state(closed, key, message)

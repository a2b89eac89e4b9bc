"""What travels on the bus: trades and candle updates, encoded once, in integers (ticks, lots).

Subjects: ``trades.<SYMBOL>`` (durable: trades as ingested, before aggregation),
``stored.<SYMBOL>`` (durable: trades once stored by their aggregator, for API instances) and
``candles.<SYMBOL>.<interval>`` (live: each candle's new state, for any other consumer).
A trades message carries a batch of one symbol's trades: one bus round trip per batch, not
per trade.
"""

from collections.abc import Sequence

import msgspec

from memetrade.domain.candles import CandleUpdate
from memetrade.domain.trades import Side, Trade

__all__ = [
    "MAX_TRADES_PER_MESSAGE",
    "candle_subject",
    "decode_trades",
    "encode_candle",
    "encode_trades",
    "stored_subject",
    "trades_subject",
]

# Keeps a message well under NATS's default 1 MiB max_payload (a trade is ~70 bytes).
MAX_TRADES_PER_MESSAGE = 5_000

_TradeRow = tuple[str, str, int, int, str, int, int]
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[_TradeRow])
_SIDES = {side.value: side for side in Side}


def trades_subject(symbol: str) -> str:
    return f"trades.{symbol}"


def stored_subject(symbol: str) -> str:
    return f"stored.{symbol}"


def candle_subject(update: CandleUpdate) -> str:
    return f"candles.{update.symbol}.{update.interval.name}"


def encode_trades(trades: Sequence[Trade]) -> bytes:
    return _encoder.encode(
        [(t.id, t.symbol, t.price, t.amount, t.side.value, t.ts, t.seq) for t in trades]
    )


def decode_trades(data: bytes) -> list[Trade]:
    """Raise ``msgspec.DecodeError`` (or ``KeyError`` for an unknown side) on a bad message."""
    return [
        Trade(trade_id, symbol, price, amount, _SIDES[side], ts, seq)
        for trade_id, symbol, price, amount, side, ts, seq in _decoder.decode(data)
    ]


def encode_candle(update: CandleUpdate) -> bytes:
    c = update.candle
    return _encoder.encode(
        {
            "symbol": update.symbol,
            "interval": update.interval.name,
            "seq": update.seq,
            "closed": update.closed,
            "open_time": c.open_time,
            "ohlc": [c.open, c.high, c.low, c.close],
            "volume": c.volume,
            "quote_volume": c.quote_volume,
            "trades": c.trades,
            "buy_volume": c.buy_volume,
            "buy_quote_volume": c.buy_quote_volume,
        }
    )

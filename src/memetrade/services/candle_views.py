"""Candles of any ``Bucket`` (3m, 4h, 1d, a +08:00 day, …): the one candle query
(``MarketData.klines``) over the stored interval the bucket is made of, merged exactly
(``domain.resample.merge_candles``). Dialects (Binance, TradingView UDF) call this, never
their own aggregation, so a 4h candle equals the merge of the 1h candles REST serves.
"""

from memetrade.domain.candles import Candle
from memetrade.domain.resample import Bucket, merge_candles
from memetrade.services.market_data import MarketData

__all__ = ["bucket_klines", "open_bucket"]


def open_bucket(market: MarketData, symbol: str, target: Bucket) -> int:
    """The open time of ``symbol``'s open (current) ``target`` candle; -1 before any trade.
    Candles opening before it are closed."""
    open_t = market.books[symbol].open_time(target.base)
    return -1 if open_t < 0 else target.open_time(open_t)


async def bucket_klines(
    market: MarketData,
    symbol: str,
    target: Bucket,
    limit: int,
    start: int | None = None,
    end: int | None = None,
) -> tuple[list[Candle], int]:
    """Up to ``limit`` candles of ``target``, oldest first, selected as ``MarketData.klines``
    selects them (with ``start``: the first ones opening at or after it; otherwise the last
    ones opening at or before ``end``, default now), and the sequence number of the base
    stream they are current at."""
    if target.stored:
        return await market.klines(symbol, target.base, limit, start, end)
    market.spec(symbol)
    base = target.base
    seq = market.books[symbol].seq(base)
    current = open_bucket(market, symbol, target)
    if current < 0:
        return [], seq
    last = current if end is None else min(current, target.open_time(end))
    if start is not None:
        first = target.open_time(start)
        if first < start:
            first += target.ms
    else:
        first = last - (limit - 1) * target.ms
    if first > last:
        return [], seq
    per = target.ms // base.ms
    # From ``first`` on: before a symbol's first trade the base query starts at that trade's
    # candle, inside a window, and then ``limit`` windows may take one more base candle each.
    count = min((last - first) // base.ms + per, limit * per + per)
    parts, seq = await market.klines(symbol, base, count, first, last + target.ms - base.ms)
    return merge_candles(parts, target)[:limit], seq

"""Row shapes shared by the storage backends."""

from collections.abc import Callable, Sequence
from typing import Any

from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.ports import StorageError

__all__ = ["candle_rows"]


def candle_rows(
    updates: Sequence[CandleUpdate], volume: Callable[[int], Any]
) -> list[tuple[Any, ...]]:
    """One row per candle to upsert: (symbol, interval, open_time, open, high, low, close,
    volume, quote_volume, trades, first_ts, first_id, last_ts, last_id), volumes passed
    through ``volume`` (the backend's exact representation of an unbounded integer).

    Several updates of one candle in a batch: the last is its newest state and only that one
    is written (an upsert may not touch a row twice in one statement). Empty candles are not
    stored; reads materialise them.
    """
    latest: dict[tuple[str, str, int], Candle] = {}
    for update in updates:
        candle = update.candle
        if candle.trades > 0:
            latest[update.symbol, update.interval.name, candle.open_time] = candle
    rows: list[tuple[Any, ...]] = []
    for (symbol, interval, open_time), c in latest.items():
        if c.first is None or c.last is None:
            raise StorageError(f"{symbol} {interval} candle at {open_time} has trades but no keys")
        rows.append(
            (
                symbol,
                interval,
                open_time,
                c.open,
                c.high,
                c.low,
                c.close,
                volume(c.volume),
                volume(c.quote_volume),
                c.trades,
                *c.first,
                *c.last,
            )
        )
    return rows

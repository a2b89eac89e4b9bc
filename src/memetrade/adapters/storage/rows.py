"""Row shapes and checks shared by the storage backends."""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.numbers import format_units
from memetrade.domain.trades import Side, Trade
from memetrade.ports import StorageError

__all__ = ["candle_from_row", "candle_rows", "steps_changed", "trades_from_rows"]

_SIDES = {side.value: side for side in Side}


def candle_rows(
    updates: Sequence[CandleUpdate], volume: Callable[[int], Any]
) -> list[tuple[Any, ...]]:
    """One row per candle to upsert: (symbol, interval, open_time, open, high, low, close,
    volume, quote_volume, trades, first_ts, first_id, last_ts, last_id, buy_volume,
    buy_quote_volume), volumes passed through ``volume`` (the backend's exact representation
    of an unbounded integer).

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
                volume(c.buy_volume),
                volume(c.buy_quote_volume),
            )
        )
    return rows


def candle_from_row(row: Sequence[Any]) -> Candle:
    """A candle from (open_time, open, high, low, close, volume, quote_volume, trades,
    first_ts, first_id, last_ts, last_id, buy_volume, buy_quote_volume); volumes may come as
    text or exact Decimal."""
    (
        open_time,
        o,
        h,
        lo,
        c,
        volume,
        quote,
        trades,
        first_ts,
        first_id,
        last_ts,
        last_id,
        buy_volume,
        buy_quote,
    ) = row
    return Candle(
        open_time=open_time,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=int(volume),
        quote_volume=int(quote),
        trades=trades,
        first=(first_ts, first_id),
        last=(last_ts, last_id),
        buy_volume=int(buy_volume),
        buy_quote_volume=int(buy_quote),
    )


def trades_from_rows(symbol: str, rows: Iterable[Sequence[Any]]) -> list[Trade]:
    """Trades from (id, price, amount, side, ts, seq) rows of one symbol."""
    return [
        Trade(i, symbol, price, amount, _SIDES[side], ts, seq)
        for i, price, amount, side, ts, seq in rows
    ]


def steps_changed(symbol: str, old: tuple[int, int], new: tuple[int, int], where: str) -> str:
    """The error for a symbol configured with other tick/lot decimals than it is stored with."""
    step = format_units
    return (
        f"symbol {symbol} is stored with tick {step(1, old[0])} and lot {step(1, old[1])} but"
        f" configured with tick {step(1, new[0])} and lot {step(1, new[1])}; its stored prices"
        f" and amounts would change meaning (configure the old steps or use a new database"
        f" than {where})"
    )

"""Matched trades become market data: every fill of the exchange is ingested into ``MarketData``
as a trade, exactly like a trade posted to ``/internal/trades``, so candles, trade streams,
tickers and indicators move with the book.

Trade ids are the engine's trade numbers, zero-padded (``x0000000000000042``) so that ids
order as numbers do: candles break ties between trades of one millisecond by id, and the
engine's order is the true one. Ingest is idempotent by id, so the fills of commands replayed
after a restart are recognised as stored.
"""

import asyncio
from collections.abc import Sequence

from memetrade.domain.exchange.events import Event, Fill
from memetrade.domain.trades import Side, Trade
from memetrade.services.market_data import MarketData
from memetrade.services.pipeline import apply_all_valid

__all__ = ["ExchangeTradeFeed", "trade_id_of"]

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


def trade_id_of(fill_trade_id: int) -> str:
    return f"x{fill_trade_id:016d}"


class ExchangeTradeFeed:
    """An exchange listener handing fills to ``MarketData`` in batches, in order."""

    def __init__(self, market: MarketData) -> None:
        self._market = market
        self._pending: list[Trade] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.dropped = 0

    def on_exchange_events(self, seq: int, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event, Fill):
                self._pending.append(
                    Trade(
                        trade_id_of(event.trade_id),
                        event.symbol,
                        event.price,
                        event.quantity,
                        _SIDES[event.taker_side],
                        event.ts,
                    )
                )
        if self._pending:
            self._idle.clear()
            self._wake.set()

    async def flush(self) -> None:
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            trades, self._pending = self._pending, []
            if trades:
                # Fills older than MAX_TRADE_AGE (a long-stopped server replaying its journal)
                # are refused by the candle rules and logged; the rest go through.
                self.dropped += len(await apply_all_valid(self._market, trades))
            if not self._pending:
                self._idle.set()

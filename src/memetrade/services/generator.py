"""The live mock generator: every tick, each symbol's market model produces the trades of the
time that just elapsed, and all of them go to the sink in one call.

Design, and why:

* Windows tile time. Tick ``n`` asks each model for ``[end of tick n-1, now)``, with ``now`` read
  from the injected clock, so the trades carry real timestamps and none are lost or doubled
  however late a tick runs. A slow sink makes the next windows longer, not more numerous: ticks
  that were missed are skipped, never replayed in a burst.
* Ticks are scheduled on absolute times of the event loop's monotonic clock (``start + n *
  interval``), so sleeping does not drift; a wall-clock step (NTP, suspend) cannot stretch or
  squeeze the schedule.
* A window never reaches back more than ``MAX_CATCH_UP_MS``: after a suspend or a wall clock
  stepped forward, the models move on through the gap unobserved instead of producing minutes
  of trades that the candle book would refuse as too old. A clock stepped back yields empty
  windows until it passes the last window's end again.
* Cancellation stops the loop at its next await: during the sleep nothing is lost; during the
  sink call, the sink decides what happens to that batch.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from memetrade.domain.market_model import MarketModel
from memetrade.domain.trades import Trade
from memetrade.ports import Clock

__all__ = ["MAX_CATCH_UP_MS", "run_generator"]

MAX_CATCH_UP_MS = 10_000


async def run_generator(
    models: Sequence[MarketModel],
    interval_ms: int,
    clock: Clock,
    sink: Callable[[list[Trade]], Awaitable[object]],
    *,
    trades_per_tick: float = 1.0,
) -> None:
    """Feed generated trades to ``sink`` every ``interval_ms`` until cancelled.

    Each model averages ``trades_per_tick`` trades per tick (bursty: many ticks have none,
    some have several). One ``sink`` call per tick carries every symbol's trades sorted by
    timestamp; a tick without trades makes no call.
    """
    if interval_ms < 1:
        raise ValueError("interval_ms must be at least 1")
    if trades_per_tick < 0:
        raise ValueError("trades_per_tick must not be negative")
    intensity = trades_per_tick * 1000.0 / interval_ms
    loop = asyncio.get_running_loop()
    interval_s = interval_ms / 1000.0
    started = loop.time()
    tick = 0
    window_start = clock.now_ms()
    while True:
        tick += 1
        delay = started + tick * interval_s - loop.time()
        if delay < -interval_s:
            # Fell behind (slow sink, blocked loop): skip the missed ticks. The next window
            # still starts where the last one ended, so no trade time is lost.
            tick += int(-delay / interval_s)
        await asyncio.sleep(max(delay, 0.0))
        now = clock.now_ms()
        if now <= window_start:
            continue
        window_start = max(window_start, now - MAX_CATCH_UP_MS)
        trades: list[Trade] = []
        for model in models:
            # A model may already stand later than our window (a backfill "up to now" by a
            # clock that then stepped back): its window starts where it stands.
            start = max(window_start, model.next_start_ms or window_start)
            if start < now:
                trades.extend(model.trades_between(start, now, intensity))
        window_start = now
        if trades:
            # Stable: each model's trades stay in their (ts, id) order.
            trades.sort(key=_ts)
            await sink(trades)


def _ts(trade: Trade) -> int:
    return trade.ts

"""The trades every in-process benchmark uses: generated once per run by the mock market model.

PEPE (12 price decimals, whole-token lots: the largest products and sums of the presets) at an
average of 50 trades/s, bursty as the model makes it: 1,000,000 trades span about 5.5 hours, so
every interval up to 1h closes many candles. Ids are the model's UUIDv7-layout strings.
"""

from __future__ import annotations

import functools

from memetrade.domain.market_model import MarketModel
from memetrade.domain.symbols import PRESETS
from memetrade.domain.trades import Trade

__all__ = ["START_MS", "SYMBOL", "tape"]

SYMBOL = "PEPE"
START_MS = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
RATE = 50.0
WINDOW_MS = 60_000


@functools.cache
def tape(n: int) -> tuple[Trade, ...]:
    """The first ``n`` trades of the seeded PEPE path, sorted by ``(ts, id)``."""
    model = MarketModel(PRESETS[SYMBOL], seed=3)
    out: list[Trade] = []
    t = START_MS
    while len(out) < n:
        out += model.trades_between(t, t + WINDOW_MS, RATE)
        t += WINDOW_MS
    return tuple(out[:n])

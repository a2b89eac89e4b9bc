"""Batch aggregation: candles of one interval from a whole array of stored trades at once.

The vectorised twin of ``CandleBook`` for backfill, rebuilds from stored trades and derived
intervals, where the trades are already known and sorted. It returns the same ``Candle`` values
the streaming book builds (a property test holds the two equal), at tens of millions of trades
per second instead of about one million, because every per-trade step runs inside numpy.

Design, and why:

* Input is columns, not ``Trade`` objects: ``ts``, ``price`` (ticks) and ``amount`` (lots) as
  int64 arrays and ``buy`` (the taker's side, true for ``Side.BUY``) as a bool array, sorted by
  the trade order key ``(ts, id)``, plus the ids. Sorted input makes each
  candle a contiguous run, so open/close are the first/last element of the run and the
  aggregates are ``ufunc.reduceat`` over run starts: no sort, no hashing, one pass per column.
  The taker buy volumes are the same sums over ``amount * buy`` (sells contribute zero), so
  they cost a multiply and the sums again, with no branch per trade.
* Ids are unique (they are the store's primary key); this path does no de-duplication, unlike
  the streaming book, which must recognise replays.
* Only non-empty candles are returned, as the store keeps them; readers materialise empty
  intervals (``candles.fill_gaps``).
* Exact numbers. Prices and amounts are below 2**62, but ``price * amount`` can reach 2**124 and
  a candle's sums can pass 2**63 even when each product fits (a busy PEPE hour does: ~2e5 trades
  of ~4e13 tick-lots is ~8e18). int64 would wrap silently, and float64 would round. So the high
  32-bit halves of the non-negative int64 terms are summed exactly in int64 (a sum of ``n``
  values below 2**32 fits while ``n < 2**31``), the terms themselves are summed in int64, which
  wraps modulo 2**64, and the two are joined with Python ints once per candle: the sum of the
  low halves is below 2**64, so the wrapped sum determines it. When a product itself may not
  fit in int64, price and amount are split into 31-bit limbs first and the four partial
  products are summed the same way. The split costs about two extra passes over the trades;
  Python ints per trade would cost 50x.

Pure: numpy is the one non-stdlib import, and nothing here does I/O or reads a clock.
"""

from collections.abc import Sequence
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from memetrade.domain.candles import Candle

__all__ = ["aggregate"]

I64 = npt.NDArray[np.int64]

_LOW31 = np.int64(0x7FFF_FFFF)
# A per-trade product is computed in int64 only when its float estimate is below this, which
# leaves a wide margin (a factor of 2) for float rounding against the true limit 2**63.
_SAFE_PRODUCT = float(2**62)


def aggregate(
    interval_ms: int,
    ts: I64,
    price: I64,
    amount: I64,
    buy: npt.NDArray[np.bool_],
    ids: Sequence[str],
) -> list[Candle]:
    """Return the non-empty candles of ``interval_ms`` over the trades, oldest first.

    The trades are given column-wise: ``ts`` (epoch ms), ``price`` (ticks, >= 1) and ``amount``
    (lots, >= 1) as int64 arrays below 2**62, ``buy`` (whether the taker bought) as a bool
    array, and ``ids``, all of one length and sorted by ``(ts, id)``; ids must be unique. Raise
    ``ValueError`` if the columns differ in length or ``interval_ms`` is not positive.
    """
    n = len(ts)
    if not len(price) == len(amount) == len(buy) == len(ids) == n:
        raise ValueError("ts, price, amount, buy and ids must have the same length")
    if interval_ms <= 0:
        raise ValueError("interval_ms must be positive")
    if n == 0:
        return []
    if n >= 2**31:
        # The high/low split below sums values < 2**32 in int64: exact below 2**31 terms.
        raise ValueError("at most 2**31 - 1 trades per call; aggregate in chunks")
    opens = ts - ts % interval_ms
    starts = np.flatnonzero(opens[1:] != opens[:-1]) + 1
    starts = np.concatenate((np.zeros(1, dtype=np.intp), starts))
    lasts = np.empty_like(starts)
    lasts[:-1] = starts[1:] - 1
    lasts[-1] = n - 1

    highs = np.maximum.reduceat(price, starts)
    lows = np.minimum.reduceat(price, starts)
    counts = np.diff(np.append(starts, n))
    # The maxima bound the buy columns too (a buy amount is the amount or 0).
    max_price, max_amount = int(price.max()), int(amount.max())
    volumes = _sums(amount, starts, max_amount)
    quotes = _quote_sums(price, amount, starts, max_price, max_amount)
    buy_amount = amount * buy
    buy_volumes = _sums(buy_amount, starts, max_amount)
    buy_quotes = _quote_sums(price, buy_amount, starts, max_price, max_amount, owned=True)

    first_keys = zip(ts[starts].tolist(), _pick(ids, starts), strict=True)
    last_keys = zip(ts[lasts].tolist(), _pick(ids, lasts), strict=True)
    # ``map`` over columns calls ``Candle`` from C with no per-candle Python bytecode: building
    # the candle objects is most of the cost at 1s (about 1 µs each), not the numpy passes.
    return list(
        map(
            Candle,
            opens[starts].tolist(),
            price[starts].tolist(),
            highs.tolist(),
            lows.tolist(),
            price[lasts].tolist(),
            volumes,
            quotes,
            counts.tolist(),
            first_keys,
            last_keys,
            buy_volumes,
            buy_quotes,
        )
    )


def _pick(ids: Sequence[str], index: npt.NDArray[np.intp]) -> list[str]:
    if len(index) == 1:
        return [ids[int(index[0])]]
    picked: tuple[str, ...] = itemgetter(*index.tolist())(ids)
    return list(picked)


def _sums(
    values: I64, starts: npt.NDArray[np.intp], max_value: int, *, owned: bool = False
) -> list[int]:
    """Exact per-run sums of non-negative int64 ``values`` (each below 2**63). ``owned``: the
    array is a temporary of ours and may be overwritten."""
    if max_value * len(values) < 2**63:
        # No run can overflow: one reduceat, the common case for volumes.
        sums: list[int] = np.add.reduceat(values, starts).tolist()
        return sums
    # A run's sum is ``(high << 32) + low``, with ``high`` the exact sum of the upper 32-bit
    # halves and ``0 <= low < 2**64`` the sum of the lower ones; int64 sums wrap modulo 2**64,
    # so the wrapped full sum gives ``low`` without a pass to mask the lower halves out. The
    # shift runs in place when we may: not allocating an array of a million trades saves page
    # faults that cost as much as the pass itself.
    wrapped = np.add.reduceat(values, starts).tolist()
    high = np.add.reduceat(np.right_shift(values, 32, out=values if owned else None), starts)
    return [
        (h << 32) + (w - (h << 32)) % 2**64 for h, w in zip(high.tolist(), wrapped, strict=True)
    ]


def _quote_sums(
    price: I64,
    amount: I64,
    starts: npt.NDArray[np.intp],
    max_price: int,
    max_amount: int,
    *,
    owned: bool = False,
) -> list[int]:
    """Exact per-run sums of ``price * amount``, each column at most its given maximum.
    ``owned``: ``amount`` is a temporary of ours and may be overwritten."""
    if float(max_price) * float(max_amount) < _SAFE_PRODUCT:
        products = np.multiply(price, amount, out=amount if owned else None)
        return _sums(products, starts, max_price * max_amount, owned=True)
    # price = p1 * 2**31 + p0 and amount = a1 * 2**31 + a0 with every limb below 2**31, so each
    # partial product is below 2**62 and fits; the sum is p1a1 * 2**62 + (p1a0 + p0a1) * 2**31
    # + p0a0.
    p1, p0 = price >> 31, price & _LOW31
    a1, a0 = amount >> 31, amount & _LOW31
    limit = 2**62
    top = _sums(p1 * a1, starts, limit, owned=True)
    mid1 = _sums(p1 * a0, starts, limit, owned=True)
    mid2 = _sums(p0 * a1, starts, limit, owned=True)
    bottom = _sums(p0 * a0, starts, limit, owned=True)
    return [
        (t << 62) + ((m1 + m2) << 31) + b
        for t, m1, m2, b in zip(top, mid1, mid2, bottom, strict=True)
    ]

"""An independent, deliberately naive reference for the candle book, plus shared test helpers.

The reference works on the ``Decimal`` values the test generated (never on the book's integer
ticks and lots): group the trades by ``ts - ts % interval_ms``, sort each group by the order key
``(ts, id)``, and sum in ``Decimal`` (the taker buy volumes over the trades whose taker bought).
Empty intervals are flat at the previous close; nothing
exists before the first trade. The book's candles are rendered to ``Decimal`` through
``format_units`` (as the service serves them) before they are compared.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import strategies as st

from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import Candle, CandleRules, CandleUpdate, flat_candle
from memetrade.domain.intervals import INTERVALS, Interval
from memetrade.domain.numbers import format_units
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Side, Trade, make_trade

SPEC = SymbolSpec("MEME", 6, 2)
HOUR = 3_600_000
# 90 seconds before an hour boundary (which is also a 15m, 5m and 1m boundary), so that short
# spans stay inside one hour and long ones cross every interval's boundary.
T0 = (1_700_000_000_000 // HOUR + 1) * HOUR - 90_000

# Generous rules: every generated trade is accepted and nothing leaves memory.
WIDE_RULES = CandleRules(max_trade_age_ms=6 * HOUR, max_trade_ahead_ms=5_000, history_limit=10_000)


@dataclass(frozen=True)
class RefTrade:
    id: str
    ts: int
    price: Decimal
    amount: Decimal
    side: Side


@dataclass(frozen=True)
class RefCandle:
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    buy_volume: Decimal
    buy_quote_volume: Decimal


def bucket(ts: int, interval_ms: int) -> int:
    return ts - ts % interval_ms


def reference_candles(
    trades: Iterable[RefTrade], interval_ms: int, start: int, end: int
) -> list[RefCandle]:
    """Every candle with an open time in ``[start, end]`` (``start`` aligned), oldest first."""
    unique: dict[str, RefTrade] = {}
    for trade in trades:
        unique.setdefault(trade.id, trade)
    groups: dict[int, list[RefTrade]] = {}
    for trade in unique.values():
        groups.setdefault(bucket(trade.ts, interval_ms), []).append(trade)
    if not groups:
        return []
    out: list[RefCandle] = []
    close: Decimal | None = None
    for t in range(min(groups), end + 1, interval_ms):
        group = sorted(groups.get(t, []), key=lambda trade: (trade.ts, trade.id))
        if group:
            prices = [trade.price for trade in group]
            buys = [trade for trade in group if trade.side is Side.BUY]
            candle = RefCandle(
                t,
                group[0].price,
                max(prices),
                min(prices),
                group[-1].price,
                sum((trade.amount for trade in group), Decimal(0)),
                sum((trade.price * trade.amount for trade in group), Decimal(0)),
                len(group),
                sum((trade.amount for trade in buys), Decimal(0)),
                sum((trade.price * trade.amount for trade in buys), Decimal(0)),
            )
        else:
            assert close is not None
            zero = Decimal(0)
            candle = RefCandle(t, close, close, close, close, zero, zero, 0, zero, zero)
        close = candle.close
        if t >= start:
            out.append(candle)
    return out


def to_ref(candle: Candle, spec: SymbolSpec = SPEC) -> RefCandle:
    """Render a book candle as the service would serve it, back into ``Decimal``."""
    p, a = spec.price_decimals, spec.amount_decimals

    def dec(units: int, decimals: int) -> Decimal:
        return Decimal(format_units(units, decimals))

    return RefCandle(
        candle.open_time,
        dec(candle.open, p),
        dec(candle.high, p),
        dec(candle.low, p),
        dec(candle.close, p),
        dec(candle.volume, a),
        dec(candle.quote_volume, p + a),
        candle.trades,
        dec(candle.buy_volume, a),
        dec(candle.buy_quote_volume, p + a),
    )


def merge_candles(open_time: int, parts: Sequence[Candle]) -> Candle:
    """The candle made of ``parts`` (consecutive finer candles, oldest first)."""
    assert parts, "a candle always has at least one finer candle inside it"
    full = [c for c in parts if c.trades]
    if not full:
        close = parts[0].close
        return flat_candle(open_time, close)
    return Candle(
        open_time,
        full[0].open,
        max(c.high for c in full),
        min(c.low for c in full),
        full[-1].close,
        sum(c.volume for c in full),
        sum(c.quote_volume for c in full),
        sum(c.trades for c in full),
        full[0].first,
        full[-1].last,
        sum(c.buy_volume for c in full),
        sum(c.buy_quote_volume for c in full),
    )


def trade_pair(
    tid: str, ts: int, ticks: int, lots: int = 1, side: Side = Side.BUY
) -> tuple[Trade, RefTrade]:
    """A domain trade built through ``make_trade`` from ``Decimal`` edge values, and its twin."""
    price = Decimal(ticks).scaleb(-SPEC.price_decimals)
    amount = Decimal(lots).scaleb(-SPEC.amount_decimals)
    return make_trade(SPEC, tid, price, amount, side, ts), RefTrade(tid, ts, price, amount, side)


ids = st.text(alphabet="abqz09-", min_size=1, max_size=4)


@st.composite
def trade_sets(
    draw: st.DrawFn, max_size: int = 25, spans_s: Sequence[int] = (2, 150, 4_000)
) -> list[tuple[Trade, RefTrade]]:
    """Distinct-id trades from ``T0`` on: clustered seconds, shared milliseconds, equal prices."""
    span = draw(st.sampled_from(spans_s))
    rows = draw(
        st.lists(
            st.tuples(
                ids,
                st.one_of(st.integers(0, min(span, 3)), st.integers(0, span)),
                st.sampled_from([0, 1, 500, 999]),
                st.integers(1, 30),
                st.integers(1, 500),
                st.sampled_from(Side),
            ),
            min_size=1,
            max_size=max_size,
            unique_by=lambda row: row[0],
        )
    )
    return [
        trade_pair(tid, T0 + sec * 1000 + ms, ticks, lots, side)
        for tid, sec, ms, ticks, lots, side in rows
    ]


class Consumer:
    """What a subscriber to every stream of one book sees: checks the stream rules on each
    drain and keeps the latest published state of every candle."""

    def __init__(self, book: CandleBook) -> None:
        self.book = book
        self.seq = dict.fromkeys(INTERVALS, 0)
        self.latest: dict[tuple[Interval, int], CandleUpdate] = {}
        self.drains: list[list[CandleUpdate]] = []

    def drain(self) -> list[CandleUpdate]:
        updates = self.book.drain()
        seen: set[tuple[Interval, int]] = set()
        for update in updates:
            key = (update.interval, update.candle.open_time)
            assert key not in seen, f"{key} published twice in one drain"
            seen.add(key)
            assert update.symbol == self.book.symbol
            assert update.seq == self.seq[update.interval] + 1, "seq must grow by 1 per stream"
            self.seq[update.interval] = update.seq
            assert update.closed == (update.candle.open_time < self.book.open_time(update.interval))
            assert update.candle.open_time % update.interval.ms == 0
            assert update.candle.open_time <= self.book.open_time(update.interval)
            self.latest[key] = update
        for interval in INTERVALS:
            assert self.book.seq(interval) == self.seq[interval]
            # Within one interval, updates come in time order.
            times = [u.candle.open_time for u in updates if u.interval == interval]
            assert times == sorted(times)
        self.drains.append(updates)
        return updates

    def view(self, interval: Interval) -> list[Candle]:
        return sorted(
            (u.candle for (i, _), u in self.latest.items() if i == interval),
            key=lambda c: c.open_time,
        )


def assert_matches_reference(book: CandleBook, trades: Iterable[RefTrade], lead: int = 2) -> None:
    """Every interval's candles, from a little before the first trade to the book's open
    candle, equal the reference over ``trades``."""
    trades = list(trades)
    first_ts = min(t.ts for t in trades)
    for interval in INTERVALS:
        ms = interval.ms
        start = bucket(first_ts, ms) - lead * ms
        end = book.open_time(interval)
        got = [to_ref(c) for c in book.candles(interval, start, end + lead * ms)]
        want = reference_candles(trades, ms, start, end)
        assert got == want, f"{interval} candles differ from the reference"

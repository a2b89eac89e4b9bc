"""The exchange state as bytes: a canonical JSON encoding, for snapshots and hashes.

Everything that decides future behaviour is in it: every book's orders in priority order (best
level first, FIFO within a level), stop orders in placement order, balances, fee volume
windows, id counters, book update ids and last prices. Collections whose order carries no
meaning (balances, volumes) are sorted, so two engines in the same state encode to the same
bytes whatever history led there; ``state_hash`` is the SHA-256 of these bytes.
"""

import msgspec

from memetrade.domain.exchange.book import Balance, Book, Order
from memetrade.domain.exchange.commands import (
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from memetrade.domain.exchange.fees import VolumeWindow
from memetrade.domain.exchange.matching import Core

__all__ = ["FORMAT", "decode_state", "encode_state"]

FORMAT = 2


class _OrderRecord(msgspec.Struct, array_like=True):
    id: int
    user_id: int
    side: Side
    type: OrderType
    tif: TimeInForce
    stp: SelfTradePrevention
    post_only: bool
    price: int | None
    stop_price: int | None
    quantity: int | None
    quote_amount: int | None
    remaining: int
    filled: int
    cum_quote: int
    cum_fee: int
    reserved: int
    per_lot: int
    client_order_id: str | None
    ts: int


class _BookRecord(msgspec.Struct, array_like=True):
    symbol: str
    update_id: int
    last_price: int | None
    bids: list[_OrderRecord]
    asks: list[_OrderRecord]
    stops: list[_OrderRecord]


class _WindowRecord(msgspec.Struct, array_like=True):
    user_id: int
    day: int
    days: list[int]
    amounts: list[int]


class _State(msgspec.Struct, array_like=True):
    format: int
    next_order_id: int
    next_trade_id: int
    books: list[_BookRecord]
    balances: list[tuple[int, str, int, int]]
    windows: list[_WindowRecord]


# JSON rather than MessagePack: balances, fees and 30-day volumes are unbounded integers in
# quote units (10^-12 USDT for PEPE's steps), and MessagePack stops at 2**64.
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_State)


def _record(o: Order) -> _OrderRecord:
    return _OrderRecord(
        o.id,
        o.user_id,
        o.side,
        o.type,
        o.tif,
        o.stp,
        o.post_only,
        o.price,
        o.stop_price,
        o.quantity,
        o.quote_amount,
        o.remaining,
        o.filled,
        o.cum_quote,
        o.cum_fee,
        o.reserved,
        o.per_lot,
        o.client_order_id,
        o.ts,
    )


def _book_record(book: Book) -> _BookRecord:
    return _BookRecord(
        book.market.symbol,
        book.update_id,
        book.last_price,
        [_record(o) for o in book.bids.orders()],
        [_record(o) for o in book.asks.orders()],
        [_record(o) for o in sorted(book.stops.values(), key=lambda o: o.id)],
    )


def encode_state(core: Core) -> bytes:
    balances = sorted(
        (b.user_id, b.asset, b.available, b.locked)
        for assets in core.balances.values()
        for b in assets.values()
    )
    windows = [
        _WindowRecord(user_id, w.day, *w.buckets()) for user_id, w in sorted(core.windows.items())
    ]
    state = _State(
        FORMAT,
        core.next_order_id,
        core.next_trade_id,
        [_book_record(core.books[symbol]) for symbol in sorted(core.books)],
        balances,
        windows,
    )
    return _encoder.encode(state)


def decode_state(core: Core, payload: bytes) -> None:
    """Load ``payload`` into a freshly built ``core`` (same markets and fee schedule).

    Raise ``ValueError`` if the payload is not a snapshot of these markets.
    """
    try:
        state = _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not an exchange snapshot: {exc}") from None
    if state.format != FORMAT:
        raise ValueError(f"snapshot format {state.format}, expected {FORMAT}")
    missing = {b.symbol for b in state.books} - set(core.books)
    if missing:
        raise ValueError(f"snapshot has unknown markets: {', '.join(sorted(missing))}")
    core.next_order_id = state.next_order_id
    core.next_trade_id = state.next_trade_id
    for user_id, asset, available, locked in state.balances:
        cell = core.balance(user_id, asset)
        cell.available, cell.locked = available, locked
    for record in state.books:
        book = core.books[record.symbol]
        book.update_id = record.update_id
        book.last_price = record.last_price
        for rec in [*record.bids, *record.asks]:
            order = _order(core, book, rec)
            (book.bids if order.is_buy else book.asks).append(order)
        for rec in record.stops:
            book.add_stop(_order(core, book, rec))
    for w in state.windows:
        core.windows[w.user_id] = VolumeWindow.from_buckets(
            w.day, w.days, w.amounts, core.tier_table
        )


def _order(core: Core, book: Book, rec: _OrderRecord) -> Order:
    market = book.market
    base: Balance = core.balance(rec.user_id, market.base)
    quote: Balance = core.balance(rec.user_id, market.quote)
    order = Order(
        rec.id,
        rec.user_id,
        market.symbol,
        rec.side,
        rec.type,
        rec.tif,
        rec.stp,
        rec.post_only,
        rec.price,
        rec.stop_price,
        rec.quantity,
        rec.quote_amount,
        rec.client_order_id,
        rec.ts,
        base,
        quote,
        rec.side == "buy",
        rec.remaining,
        rec.per_lot,
        rec.reserved,
        rec.filled,
        rec.cum_quote,
        rec.cum_fee,
    )
    core.orders[order.id] = order
    core.user_orders.setdefault(order.user_id, {})[order.id] = order
    return order

"""The trade: the one fact every candle, ticker and indicator is derived from."""

import enum
from decimal import Decimal

import msgspec

from memetrade.domain.errors import InvalidTrade
from memetrade.domain.numbers import format_units, parse_units
from memetrade.domain.symbols import SymbolSpec

__all__ = ["MAX_ID_LENGTH", "Side", "Trade", "make_trade"]

MAX_ID_LENGTH = 64
# Prices and amounts are stored as signed 64-bit integers; anything larger is not a real trade.
_MAX_UNITS = 2**62


class Side(enum.Enum):
    BUY = "Buy"
    SELL = "Sell"


class Trade(msgspec.Struct, frozen=True, eq=False):
    """One executed trade. ``price`` is in ticks and ``amount`` in lots of the symbol; ``ts`` is
    epoch milliseconds. Trades of the same millisecond are ordered by ``id``.

    ``seq`` is the trade's number in its symbol's log: 1, 2, 3, … in the order trades were
    accepted (so a late trade gets a higher number than earlier-stamped ones). It is where the
    trade sits in the log, not part of the fact, so it takes no part in equality; 0 means "not
    numbered yet" (the store numbers such trades when it writes them).

    A frozen msgspec Struct rather than a frozen dataclass: every trade is built once when
    parsed and once when numbered, and a frozen dataclass's ``__init__`` (a ``__setattr__``
    call per field) was a fifth of durable ingest's CPU.
    """

    id: str
    symbol: str
    price: int
    amount: int
    side: Side
    ts: int
    seq: int = 0

    def _fact(self) -> tuple[str, str, int, int, Side, int]:
        return self.id, self.symbol, self.price, self.amount, self.side, self.ts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trade):
            return NotImplemented
        return self._fact() == other._fact()

    def __hash__(self) -> int:
        return hash(self._fact())

    def price_text(self, spec: SymbolSpec) -> str:
        return format_units(self.price, spec.price_decimals)

    def amount_text(self, spec: SymbolSpec) -> str:
        return format_units(self.amount, spec.amount_decimals)


def make_trade(
    spec: SymbolSpec,
    trade_id: str,
    price: str | int | Decimal,
    amount: str | int | Decimal,
    side: Side,
    ts: int,
) -> Trade:
    """Build a trade from edge values, checking each against the symbol's steps.

    Raise ``InvalidTrade`` naming the first field that is wrong.
    """
    if not trade_id or len(trade_id) > MAX_ID_LENGTH or not trade_id.isprintable():
        raise InvalidTrade(f"id must be 1..{MAX_ID_LENGTH} printable characters")
    try:
        ticks = parse_units(price, spec.price_decimals, "price")
        lots = parse_units(amount, spec.amount_decimals, "amount")
    except ValueError as exc:
        raise InvalidTrade(f"{spec.name}: {exc}") from None
    if ticks <= 0:
        raise InvalidTrade("price must be positive")
    if lots <= 0:
        raise InvalidTrade("amount must be positive")
    if ticks >= _MAX_UNITS or lots >= _MAX_UNITS:
        raise InvalidTrade("price or amount is too large")
    if ts < 0:
        raise InvalidTrade("timestamp must not be before 1970")
    return Trade(trade_id, spec.name, ticks, lots, side, ts)

"""Markets (trading pairs) and the integer units the exchange counts in.

A market trades a base asset (the meme token, named like its symbol) against a quote asset
(USDT by default). Prices are integer ticks (``10**-price_decimals`` quote per base) and
quantities integer lots (``10**-amount_decimals`` base). Balances are integers in each asset's
own unit: a base asset's unit is its market's lot; the quote asset's unit is
``10**-quote_decimals`` with ``quote_decimals`` the largest ``price_decimals + amount_decimals``
of the markets quoted in it, so that every notional ``price * quantity`` is a whole number of
quote units.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from memetrade.domain.numbers import format_units, parse_units
from memetrade.domain.symbols import SymbolSpec

__all__ = ["DEFAULT_QUOTE", "Market", "build_markets"]

DEFAULT_QUOTE = "USDT"


@dataclass(frozen=True, slots=True)
class Market:
    """One trading pair. ``min_notional`` is in quote units."""

    symbol: str
    base: str
    quote: str
    price_decimals: int
    amount_decimals: int
    quote_decimals: int
    min_notional: int

    def __post_init__(self) -> None:
        if self.base == self.quote:
            raise ValueError(f"{self.symbol}: base and quote asset are both {self.base}")
        if self.quote_decimals < self.price_decimals + self.amount_decimals:
            # A notional would not be a whole number of quote units.
            raise ValueError(f"{self.symbol}: quote_decimals below price + amount decimals")
        if self.min_notional < 0:
            raise ValueError(f"{self.symbol}: min_notional must not be negative")

    @classmethod
    def from_spec(
        cls,
        spec: SymbolSpec,
        quote_decimals: int,
        quote: str = DEFAULT_QUOTE,
        min_notional: int | None = None,
    ) -> "Market":
        """Build a market from a symbol spec; ``min_notional`` defaults to 1 whole quote asset."""
        floor = 10**quote_decimals if min_notional is None else min_notional
        return cls(
            spec.name,
            spec.name,
            quote,
            spec.price_decimals,
            spec.amount_decimals,
            quote_decimals,
            floor,
        )

    @property
    def notional_scale(self) -> int:
        """Quote units per (tick x lot)."""
        scale: int = 10 ** (self.quote_decimals - self.price_decimals - self.amount_decimals)
        return scale

    def notional(self, price: int, quantity: int) -> int:
        """The quote units ``quantity`` lots cost at ``price`` ticks, exactly."""
        return price * quantity * self.notional_scale

    def parse_price(self, text: str | int | Decimal) -> int:
        return parse_units(text, self.price_decimals, "price")

    def parse_quantity(self, text: str | int | Decimal) -> int:
        return parse_units(text, self.amount_decimals, "quantity")

    def parse_quote(self, text: str | int | Decimal) -> int:
        return parse_units(text, self.quote_decimals, "quote amount")

    def price_text(self, ticks: int) -> str:
        return format_units(ticks, self.price_decimals)

    def quantity_text(self, lots: int) -> str:
        return format_units(lots, self.amount_decimals)

    def quote_text(self, units: int) -> str:
        return format_units(units, self.quote_decimals)


def build_markets(
    specs: Iterable[SymbolSpec],
    quote: str = DEFAULT_QUOTE,
    min_notional: str | int | Decimal = "1",
    min_notional_by_symbol: Mapping[str, str | int | Decimal] | None = None,
) -> tuple[Market, ...]:
    """Build one market per spec, all quoted in ``quote``.

    ``min_notional`` (and the per-symbol overrides) are amounts of the quote asset as text or
    numbers (``"1"`` is 1 USDT), converted exactly to quote units.
    """
    specs = tuple(specs)
    if not specs:
        raise ValueError("at least one market is needed")
    quote_decimals = max(0, max(s.price_decimals + s.amount_decimals for s in specs))
    overrides = dict(min_notional_by_symbol or {})
    unknown = set(overrides) - {s.name for s in specs}
    if unknown:
        raise ValueError(f"min_notional for unknown symbols: {', '.join(sorted(unknown))}")
    markets = []
    for spec in specs:
        floor = parse_units(overrides.get(spec.name, min_notional), quote_decimals, "min_notional")
        markets.append(Market.from_spec(spec, quote_decimals, quote, floor))
    return tuple(markets)

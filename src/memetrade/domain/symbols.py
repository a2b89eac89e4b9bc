"""Tradable symbols and their price and amount steps."""

from dataclasses import dataclass
from decimal import Decimal

from memetrade.domain.numbers import format_units

__all__ = ["PRESETS", "SymbolSpec", "parse_symbol_spec"]


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """A symbol with its tick size (``10**-price_decimals``) and lot size
    (``10**-amount_decimals``).

    ``reference_price`` is where the mock generator starts its random walk.
    """

    name: str
    price_decimals: int
    amount_decimals: int
    reference_price: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        if not self.name.isascii() or not self.name.isalnum() or not self.name.isupper():
            raise ValueError(f"symbol {self.name!r} must be upper-case ASCII letters and digits")
        if len(self.name) > 20:
            raise ValueError(f"symbol {self.name!r} is longer than 20 characters")
        for what, decimals in (("tick", self.price_decimals), ("lot", self.amount_decimals)):
            if not -8 <= decimals <= 18:
                raise ValueError(f"{self.name}: {what} size must be 10^-18 .. 10^8")
        # is_finite first: comparing NaN raises InvalidOperation, and infinity is no price.
        if not self.reference_price.is_finite() or self.reference_price <= 0:
            raise ValueError(f"{self.name}: reference price must be a positive number")

    @property
    def tick_size(self) -> str:
        return format_units(1, self.price_decimals)

    @property
    def lot_size(self) -> str:
        return format_units(1, self.amount_decimals)


# The usual meme tokens, priced against USDT: ticks fine enough that a price carries four or
# five significant digits at today's scales.
PRESETS: dict[str, SymbolSpec] = {
    spec.name: spec
    for spec in (
        SymbolSpec("PEPE", 12, 0, Decimal("0.000001234")),
        SymbolSpec("DOGE", 6, 2, Decimal("0.1234")),
        SymbolSpec("SHIB", 11, 0, Decimal("0.00001234")),
        SymbolSpec("FLOKI", 10, 0, Decimal("0.0001234")),
    )
}


def _decimals_of_step(step: str, symbol: str) -> int:
    value = Decimal(step)
    if value <= 0:
        raise ValueError(f"{symbol}: step {step} must be positive")
    exponent = value.normalize().as_tuple()
    if exponent.digits != (1,) or not isinstance(exponent.exponent, int):
        raise ValueError(f"{symbol}: step {step} must be a power of ten (like 0.001 or 1)")
    return -exponent.exponent


def parse_symbol_spec(text: str) -> SymbolSpec:
    """Parse ``NAME`` (a preset, or defaults) or ``NAME:tick:lot[:reference_price]``."""
    parts = text.strip().split(":")
    name = parts[0].strip().upper()
    if len(parts) == 1:
        return PRESETS.get(name) or SymbolSpec(name, 8, 2)
    if len(parts) not in (3, 4):
        raise ValueError(f"symbol {text!r}: expected NAME or NAME:tick:lot[:reference_price]")
    try:
        tick = _decimals_of_step(parts[1], name)
        lot = _decimals_of_step(parts[2], name)
        reference = Decimal(parts[3]) if len(parts) == 4 else Decimal(1)
    except ArithmeticError:
        raise ValueError(f"symbol {text!r}: tick, lot and price must be numbers") from None
    return SymbolSpec(name, tick, lot, reference)

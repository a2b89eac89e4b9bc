"""Exact fixed-point numbers.

Inside the core every price is an integer count of ticks and every amount an integer count of
lots; a tick or lot is a power of ten (``10**-decimals``), as on every major exchange. That keeps
arithmetic exact and as fast as Python gets. ``Decimal`` and text appear only at the edges.
"""

from decimal import Decimal, InvalidOperation

__all__ = ["format_units", "parse_units"]

# Far beyond any real price or amount (trades stop at 2**62 units); keeps absurd input cheap.
_MAX_DIGITS = 100


def parse_units(value: str | int | Decimal, decimals: int, what: str) -> int:
    """Return ``value`` as an integer count of ``10**-decimals`` units.

    Raise ``ValueError`` with a readable reason when the value is not a finite number or is not
    a whole number of units (``what`` names the quantity in that message).
    """
    if isinstance(value, str) and decimals >= 0:
        plain = _plain_units(value, decimals)
        if plain is not None:
            return plain
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{what} must be a finite number")
    if not number:
        return 0
    if number.adjusted() + decimals >= _MAX_DIGITS:
        raise ValueError(f"{what} {value} is too large")
    # Integer arithmetic on the digits, not Decimal operations: those round to the context's
    # 28 significant digits (so a non-multiple could pass, rounded) and trap on huge exponents.
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    coefficient = int("".join(map(str, digits)))
    shift = exponent + decimals
    if shift >= 0:
        units: int = coefficient * 10**shift
    elif -shift > len(digits) or coefficient % 10**-shift:
        step = format_units(1, decimals)
        raise ValueError(f"{what} {value} is not a multiple of its step {step}")
    else:
        units = coefficient // 10**-shift
    return -units if sign else units


def _plain_units(text: str, decimals: int) -> int | None:
    """Plain positional text (``"0.000001234"``, ``"1000"``; what clients send nearly always)
    as units, with string and integer operations only: about a fifth of the Decimal route.
    None for anything else (signs, exponents, spaces, too many decimals), which then takes
    the Decimal route and its error messages."""
    whole, _, frac = text.partition(".")
    if (
        len(text) > _MAX_DIGITS
        or not (whole or frac)
        or not (whole.isdigit() or not whole)
        or not (frac.isdigit() or not frac)
        or not whole.isascii()
        or not frac.isascii()
    ):
        return None
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        return None
    units: int = int(whole or "0") * 10**decimals
    if frac:
        scale: int = 10 ** (decimals - len(frac))
        units += int(frac) * scale
    return units


def format_units(units: int, decimals: int) -> str:
    """Render ``units * 10**-decimals`` in plain positional notation (never an exponent).

    Trailing fractional zeros are dropped: ``format_units(1234, 9) == "0.000001234"``.
    """
    if decimals <= 0:
        return str(units * 10**-decimals)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(decimals + 1, "0")
    whole, frac = digits[:-decimals], digits[-decimals:].rstrip("0")
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"

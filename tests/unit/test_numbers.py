"""Exact fixed-point numbers: parse_units and format_units."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memetrade.domain.numbers import format_units, parse_units

decimals_ = st.integers(-8, 18)
units_ = st.integers(-(10**30), 10**30)


def exact(units: int, decimals: int) -> Decimal:
    """``units * 10**-decimals`` built from text: Decimal arithmetic would round at 28 digits."""
    return Decimal(f"{units}E{-decimals}")


@settings(max_examples=300)
@given(units=units_, decimals=decimals_)
def test_format_then_parse_roundtrips_exactly(units: int, decimals: int) -> None:
    text = format_units(units, decimals)
    assert "e" not in text.lower()
    assert parse_units(text, decimals, "x") == units
    # The text is the exact value, written positionally.
    assert Decimal(text) == exact(units, decimals)


@settings(max_examples=300)
@given(units=units_, decimals=decimals_, data=st.data())
def test_any_decimal_spelling_of_a_value_on_the_step_parses_to_its_units(
    units: int, decimals: int, data: st.DataObject
) -> None:
    # The same value as a Decimal with trailing zeros, an exponent, or as text of either.
    value = exact(units, decimals)
    extra = data.draw(st.integers(0, 5))
    padded = exact(units * 10**extra, decimals + extra)
    assert padded == value
    assert padded.as_tuple() != value.as_tuple() or extra == 0 or units == 0
    for spelling in (value, padded, str(value), str(padded), f"{value:E}"):
        assert parse_units(spelling, decimals, "x") == units
    if decimals <= 0:
        assert parse_units(units * 10**-decimals, decimals, "x") == units


@settings(max_examples=300)
@given(units=units_, decimals=decimals_, digits=st.integers(1, 40))
def test_a_value_between_steps_is_refused_however_many_digits_it_has(
    units: int, decimals: int, digits: int
) -> None:
    # One unit of the last digit past the step: beyond Decimal's default 28-digit precision
    # too, where rounding must not quietly turn it into a multiple.
    text = format(exact(units * 10**digits + 1, decimals + digits), "f")
    with pytest.raises(ValueError, match=r"^x .* is not a multiple of its step "):
        parse_units(text, decimals, "x")


def test_a_tiny_price_renders_exactly_without_an_exponent() -> None:
    assert format_units(1234, 9) == "0.000001234"
    assert parse_units("0.000001234", 9, "price") == 1234
    assert parse_units(Decimal("1.234E-6"), 9, "price") == 1234


def test_point_one_plus_point_two_is_point_three() -> None:
    volume = parse_units("0.1", 8, "amount") + parse_units("0.2", 8, "amount")
    assert format_units(volume, 8) == "0.3"


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [
        (0, 0, "0"),
        (0, 8, "0"),
        (5, 0, "5"),
        (-5, 2, "-0.05"),
        (150, 2, "1.5"),
        (100, 2, "1"),
        (1, 18, "0.000000000000000001"),
        (10**20, 18, "100"),
        (7, -2, "700"),
        (-3, -8, "-300000000"),
        (123456789, 4, "12345.6789"),
    ],
)
def test_format_units_renders_plain_positional_text(units: int, decimals: int, text: str) -> None:
    assert format_units(units, decimals) == text


@pytest.mark.parametrize(
    ("value", "decimals", "units"),
    [
        ("1", 0, 1),
        (" 2.50 ", 2, 250),
        ("-0.00", 2, 0),
        ("0E+1000000", 2, 0),
        ("1e2", -2, 1),
        (Decimal("1.0000"), 0, 1),
        (42, 3, 42_000),
        ("12345678901234567890123456789012", 0, 12345678901234567890123456789012),
    ],
)
def test_parse_units_examples(value: str | int | Decimal, decimals: int, units: int) -> None:
    assert parse_units(value, decimals, "price") == units


@pytest.mark.parametrize(
    ("value", "decimals", "message"),
    [
        ("abc", 2, "price 'abc' is not a number"),
        ("", 2, "price '' is not a number"),
        ("1,5", 2, "price '1,5' is not a number"),
        ("NaN", 2, "price must be a finite number"),
        ("-Infinity", 2, "price must be a finite number"),
        (Decimal("sNaN"), 2, "price must be a finite number"),
        ("0.001", 2, "price 0.001 is not a multiple of its step 0.01"),
        ("150", -2, "price 150 is not a multiple of its step 100"),
        ("1.0000000000000000000000000001", 0, "price 1.0000000000000000000000000001 is not a"),
        ("1e-1000000", 18, "price 1e-1000000 is not a multiple of its step 0.000000000000000001"),
        ("9e999999", 18, "price 9e999999 is too large"),
        ("1e5000", 0, "price 1e5000 is too large"),
    ],
)
def test_parse_units_refuses_with_a_readable_message(
    value: str | Decimal, decimals: int, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        parse_units(value, decimals, "price")


@given(text=st.text(max_size=12))
def test_parse_units_raises_only_value_error_on_arbitrary_text(text: str) -> None:
    try:
        units = parse_units(text, 6, "amount")
    except ValueError as exc:
        message = str(exc)
    else:
        assert Decimal(text) == exact(units, 6)
        return
    assert message.startswith("amount")

"""Symbols: specs, presets and the NAME[:tick:lot[:reference]] form."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memetrade.domain.numbers import format_units
from memetrade.domain.symbols import PRESETS, SymbolSpec, parse_symbol_spec


def test_a_bare_preset_name_gives_the_preset_in_any_case_and_padding() -> None:
    assert parse_symbol_spec("PEPE") is PRESETS["PEPE"]
    assert parse_symbol_spec("  doge ") is PRESETS["DOGE"]
    assert PRESETS["PEPE"].tick_size == "0.000000000001"
    assert PRESETS["DOGE"].lot_size == "0.01"


def test_an_unknown_bare_name_gets_default_steps() -> None:
    spec = parse_symbol_spec("wif")
    assert spec == SymbolSpec("WIF", 8, 2, Decimal(1))
    assert (spec.tick_size, spec.lot_size) == ("0.00000001", "0.01")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bonk:0.0000001:1", SymbolSpec("BONK", 7, 0)),
        ("BONK:1e-7:10:0.0000123", SymbolSpec("BONK", 7, -1, Decimal("0.0000123"))),
        ("X1:0.0010:0.10", SymbolSpec("X1", 3, 1)),
        ("BIG:100:0.000000000000000001", SymbolSpec("BIG", -2, 18)),
        ("PEPE:0.01:1", SymbolSpec("PEPE", 2, 0)),  # explicit steps override the preset
    ],
)
def test_the_full_form_sets_tick_lot_and_reference(text: str, expected: SymbolSpec) -> None:
    assert parse_symbol_spec(text) == expected


@given(
    tick=st.integers(-8, 18),
    lot=st.integers(-8, 18),
    name=st.from_regex(r"[A-Z][A-Z0-9]{0,19}", fullmatch=True),
)
def test_steps_written_out_parse_back_to_their_decimals(tick: int, lot: int, name: str) -> None:
    text = f"{name}:{format_units(1, tick)}:{format_units(1, lot)}"
    spec = parse_symbol_spec(text)
    assert (spec.name, spec.price_decimals, spec.amount_decimals) == (name, tick, lot)
    assert (spec.tick_size, spec.lot_size) == (format_units(1, tick), format_units(1, lot))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "symbol '' must be upper-case ASCII letters and digits"),
        ("BAD-NAME", "must be upper-case ASCII letters and digits"),
        ("ÄPFEL", "must be upper-case ASCII letters and digits"),
        ("A" * 21, "is longer than 20 characters"),
        ("X:0.01", "expected NAME or NAME:tick:lot"),
        ("X:0.01:1:2:3", "expected NAME or NAME:tick:lot"),
        ("X:abc:1", "tick, lot and price must be numbers"),
        ("X:0.01:1:cheap", "tick, lot and price must be numbers"),
        ("X:nan:1", "tick, lot and price must be numbers"),
        ("X:0.02:1", "step 0.02 must be a power of ten"),
        ("X:0.01:25", "step 25 must be a power of ten"),
        ("X:inf:1", "step inf must be a power of ten"),
        ("X:0:1", "step 0 must be positive"),
        ("X:-0.01:1", "step -0.01 must be positive"),
        ("X:1e-19:1", "tick size must be 10^-18 .. 10^8"),
        ("X:1:1e9", "lot size must be 10^-18 .. 10^8"),
        ("X:0.01:1:0", "reference price must be a positive number"),
        ("X:0.01:1:-1", "reference price must be a positive number"),
        ("X:0.01:1:nan", "reference price must be a positive number"),
        ("X:0.01:1:Infinity", "reference price must be a positive number"),
    ],
)
def test_bad_specs_are_refused_with_value_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("^", r"\^")):
        parse_symbol_spec(text)


@given(text=st.text(alphabet="AZaz09:.-eE nN", max_size=16))
def test_parse_symbol_spec_raises_only_value_error(text: str) -> None:
    try:
        spec = parse_symbol_spec(text)
    except ValueError:
        return
    assert spec.name == text.split(":")[0].strip().upper()
    assert -8 <= spec.price_decimals <= 18
    assert -8 <= spec.amount_decimals <= 18
    assert spec.reference_price.is_finite()
    assert spec.reference_price > 0


def test_symbol_spec_is_frozen() -> None:
    spec = SymbolSpec("ABC", 2, 2)
    with pytest.raises(AttributeError):
        spec.name = "XYZ"  # type: ignore[misc]

"""Choosing an indicator by name and parameters, from query parameters or a compact token.

Two spellings of the same thing:

* named parameters (``name=bollinger&period=20&k=2.5``), for the REST route;
* a token (``bollinger20_2.5``): the name, then the parameters in order joined by ``_``, any
  trailing ones left at their defaults (``sma20``, ``rsi14``, ``macd``, ``macd5_35_5``,
  ``vwap``), for ``?indicators=`` on the candle stream.

Every refusal is an ``InvalidIndicator`` naming what is wrong.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from memetrade.domain.errors import InvalidIndicator, UnknownIndicator
from memetrade.domain.indicators import Bollinger, Ema, Indicator, Macd, Rsi, Sma, Vwap

__all__ = ["INDICATOR_NAMES", "MAX_INDICATORS", "MAX_PERIOD", "make_indicator", "parse_token"]

# Enough for the 200-period averages charts use; it bounds the history a request reads
# (20 x period candles of warm-up for the recurrences).
MAX_PERIOD = 200
# Indicators one candle stream may carry.
MAX_INDICATORS = 8
_MAX_K = Decimal(10)


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    default: str
    decimal: bool = False  # otherwise an integer period


def _int_param(param: _Param, text: str) -> int:
    if not text.isascii() or not text.lstrip("+-").isdigit() or len(text) > 12:
        raise InvalidIndicator(f"{param.name} {text!r} is not an integer")
    value = int(text)
    if not 1 <= value <= MAX_PERIOD:
        raise InvalidIndicator(f"{param.name} must be 1..{MAX_PERIOD}, not {value}")
    return value


def _k_param(param: _Param, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidIndicator(f"{param.name} {text!r} is not a number") from None
    if not value.is_finite() or not 0 < value <= _MAX_K:
        raise InvalidIndicator(f"{param.name} must be above 0 and at most {_MAX_K}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -2:
        raise InvalidIndicator(f"{param.name} may have at most 2 decimals")
    # One spelling per value (2.50 is 2.5, 10.0 is 10), so keys and echoed params agree.
    return Decimal(int(value)) if value == value.to_integral_value() else value.normalize()


def _macd(values: Mapping[str, int | Decimal]) -> Indicator:
    fast, slow, signal = int(values["fast"]), int(values["slow"]), int(values["signal"])
    if fast >= slow:
        raise InvalidIndicator(f"fast ({fast}) must be shorter than slow ({slow})")
    return Macd(fast, slow, signal)


_Build = Callable[[Mapping[str, int | Decimal]], Indicator]
_PERIOD = _Param("period", "20")

_KINDS: dict[str, tuple[tuple[_Param, ...], _Build]] = {
    "sma": ((_PERIOD,), lambda v: Sma(int(v["period"]))),
    "ema": ((_PERIOD,), lambda v: Ema(int(v["period"]))),
    "rsi": ((_Param("period", "14"),), lambda v: Rsi(int(v["period"]))),
    "bollinger": (
        (_PERIOD, _Param("k", "2", decimal=True)),
        lambda v: Bollinger(int(v["period"]), Decimal(v["k"])),
    ),
    "macd": (
        (_Param("fast", "12"), _Param("slow", "26"), _Param("signal", "9")),
        _macd,
    ),
    "vwap": ((), lambda v: Vwap()),
}
INDICATOR_NAMES = tuple(_KINDS)


def _kind(name: str) -> tuple[tuple[_Param, ...], _Build]:
    try:
        return _KINDS[name.lower()]
    except KeyError:
        raise UnknownIndicator(
            f"unknown indicator {name!r}; use one of {', '.join(INDICATOR_NAMES)}"
        ) from None


def _build(params: tuple[_Param, ...], build: _Build, given: Mapping[str, str]) -> Indicator:
    values: dict[str, int | Decimal] = {}
    for param in params:
        text = given.get(param.name, param.default).strip()
        values[param.name] = (_k_param if param.decimal else _int_param)(param, text)
    return build(values)


def make_indicator(name: str, params: Mapping[str, str]) -> Indicator:
    """The indicator ``name`` with ``params`` (text values; missing ones take defaults).

    Raise ``UnknownIndicator`` for a name we do not compute and ``InvalidIndicator`` for a
    parameter that is unknown to it or out of range.
    """
    known, build = _kind(name)
    names = {param.name for param in known}
    for extra in params:
        if extra not in names:
            allowed = ", ".join(sorted(names)) or "none"
            raise InvalidIndicator(f"{name} takes no parameter {extra!r} (parameters: {allowed})")
    return _build(known, build, params)


_TOKEN = re.compile(r"([a-z]+)([0-9][0-9._]*)?")


def parse_token(token: str) -> Indicator:
    """The indicator a compact token names: ``sma20``, ``bollinger20_2.5``, ``macd``, …"""
    text = token.strip().lower()
    match = _TOKEN.fullmatch(text)
    if match is None:
        raise InvalidIndicator(f"{token!r} is not an indicator like sma20, rsi14 or macd")
    name, rest = match.group(1), match.group(2)
    known, build = _kind(name)
    parts = rest.split("_") if rest else []
    if len(parts) > len(known):
        raise InvalidIndicator(f"{token!r}: {name} takes at most {len(known)} parameters")
    return _build(known, build, {p.name: part for p, part in zip(known, parts, strict=False)})

"""Wire formats of tickers, indicator points, snapshots and signal events.

Like ``wire.py``: numbers go from exact integers straight to JSON number text. Price-like
indicator values have the symbol's tick decimals + 4 (``PRICE_EXTRA_DIGITS``), RSI two
decimals, ``change_percent`` two decimals; trailing zeros are dropped.
"""

from collections.abc import Sequence

from memetrade.api.wire import candle_json
from memetrade.domain.candles import CandleUpdate
from memetrade.domain.indicator_series import Point
from memetrade.domain.indicators import PRICE_EXTRA_DIGITS, RSI_DECIMALS, Indicator, Unit, Value
from memetrade.domain.intervals import Interval
from memetrade.domain.numbers import format_units
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.ticker import TickerStats
from memetrade.services.analytics import SignalChange, Snapshot

__all__ = [
    "indicator_kline_message",
    "indicators_json",
    "params_json",
    "point_json",
    "signal_json",
    "snapshot_json",
    "ticker_json",
]


def _decimals(spec: SymbolSpec, indicator: Indicator) -> int:
    if indicator.unit is Unit.PERCENT:
        return RSI_DECIMALS
    return spec.price_decimals + PRICE_EXTRA_DIGITS


def _number(units: int | None, decimals: int) -> str:
    return "null" if units is None else format_units(units, decimals)


def _fields(spec: SymbolSpec, indicator: Indicator, value: Value) -> str:
    """``"value":…`` or ``"upper":…,"middle":…,"lower":…`` (nulls while warming up)."""
    decimals = _decimals(spec, indicator)
    if isinstance(value, tuple):
        parts = zip(indicator.lines, value, strict=True)
        return ",".join(f'"{line}":{format_units(v, decimals)}' for line, v in parts)
    if len(indicator.lines) > 1:
        return ",".join(f'"{line}":null' for line in indicator.lines)
    return f'"value":{_number(value, decimals)}'


def params_json(indicator: Indicator) -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in indicator.params.items()) + "}"


def point_json(spec: SymbolSpec, indicator: Indicator, point: Point) -> str:
    """A REST point: ``{"timestamp", "value"}`` or the named lines; ``"provisional": true``
    on the open candle's point."""
    extra = ',"provisional":true' if point.provisional else ""
    return (
        f'{{"timestamp":{point.candle.open_time},'
        f"{_fields(spec, indicator, point.values[0])}{extra}}}"
    )


def indicators_json(spec: SymbolSpec, indicators: Sequence[Indicator], point: Point) -> str:
    """``{"sma20": 0.1234, "bollinger20": {"upper": …}, …}`` for one candle."""
    parts = []
    for indicator, value in zip(indicators, point.values, strict=True):
        if len(indicator.lines) > 1:
            parts.append(f'"{indicator.key}":{{{_fields(spec, indicator, value)}}}')
        else:
            assert not isinstance(value, tuple)
            parts.append(f'"{indicator.key}":{_number(value, _decimals(spec, indicator))}')
    return "{" + ",".join(parts) + "}"


def indicator_kline_message(
    spec: SymbolSpec, indicators: Sequence[Indicator], interval: Interval, seq: int, point: Point
) -> str:
    """A ``/ws/klines`` message with an ``indicators`` object after the candle."""
    update = CandleUpdate(spec.name, interval, point.candle, not point.provisional, seq)
    return (
        f'{{"symbol":"{update.symbol}","interval":"{interval.name}","seq":{seq},'
        f'"candle":{candle_json(spec, interval, update.candle, update.closed)},'
        f'"indicators":{indicators_json(spec, indicators, point)}}}'
    )


def _snapshot_fields(spec: SymbolSpec, snapshot: Snapshot) -> str:
    pd = spec.price_decimals
    return (
        f'"symbol":"{snapshot.symbol}","interval":"{snapshot.interval.name}",'
        f'"price":{format_units(snapshot.price, pd)},'
        f'"sma20":{_number(snapshot.sma, pd + PRICE_EXTRA_DIGITS)},'
        f'"signal":"{snapshot.signal.value}","timestamp":{snapshot.timestamp}'
    )


def snapshot_json(spec: SymbolSpec, snapshot: Snapshot) -> str:
    return f'{{"type":"snapshot",{_snapshot_fields(spec, snapshot)}}}'


def signal_json(spec: SymbolSpec, change: SignalChange) -> str:
    return (
        f'{{"type":"signal",{_snapshot_fields(spec, change.snapshot)},'
        f'"previous":"{change.previous.value}"}}'
    )


def ticker_json(
    spec: SymbolSpec, interval: Interval, stats: TickerStats | None, snapshot: Snapshot | None
) -> str:
    pd, ad = spec.price_decimals, spec.amount_decimals
    sma = _number(snapshot.sma if snapshot else None, pd + PRICE_EXTRA_DIGITS)
    signal = snapshot.signal.value if snapshot else "NEUTRAL"
    head = f'{{"symbol":"{spec.name}","interval":"{interval.name}"'
    if stats is None:
        return (
            f'{head},"price":null,"open":null,"high":null,"low":null,"change":null,'
            f'"change_percent":null,"volume":0,"quote_volume":0,"trades":0,'
            f'"sma20":{sma},"signal":"{signal}","window_start":null,"timestamp":null}}'
        )
    return (
        f'{head},"price":{format_units(stats.price, pd)},'
        f'"open":{format_units(stats.open, pd)},"high":{format_units(stats.high, pd)},'
        f'"low":{format_units(stats.low, pd)},"change":{format_units(stats.change, pd)},'
        f'"change_percent":{format_units(stats.change_percent, 2)},'
        f'"volume":{format_units(stats.volume, ad)},'
        f'"quote_volume":{format_units(stats.quote_volume, pd + ad)},'
        f'"trades":{stats.trades},"sma20":{sma},"signal":"{signal}",'
        f'"window_start":{stats.window_start},'
        f'"timestamp":{_number(stats.last_trade_ts, 0)}}}'
    )

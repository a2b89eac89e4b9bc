"""Candle intervals, aligned to the Unix epoch in UTC."""

from dataclasses import dataclass

from memetrade.domain.errors import UnknownInterval

__all__ = ["INTERVALS", "Interval", "parse_interval"]


@dataclass(frozen=True, slots=True)
class Interval:
    name: str
    ms: int

    def open_time(self, ts: int) -> int:
        """Return the open time of the candle containing ``ts`` (epoch ms)."""
        return ts - ts % self.ms

    def __str__(self) -> str:
        return self.name


# Finest first: every interval is a whole multiple of the one before, which is what lets the
# candle book build each one by merging the finer candles.
INTERVALS: tuple[Interval, ...] = (
    Interval("1s", 1_000),
    Interval("1m", 60_000),
    Interval("5m", 300_000),
    Interval("15m", 900_000),
    Interval("1h", 3_600_000),
)
_BY_NAME = {interval.name: interval for interval in INTERVALS}


def parse_interval(name: str) -> Interval:
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise UnknownInterval(f"unknown interval {name!r}; use one of {known}") from None

"""Query parameters shared by the REST routes, read the same way everywhere."""

from memetrade.api.errors import ApiError
from memetrade.api.wire import parse_time

__all__ = ["limit_param", "time_param"]


def limit_param(text: str | None, default: int, maximum: int) -> int:
    """``limit`` as an integer in ``1..maximum`` (``default`` when absent); 400 otherwise."""
    if text is None:
        return default
    try:
        limit = int(text)
    except ValueError:
        raise ApiError(400, "invalid_limit", f"limit {text!r} is not an integer") from None
    if not 1 <= limit <= maximum:
        raise ApiError(400, "invalid_limit", f"limit must be 1..{maximum}, not {limit}")
    return limit


def time_param(name: str, text: str | None) -> int | None:
    """A time (epoch ms or ISO 8601) as epoch ms, None when absent; 400 when unreadable."""
    if text is None:
        return None
    try:
        value = parse_time(text)
    except (ValueError, OverflowError) as exc:
        raise ApiError(400, "invalid_time", f"{name}: {exc}") from None
    if not 0 <= value < 2**53:
        raise ApiError(400, "invalid_time", f"{name} is out of range")
    return value

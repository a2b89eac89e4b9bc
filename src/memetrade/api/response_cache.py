"""A cache of encoded candle responses, valid while their stream's sequence number holds.

Every change to a (symbol, interval) candle stream — a trade, a clock tick closing a candle,
a late revision — bumps that stream's sequence number, and stored history only changes
through those same updates. So an encoded response tagged with the sequence number it was
built at is exactly right for as long as that number is current. Under load most requests
hit between two changes, and a hit costs a dict lookup instead of rendering 100 candles.
"""

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["ResponseCache"]


class ResponseCache:
    """Least-recently-used, at most ``max_entries`` responses."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: OrderedDict[Hashable, tuple[int, bytes, int]] = OrderedDict()
        self._max = max_entries

    def get(self, key: Hashable, seq: int) -> tuple[bytes, int] | None:
        """The body and candle count cached for ``key`` at ``seq``, if any."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != seq:
            return None
        self._entries.move_to_end(key)
        return entry[1], entry[2]

    def put(self, key: Hashable, seq: int, body: bytes, count: int) -> None:
        self._entries[key] = (seq, body, count)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

"""Waiting between retries of something that is away (a database, the bus): exponential
backoff with jitter, so many retrying clients do not hammer a server that just came back all
in the same instant."""

import asyncio
import random

__all__ = ["Backoff"]


class Backoff:
    """Delays doubling from ``first_s`` to ``cap_s``, each drawn from its upper half."""

    def __init__(self, first_s: float = 0.1, cap_s: float = 5.0) -> None:
        self._first = first_s
        self._cap = cap_s
        self._next = first_s
        self.retries = 0

    @property
    def next_s(self) -> float:
        """The longest the next ``sleep`` may take."""
        return self._next

    def reset(self) -> None:
        self._next = self._first
        self.retries = 0

    async def sleep(self) -> None:
        await asyncio.sleep(self._next * random.uniform(0.5, 1.0))
        self._next = min(self._cap, self._next * 2)
        self.retries += 1

"""What the file journal and the file snapshot store share: one I/O thread each, and making a
directory's entries (new, renamed, deleted files) durable."""

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from memetrade.ports import StorageError

__all__ = ["DiskThread", "fsync_directory"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def fsync_directory(path: Path) -> None:
    """Flush ``path``'s entries: without it a created, renamed or deleted file can come back
    as it was after a power loss, even when the file's own data was flushed."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskThread:
    """The one thread that does a file adapter's blocking I/O.

    Calls run one at a time, in the order they were submitted, so the state they touch needs no
    lock, and an append submitted before another is on disk before it. Cancelling a caller does
    not stop a call already submitted: a write still completes (or fails) as a whole.
    """

    def __init__(self, name: str, what: str) -> None:
        self._name = name
        self._what = what  # Names the file or directory in "not open" errors.
        # None while stopped; checked on the event loop thread before any work is submitted.
        self._pool: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._pool is not None

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=self._name)

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``fn`` on the thread after everything submitted before it."""
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self._what} is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(*args, **kwargs))

    async def stop(self, last: Callable[[], None]) -> None:
        """Refuse new calls, run ``last`` after the ones already submitted, end the thread."""
        pool = self._pool
        if pool is None:
            return
        self._pool = None
        try:
            await asyncio.get_running_loop().run_in_executor(pool, last)
        finally:
            # Nothing is left to run: the thread exits by itself.
            pool.shutdown(wait=False)

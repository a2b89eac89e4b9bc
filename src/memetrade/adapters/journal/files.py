"""The embedded command journal: append-only segment files in a directory of their own.

Design, and why:

* Layout: segment files ``journal-<seq of its first entry, 20 digits>.log`` in the record
  format of ``records.py``, and ``journal.lock``. A new segment starts when an append finds the
  current one at ``segment_bytes`` (64 MiB by default) or more, so an append never spans two
  files and ``truncate_before`` deletes whole files.
* Group commit: ``append`` encodes all its entries into one record, writes it with one
  ``write`` and flushes it with one ``fdatasync`` (the data and the file size, nothing a read
  does not need), on the journal's own thread, so the event loop runs on meanwhile.
* A failed write or flush poisons the journal: after a failed fsync the kernel may have marked
  the unwritten pages clean, so a retry could report success for data that never reached the
  disk. Every later append raises; reopening recovers from what is really on disk.
* Opening scans only the last segment, the only one a crash can tear. A damaged record there is
  a torn tail when no intact append start follows it: the file is cut there, with a warning
  (an append is durable as a whole when it returns; a crash during one leaves part of its
  record, which is dropped whole, a valid state since none of it was acknowledged). A damaged record
  followed by an intact append start is damage to acknowledged entries: ``open`` raises
  ``JournalCorruptError`` and recovery stops, since starting without those commands would
  silently forget acknowledged ones. Older segments are checked as they are read: ``read``
  raises ``JournalCorruptError`` at the first damaged or missing entry.
* One process at a time: an exclusive ``flock`` on ``journal.lock`` while open, which the kernel
  releases when the process dies, however it dies.
* A read remembers where it stopped, so reading the journal in chunks costs one pass over the
  files, not a scan of a segment's start per chunk.

POSIX only (``flock``, ``fdatasync``, directory fsync).
"""

import bisect
import contextlib
import fcntl
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from memetrade.adapters.journal.disk import DiskThread, fsync_directory
from memetrade.adapters.journal.records import SegmentReader, encode, find_append_start
from memetrade.ports import JournalCorruptError, StorageError

__all__ = ["SEGMENT_BYTES", "FileJournal"]

log = logging.getLogger(__name__)

SEGMENT_BYTES: Final = 64 * 1024 * 1024
_PREFIX: Final = "journal-"
_SUFFIX: Final = ".log"
_LOCK: Final = "journal.lock"


class FileJournal:
    """A ``CommandJournal`` in the directory ``directory`` (created with its parents on
    ``open``). After ``close`` it may be opened again."""

    def __init__(self, directory: str | Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        if segment_bytes < 1:
            raise ValueError("segment_bytes must be positive")
        self._dir = Path(directory)
        self._segment_bytes = segment_bytes
        self._thread = DiskThread("journal", f"journal {self._dir}")
        # Everything below is touched only on the journal's thread, except _last, which
        # last_seq() reads on the event loop: an int, replaced whole once an append is durable.
        self._firsts: list[int] = []  # Seq of the first entry of each segment, ascending.
        self._fd: int | None = None  # The last segment, open for appending.
        self._size = 0  # Its length in bytes.
        self._last = 0
        self._lock_fd: int | None = None
        self._failed: str | None = None
        # Where the last read stopped: (the next seq it would return, the seq of the record
        # holding it, the first seq of that record's segment, the record's byte offset).
        self._cursor: tuple[int, int, int, int] | None = None

    def __repr__(self) -> str:
        return f"FileJournal({str(self._dir)!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._thread.running:
            raise StorageError(f"journal {self._dir} is already open")
        self._thread.start()
        try:
            await self._thread.run(self._open_sync)
        except BaseException:
            with contextlib.suppress(StorageError):  # The open error is the one to report.
                await self._thread.stop(self._close_sync)
            raise

    async def close(self) -> None:
        # Queued behind every append submitted before, which therefore completes.
        await self._thread.stop(self._close_sync)

    def _open_sync(self) -> None:
        self._failed, self._cursor = None, None
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock(self._dir / _LOCK)
            self._firsts = sorted(
                int(p.name[len(_PREFIX) : -len(_SUFFIX)])
                for p in self._dir.glob(f"{_PREFIX}{'[0-9]' * 20}{_SUFFIX}")
            )
            if not self._firsts:
                self._fd = _create(self._segment(1))
                fsync_directory(self._dir)
                self._firsts, self._last = [1], 0
            else:
                self._recover_tail()
                self._fd = os.open(self._segment(self._firsts[-1]), os.O_WRONLY | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise StorageError(f"cannot open journal {self._dir}: {exc}") from exc

    def _recover_tail(self) -> None:
        """Set ``_last`` from the last segment, cutting off a torn tail (module docstring)."""
        path = self._segment(self._firsts[-1])
        with path.open("r+b") as file:
            reader = SegmentReader(file, 0, self._firsts[-1])
            for _ in reader:
                pass
            self._last = reader.seq - 1
            if reader.damage is None:
                return
            file.seek(reader.offset)
            tail = file.read()
            if reader.misnumbered or find_append_start(tail, 1, reader.seq) is not None:
                raise JournalCorruptError(
                    f"journal segment {path} is damaged at byte {reader.offset} (entry"
                    f" {reader.seq}: {reader.damage}), not in a torn last append: acknowledged"
                    " commands would be lost, so it will not open; restore it from a copy"
                )
            log.warning(
                "journal segment %s: cut off a torn tail of %d bytes at byte %d (entry %d: %s),"
                " the rest of an append a crash interrupted",
                path,
                len(tail),
                reader.offset,
                reader.seq,
                reader.damage,
            )
            file.truncate(reader.offset)
            file.flush()
            os.fsync(file.fileno())

    def _close_sync(self) -> None:
        fds = [fd for fd in (self._fd, self._lock_fd) if fd is not None]
        self._fd = self._lock_fd = None
        self._cursor = None
        errors: list[OSError] = []
        for fd in fds:  # Closing the lock file releases the lock.
            try:
                os.close(fd)
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise StorageError(f"closing journal {self._dir}: {errors[0]}") from errors[0]

    def _segment(self, first: int) -> Path:
        return self._dir / f"{_PREFIX}{first:020d}{_SUFFIX}"

    # -- writes ---------------------------------------------------------------------------------

    async def append(self, entries: Sequence[bytes]) -> int:
        # A copy: a cancelled caller may reuse its list while the thread still encodes this one.
        return await self._thread.run(self._append_sync, list(entries))

    def _append_sync(self, entries: list[bytes]) -> int:
        if self._failed is not None:
            raise StorageError(
                f"journal {self._dir} failed a write earlier ({self._failed}); reopen it"
            )
        if not entries:
            return self._last
        data = encode(entries, self._last + 1)
        try:
            if self._size >= self._segment_bytes:
                self._rotate()
            fd = self._fd
            assert fd is not None  # Open: the thread runs nothing after _close_sync.
            view = memoryview(data)
            written = 0
            while written < len(data):
                written += os.write(fd, view[written:])
            os.fdatasync(fd)
        except OSError as exc:
            self._failed = str(exc)
            raise StorageError(f"journal write to {self._dir} failed: {exc}") from exc
        self._size += len(data)
        self._last += len(entries)
        return self._last

    def _rotate(self) -> None:
        first = self._last + 1
        fd = _create(self._segment(first))
        fsync_directory(self._dir)
        old, self._fd = self._fd, fd
        self._firsts.append(first)
        self._size = 0
        if old is not None:
            os.close(old)

    async def truncate_before(self, seq: int) -> None:
        await self._thread.run(self._truncate_sync, seq)

    def _truncate_sync(self, seq: int) -> None:
        # Segments wholly below the one holding ``seq`` go; the one holding the last entry (and
        # any after it, which only a crash mid-rotation leaves empty) always stays.
        keep_from = bisect.bisect_right(self._firsts, min(seq, self._last)) - 1
        if keep_from <= 0:
            return
        self._cursor = None
        try:
            # Oldest first: a crash part way leaves the segments kept contiguous.
            while keep_from:
                self._segment(self._firsts[0]).unlink()
                del self._firsts[0]
                keep_from -= 1
            fsync_directory(self._dir)
        except OSError as exc:
            raise StorageError(f"cannot delete old journal segments in {self._dir}: {exc}") from exc

    # -- reads ----------------------------------------------------------------------------------

    def last_seq(self) -> int:
        return self._last

    async def read(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        if from_seq < 1:
            raise ValueError("journal entries are numbered from 1")
        return await self._thread.run(self._read_sync, from_seq, limit)

    def _read_sync(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        if from_seq > self._last or limit <= 0:
            return []
        if from_seq < self._firsts[0]:
            raise StorageError(
                f"journal {self._dir} keeps entries from {self._firsts[0]} on;"
                f" {from_seq} was dropped by truncate_before"
            )
        cursor = self._cursor
        if cursor is not None and cursor[0] == from_seq:
            _, seq, first, offset = cursor
            index = bisect.bisect_left(self._firsts, first)
        else:
            index = bisect.bisect_right(self._firsts, from_seq) - 1
            seq, offset = self._firsts[index], 0
        out: list[tuple[int, bytes]] = []
        try:
            while True:
                first = self._firsts[index]
                path = self._segment(first)
                with path.open("rb") as file:
                    reader = SegmentReader(file, offset, seq)
                    for entry in reader:
                        if entry[0] >= from_seq:
                            out.append(entry)
                            if len(out) == limit:
                                self._cursor = (entry[0] + 1, reader.seq, first, reader.offset)
                                return out
                if reader.damage is not None:
                    raise JournalCorruptError(
                        f"journal segment {path} is damaged at byte {reader.offset} (entry"
                        f" {reader.seq}: {reader.damage})"
                    )
                seq, offset, index = reader.seq, 0, index + 1
                if seq > self._last:
                    self._cursor = (seq, seq, first, reader.offset)
                    return out
                if index == len(self._firsts) or self._firsts[index] != seq:
                    raise JournalCorruptError(
                        f"journal segment {path} ends before entry {seq}, which is not where"
                        " the next segment starts: entries are missing"
                    )
        except OSError as exc:
            raise StorageError(f"cannot read journal {self._dir}: {exc}") from exc


def _create(path: Path) -> int:
    # O_EXCL: a segment is created once, by the one process holding the lock.
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(f"journal {path.parent} is open in another process") from None
    except BaseException:
        os.close(fd)
        raise
    return fd

"""The embedded snapshot store: one file per snapshot, ``snapshot-<seq, 20 digits>.bin``.

A file is a 56-byte header, ``[magic 8][seq u64][length u64][sha256 32]`` (little-endian), then
the payload. The seq is in the header as well as in the name, so a file copied or renamed to the
wrong name is refused rather than restored at the wrong place in the journal; the SHA-256 of the
payload catches damage anywhere in it, and the length a file cut short.

A snapshot is written to a temporary name, flushed, renamed over its final name and the
directory flushed: a crash leaves the old file or the new one, never part of one. Temporary files
a crash left behind are deleted on ``open``. POSIX only (directory fsync).
"""

import hashlib
import logging
import os
import struct
from pathlib import Path
from typing import Final

from memetrade.adapters.journal.disk import DiskThread, fsync_directory
from memetrade.ports import StorageError

__all__ = ["FileSnapshotStore"]

log = logging.getLogger(__name__)

_MAGIC: Final = b"MTSNAP\x00\x01"
_HEADER: Final = struct.Struct("<8sQQ32s")
_PREFIX: Final = "snapshot-"
_SUFFIX: Final = ".bin"
_TEMP_SUFFIX: Final = ".tmp"


class _Unusable(Exception):
    """A snapshot file that cannot be restored; the message says why."""


class FileSnapshotStore:
    """A ``SnapshotStore`` in the directory ``directory`` (created with its parents on
    ``open``), keeping the newest ``keep`` snapshots. After ``close`` it may be opened again."""

    def __init__(self, directory: str | Path, *, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self._dir = Path(directory)
        self._keep = keep
        self._thread = DiskThread("snapshots", f"snapshot store {self._dir}")

    def __repr__(self) -> str:
        return f"FileSnapshotStore({str(self._dir)!r})"

    async def open(self) -> None:
        if self._thread.running:
            raise StorageError(f"snapshot store {self._dir} is already open")
        self._thread.start()
        try:
            await self._thread.run(self._open_sync)
        except BaseException:
            await self._thread.stop(lambda: None)
            raise

    async def close(self) -> None:
        await self._thread.stop(lambda: None)

    def _open_sync(self) -> None:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            for stale in self._dir.glob(f"{_PREFIX}*{_SUFFIX}{_TEMP_SUFFIX}"):
                stale.unlink()
        except OSError as exc:
            raise StorageError(f"cannot open snapshot store {self._dir}: {exc}") from exc

    def _path(self, seq: int) -> Path:
        return self._dir / f"{_PREFIX}{seq:020d}{_SUFFIX}"

    def _seqs(self) -> list[int]:
        return sorted(
            int(p.name[len(_PREFIX) : -len(_SUFFIX)])
            for p in self._dir.glob(f"{_PREFIX}{'[0-9]' * 20}{_SUFFIX}")
        )

    async def seqs(self) -> list[int]:
        return await self._thread.run(self._seqs)

    async def save(self, seq: int, payload: bytes) -> None:
        if seq < 0:
            raise ValueError("a snapshot's seq is 0 (before the first entry) or more")
        await self._thread.run(self._save_sync, seq, payload)

    def _save_sync(self, seq: int, payload: bytes) -> None:
        path = self._path(seq)
        temp = path.with_name(path.name + _TEMP_SUFFIX)
        header = _HEADER.pack(_MAGIC, seq, len(payload), hashlib.sha256(payload).digest())
        try:
            with temp.open("wb") as file:
                file.write(header)
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
            fsync_directory(self._dir)
            # The newest are kept, damaged or not: a damaged one is only skipped when loading.
            dropped = self._seqs()[: -self._keep]
            for old in dropped:
                self._path(old).unlink()
            if dropped:
                fsync_directory(self._dir)
        except OSError as exc:
            raise StorageError(f"cannot save snapshot {path}: {exc}") from exc

    async def load_latest_valid(self) -> tuple[int, bytes] | None:
        return await self._thread.run(self._load_sync)

    def _load_sync(self) -> tuple[int, bytes] | None:
        try:
            seqs = self._seqs()
        except OSError as exc:
            raise StorageError(f"cannot list snapshots in {self._dir}: {exc}") from exc
        for seq in reversed(seqs):
            path = self._path(seq)
            try:
                return seq, _read(path, seq)
            except (OSError, _Unusable) as exc:
                log.warning("snapshot %s is unusable (%s); trying an older one", path, exc)
        return None


def _read(path: Path, seq: int) -> bytes:
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise _Unusable(f"{len(data)} bytes, shorter than the header")
    magic, stored_seq, length, digest = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise _Unusable("not a snapshot file (unknown header)")
    if stored_seq != seq:
        raise _Unusable(f"its header says seq {stored_seq}, its name {seq}")
    if len(data) != _HEADER.size + length:
        raise _Unusable(f"{len(data) - _HEADER.size} payload bytes where {length} were written")
    payload = data[_HEADER.size :]
    if hashlib.sha256(payload).digest() != digest:
        raise _Unusable("SHA-256 mismatch")
    return payload

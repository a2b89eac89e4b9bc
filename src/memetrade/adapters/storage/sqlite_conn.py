"""The connections every SQLite store uses: one file in WAL mode, stdlib ``sqlite3`` only.

Design, and why:

* One writer connection, used only by a single-worker thread pool. Writes are serialised in
  submission order with no locks of ours, and ``BEGIN IMMEDIATE`` never waits on another writer
  in this store. Each ``write`` is one transaction.
* Reads use a small pool of reader connections on their own threads. WAL gives each query a
  consistent snapshot while a write is in progress, so a big write never stalls reads, and a
  read never sees half a write. Readers are ``query_only``: a bug in a read path cannot write.
* Each store has a file of its own (``storage.__init__`` names them): a file has a single
  write lock, and writers of several stores taking turns on one file wait in SQLite's busy
  handler, which sleeps up to 100 ms a turn. Another process may still open the same file (a
  second server on one database): ``busy_timeout`` makes a writer wait its turn instead of
  failing at once, and a wait longer than that raises ``StorageUnavailable`` rather than
  ``StorageError``: the lock is another writer's, so the same call succeeds later, and callers
  that own the data (the trade writer, the history projector) retry it.
* ``synchronous=FULL``: in WAL mode ``NORMAL`` survives a killed process but may lose the last
  commits on power loss. What a store acknowledges must survive both (ARCHITECTURE.md), so every
  commit fsyncs the WAL; one transaction per ``write`` batch is what keeps that fast.
* Schema versions: ``PRAGMA user_version`` or a version table (see ``migrations``), migrated in
  the ``BEGIN IMMEDIATE`` transaction that opens the store, together with whatever else the
  store checks then, so a crash or a refusal leaves the file as it was.
* ``sqlite3`` errors (and ``OverflowError``: an integer too large for SQLite's INTEGER reached
  a binding) become ``StorageError`` here, at the boundary (``raise ... from exc``).

Cancelling a caller of ``write`` does not cancel the write: it still runs to COMMIT or ROLLBACK on
the writer thread, so the file is never half-written, but that caller cannot know which.
"""

import asyncio
import contextlib
import queue
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from memetrade.adapters.storage.migrations import check_version
from memetrade.ports import StorageError, StorageUnavailable

__all__ = ["BUSY_TIMEOUT_MS", "SqliteDatabase", "migrate"]

_T = TypeVar("_T")

BUSY_TIMEOUT_MS: Final = 5_000


class SqliteDatabase:
    """A writer connection and ``readers`` reader connections to the SQLite file at ``path``.

    Errors name the file by its path, after ``kind`` if given (``"exchange history in
    <path>"``); ``name`` prefixes the thread names. ``pragmas`` tune the writer connection
    beyond the settings every store needs. ``busy_timeout_ms`` is how long a call waits for
    another writer of the file before it raises ``StorageUnavailable``. After ``close`` it may
    be opened again.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        name: str,
        kind: str = "",
        readers: int,
        pragmas: Sequence[str] = (),
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        if readers < 1:
            raise ValueError("a store needs at least one reader connection")
        self.path = Path(path)
        self.label = f"{kind} in {self.path}" if kind else str(self.path)
        self._name = name
        self._reader_count = readers
        self._pragmas = tuple(pragmas)
        self._busy_timeout_ms = int(busy_timeout_ms)
        # None while closed. Every call checks these on the event loop thread before it submits
        # work, so once close() clears them no new work reaches the connections it closes.
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        # Touched only on the writer thread (and by open/close, which run there too).
        self._writer: sqlite3.Connection | None = None
        self._readers: list[sqlite3.Connection] = []
        # Idle reader connections. The reader pool has as many threads as connections, so a
        # reader task always finds one here.
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Create the file (and its directory) if needed and open the connections. ``setup``
        (migrations, checks) runs on the writer in the transaction that opens the file."""
        if self._writer_pool is not None:
            raise StorageError(f"{self.label} is already open")
        writer_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self._name}-writer")
        reader_pool = ThreadPoolExecutor(
            self._reader_count, thread_name_prefix=f"{self._name}-reader"
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(writer_pool, self._open_sync, setup)
        except BaseException as exc:
            # Close whatever _open_sync opened. The close is queued behind it on the same thread,
            # so even if we were cancelled while it still runs, it is closed once it is done.
            closing = loop.run_in_executor(writer_pool, self._close_sync, reader_pool)
            writer_pool.shutdown(wait=False)
            if not isinstance(exc, asyncio.CancelledError):
                with contextlib.suppress(StorageError):  # The open error is the one to report.
                    await closing
            raise
        self._writer_pool, self._reader_pool = writer_pool, reader_pool

    async def close(self) -> None:
        writer_pool, reader_pool = self._writer_pool, self._reader_pool
        if writer_pool is None or reader_pool is None:
            return
        self._writer_pool = self._reader_pool = None
        try:
            # Queued behind every write submitted before close(), which therefore complete.
            await asyncio.get_running_loop().run_in_executor(
                writer_pool, self._close_sync, reader_pool
            )
        finally:
            # The thread has nothing left to run and exits by itself.
            writer_pool.shutdown(wait=False)

    def require_open(self) -> None:
        """Raise ``StorageError`` unless the store is open."""
        if self._writer_pool is None:
            raise StorageError(f"{self.label} is not open")

    def _open_sync(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = writer = _connect(self.path)
            mode = _enter_wal(writer)
            if str(mode).lower() != "wal":
                raise StorageError(f"{self.path}: cannot use WAL journal mode (got {mode!r})")
            writer.execute("PRAGMA synchronous = FULL")
            for pragma in self._pragmas:
                writer.execute(pragma)
            writer.execute("BEGIN IMMEDIATE")
            try:
                setup(writer)
                writer.execute("COMMIT")
            except BaseException:
                writer.rollback()
                raise
            # After the migration, which may wait out another process's with the default.
            writer.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            for _ in range(self._reader_count):
                reader = _connect(self.path)
                self._readers.append(reader)
                self._idle.put(reader)
                reader.execute("PRAGMA query_only = ON")
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open {self.label}: {exc}") from exc

    def _close_sync(self, reader_pool: ThreadPoolExecutor) -> None:
        # Reads already submitted finish first; then nothing uses the reader connections.
        reader_pool.shutdown(wait=True)
        connections = [*self._readers, *([self._writer] if self._writer is not None else [])]
        self._readers, self._writer = [], None
        self._idle = queue.SimpleQueue()
        errors: list[sqlite3.Error] = []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error as exc:
                errors.append(exc)
        if errors:
            raise StorageError(f"closing {self.label}: {errors[0]}") from errors[0]

    # -- calls ----------------------------------------------------------------------------------

    async def write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the writer connection in one ``BEGIN IMMEDIATE`` transaction, committed
        if it returns and rolled back if it raises; return what it returns."""
        pool = self._writer_pool
        if pool is None:
            raise StorageError(f"{self.label} is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._use_writer, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on an idle reader connection; return what it returns."""
        pool = self._reader_pool
        if pool is None:
            raise StorageError(f"{self.label} is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._use_reader, fn)

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one query, read as ``read`` does."""
        return await self.read(lambda conn: conn.execute(sql, args).fetchall())

    def _use_writer(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._writer
        if conn is None:  # Only if close() raced ahead of a queued task; it cannot, but be clear.
            raise StorageError(f"{self.label} is not open")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        except (sqlite3.Error, OverflowError) as exc:
            raise self._error("write to", exc) from exc

    def _use_reader(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._idle.get_nowait()
        try:
            return fn(conn)
        except (sqlite3.Error, OverflowError) as exc:
            raise self._error("read from", exc) from exc
        finally:
            self._idle.put(conn)

    def _error(self, what: str, exc: Exception) -> StorageError:
        message = f"sqlite {what} {self.path} failed: {exc}"
        # The primary result code, without the extended bits: another connection holds the lock.
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StorageUnavailable(message)
        return StorageError(message)


def migrate(
    conn: sqlite3.Connection,
    migrations: Sequence[Sequence[str]],
    where: str,
    version_table: str | None = None,
) -> None:
    """Apply the steps of ``migrations`` past the schema version on ``conn`` (which must be in
    a write transaction): ``PRAGMA user_version``, or the rows of ``version_table`` (a constant
    of the caller, never input). ``where`` names the database in errors."""
    if version_table is None:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    else:
        conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {version_table} (
                version INTEGER NOT NULL PRIMARY KEY,
                applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
            )"""
        )
        version = conn.execute(f"SELECT coalesce(max(version), 0) FROM {version_table}").fetchone()[
            0
        ]
    check_version(where, version_table or "schema version", version, len(migrations))
    for number, step in enumerate(migrations[version:], start=version + 1):
        for statement in step:
            conn.execute(statement)
        if version_table is not None:
            conn.execute(f"INSERT INTO {version_table} (version) VALUES (?)", (number,))
    if version_table is None:
        # PRAGMA takes no parameters; the value is an int we computed.
        conn.execute(f"PRAGMA user_version = {len(migrations)}")


def _enter_wal(conn: sqlite3.Connection) -> Any:
    # Switching a fresh file to WAL needs an exclusive lock and SQLite answers "locked" at once
    # (no busy handler) while another process's first transaction (creating and migrating the
    # schema) holds it: retry for as long as the busy timeout would have waited.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module opens no implicit transactions; we BEGIN and
    # COMMIT ourselves. check_same_thread=False: a connection is created on the writer thread and
    # used on another, but only ever by one thread at a time (see SqliteDatabase).
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except BaseException:
        conn.close()
        raise
    return conn

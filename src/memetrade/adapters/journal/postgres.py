"""The scale-out command journal and snapshot store: PostgreSQL through psycopg 3 and a pool.

Design, and why:

* Tables ``exchange_journal (seq, payload)`` and ``exchange_snapshots (seq, payload, sha256)``,
  with a version table of their own, ``exchange_schema_version`` (one row per migration; the
  market-data store's is ``schema_version``), so either schema can move without the other.
  Migrations run in one transaction under an advisory lock, as the market-data store's do.
* Durability: one transaction per ``append`` (group commit: one WAL flush for the whole batch)
  with ``synchronous_commit`` turned back on if the server has it off, so an acknowledged entry
  survives a kill -9 of either process. Batches go in with binary COPY; a single entry with a
  plain INSERT, which costs one round trip less.
* Numbering: the journal numbers entries itself (one writer, the matching engine); ``seq`` is
  the primary key, so a second writer cannot interleave: its COPY collides and fails. Appends of
  one journal run one after another; after a failed one (its commit may or may not have
  happened) the next first reads the highest stored seq again.
* Cancelling a caller of ``append`` or ``save`` does not cancel the write: it runs on to COMMIT or
  ROLLBACK in a task of its own (``close`` waits for it), as in the market-data store.
* ``truncate_before`` never deletes the newest entry: it is what keeps the numbering after a
  restart.
* ``psycopg`` errors become ``StorageError`` at this boundary, with messages that name the server
  but never the password.
"""

import asyncio
import hashlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from memetrade.ports import JournalCorruptError, StorageError

__all__ = ["PostgresJournal", "PostgresSnapshotStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_Conn = psycopg.AsyncConnection[tuple[Any, ...]]

# Spells "exchjrnl"; apart from the market-data store's lock, so neither waits for the other.
_MIGRATION_LOCK: Final = 0x657863686A726E6C
_MIGRATION_LOCK_TIMEOUT: Final = "60s"
_CONNECT_TIMEOUT_S: Final = 10
_POOL_TIMEOUT_S: Final = 10.0

_MIGRATIONS: Final[tuple[tuple[LiteralString, ...], ...]] = (
    # 1: the journal and the snapshots.
    (
        "CREATE TABLE exchange_journal (seq bigint NOT NULL PRIMARY KEY, payload bytea NOT NULL)",
        """CREATE TABLE exchange_snapshots (
            seq bigint NOT NULL PRIMARY KEY,
            payload bytea NOT NULL,
            sha256 bytea NOT NULL,
            saved_at timestamptz NOT NULL DEFAULT now()
        )""",
    ),
)

_COPY_ENTRIES: Final = "COPY exchange_journal (seq, payload) FROM STDIN (FORMAT BINARY)"


class _Database:
    """A connection pool on the database at ``url``, opened once the schema is migrated."""

    def __init__(self, url: str, max_connections: int) -> None:
        self.target = _redact(url)
        self._url = url
        self._max = max_connections
        self._pool: AsyncConnectionPool[_Conn] | None = None  # None while closed.

    async def open(self) -> None:
        if self._pool is not None:
            raise StorageError(f"{self.target} is already open")
        try:
            conninfo = _conninfo(self._url)
            connect = psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            async with await connect as conn, conn.transaction():
                await self._migrate(conn)
            pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
                conninfo,
                min_size=1,
                max_size=self._max,
                open=False,
                kwargs={"autocommit": True},
                configure=_configure,
                check=AsyncConnectionPool.check_connection,
                name="memetrade-exchange",
                timeout=_POOL_TIMEOUT_S,
            )
            try:
                await pool.open(wait=True, timeout=_POOL_TIMEOUT_S)
            except BaseException:
                await pool.close()
                raise
        except psycopg.Error as exc:
            raise StorageError(f"cannot open {self.target}: {_one_line(exc)}") from exc
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await pool.close()
        except psycopg.Error as exc:
            raise StorageError(f"closing {self.target}: {_one_line(exc)}") from exc

    async def _migrate(self, conn: _Conn) -> None:
        await conn.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_MIGRATION_LOCK_TIMEOUT))
        )
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS exchange_schema_version (
                version integer NOT NULL PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM exchange_schema_version")
        row = await cur.fetchone()
        version: int = row[0] if row is not None else 0
        if version > len(_MIGRATIONS):
            raise StorageError(
                f"{self.target} has exchange schema version {version} but this memetrade knows"
                f" only up to {len(_MIGRATIONS)}; upgrade memetrade"
            )
        for number, step in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in step:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO exchange_schema_version (version) VALUES (%s)", (number,)
            )

    async def run(self, what: str, fn: Callable[[_Conn], Coroutine[Any, Any, _T]]) -> _T:
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self.target} is not open")
        try:
            async with pool.connection() as conn:
                return await fn(conn)
        except psycopg.Error as exc:
            raise StorageError(f"postgres {what} {self.target} failed: {_one_line(exc)}") from exc

    async def fetch(self, query: LiteralString, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        async def run(conn: _Conn) -> list[tuple[Any, ...]]:
            # Binary results: bytea comes back as raw bytes, not hex text to decode.
            async with conn.cursor(binary=True) as cur:
                await cur.execute(query, args)
                return await cur.fetchall()

        return await self.run("read from", run)


class _Writes:
    """Writes that finish even when their caller is cancelled; ``wait`` lets ``close`` see
    them through."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, write: Coroutine[Any, Any, _T]) -> _T:
        task = asyncio.create_task(write)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


class PostgresJournal:
    """A ``CommandJournal`` in the PostgreSQL database at ``url`` (anything libpq accepts). The
    database must exist; ``open`` creates or migrates the tables in the schema the connection's
    ``search_path`` selects. After ``close`` it may be opened again."""

    def __init__(self, url: str) -> None:
        # Appends use one connection at a time; the second serves reads meanwhile.
        self._db = _Database(url, max_connections=2)
        self._writes = _Writes()
        self._order = asyncio.Lock()  # Appends run one after another, in call order.
        self._last = 0
        self._last_known = False  # False after a failed append: its commit is in doubt.

    def __repr__(self) -> str:
        return f"PostgresJournal({self._db.target!r})"

    async def open(self) -> None:
        await self._db.open()
        try:
            self._last = await self._stored_last()
        except BaseException:
            await self._db.close()
            raise
        self._last_known = True

    async def close(self) -> None:
        try:
            await self._writes.wait()
        finally:
            await self._db.close()

    async def _stored_last(self) -> int:
        rows = await self._db.fetch("SELECT coalesce(max(seq), 0) FROM exchange_journal", ())
        last: int = rows[0][0]
        return last

    def last_seq(self) -> int:
        return self._last

    async def append(self, entries: Sequence[bytes]) -> int:
        return await self._writes.run(self._append(list(entries)))

    async def _append(self, entries: list[bytes]) -> int:
        async with self._order:
            if not self._last_known:
                self._last = await self._stored_last()
                self._last_known = True
            if not entries:
                return self._last
            rows = list(enumerate(entries, self._last + 1))

            async def write(conn: _Conn) -> None:
                async with conn.transaction():
                    if len(rows) == 1:
                        await conn.execute(
                            "INSERT INTO exchange_journal (seq, payload) VALUES (%s, %b)", rows[0]
                        )
                        return
                    async with conn.cursor().copy(_COPY_ENTRIES) as copy:
                        copy.set_types(["int8", "bytea"])
                        for row in rows:
                            await copy.write_row(row)

            try:
                await self._db.run("append to", write)
            except BaseException:
                self._last_known = False
                raise
            self._last = rows[-1][0]
            return self._last

    async def read(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        if from_seq < 1:
            raise ValueError("journal entries are numbered from 1")
        if limit <= 0 or from_seq > self._last:
            return []
        rows = await self._db.fetch(
            "SELECT seq, payload FROM exchange_journal WHERE seq >= %s ORDER BY seq LIMIT %s",
            (from_seq, limit),
        )
        if not rows or rows[0][0] != from_seq:
            raise StorageError(
                f"journal entry {from_seq} is not kept in {self._db.target}"
                " (dropped by truncate_before)"
            )
        if rows[-1][0] != from_seq + len(rows) - 1:
            raise JournalCorruptError(
                f"journal entries between {from_seq} and {rows[-1][0]} are missing in"
                f" {self._db.target}"
            )
        return [(seq, payload) for seq, payload in rows]

    async def truncate_before(self, seq: int) -> None:
        async def delete(conn: _Conn) -> None:
            await conn.execute(
                "DELETE FROM exchange_journal"
                " WHERE seq < least(%s, (SELECT max(seq) FROM exchange_journal))",
                (seq,),
            )

        await self._writes.run(self._db.run("delete from", delete))


class PostgresSnapshotStore:
    """A ``SnapshotStore`` in the PostgreSQL database at ``url``, keeping the newest ``keep``
    snapshots (see ``PostgresJournal`` for the database and schema)."""

    def __init__(self, url: str, *, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self._db = _Database(url, max_connections=2)
        self._writes = _Writes()
        self._keep = keep

    def __repr__(self) -> str:
        return f"PostgresSnapshotStore({self._db.target!r})"

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        try:
            await self._writes.wait()
        finally:
            await self._db.close()

    async def save(self, seq: int, payload: bytes) -> None:
        if seq < 0:
            raise ValueError("a snapshot's seq is 0 (before the first entry) or more")
        digest = hashlib.sha256(payload).digest()

        async def write(conn: _Conn) -> None:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO exchange_snapshots (seq, payload, sha256) VALUES (%s, %b, %b)"
                    " ON CONFLICT (seq) DO UPDATE SET payload = excluded.payload,"
                    " sha256 = excluded.sha256, saved_at = excluded.saved_at",
                    (seq, payload, digest),
                )
                await conn.execute(
                    "DELETE FROM exchange_snapshots WHERE seq NOT IN"
                    " (SELECT seq FROM exchange_snapshots ORDER BY seq DESC LIMIT %s)",
                    (self._keep,),
                )

        await self._writes.run(self._db.run("save a snapshot to", write))

    async def seqs(self) -> list[int]:
        rows = await self._db.fetch("SELECT seq FROM exchange_snapshots ORDER BY seq", ())
        return [seq for (seq,) in rows]

    async def load_latest_valid(self) -> tuple[int, bytes] | None:
        # One payload at a time: snapshots can be large, and the newest is usually good.
        for seq in reversed(await self.seqs()):
            rows = await self._db.fetch(
                "SELECT payload, sha256 FROM exchange_snapshots WHERE seq = %s", (seq,)
            )
            if not rows:
                continue  # Dropped by a save since the listing.
            payload, digest = rows[0]
            if hashlib.sha256(payload).digest() == digest:
                return seq, payload
            log.warning(
                "snapshot %d in %s is unusable (SHA-256 mismatch); trying an older one",
                seq,
                self._db.target,
            )
        return None


async def _configure(conn: _Conn) -> None:
    """Make a new pooled connection's commits durable, whatever the server's default."""
    await conn.execute(
        "SELECT set_config('synchronous_commit', 'on', false)"
        " WHERE current_setting('synchronous_commit') = 'off'"
    )


def _conninfo(url: str) -> str:
    """``url`` as a libpq connection string, with our defaults for what it leaves unset."""
    given = conninfo_to_dict(url)
    defaults: dict[str, Any] = {
        "application_name": "memetrade-exchange",
        "connect_timeout": _CONNECT_TIMEOUT_S,
    }
    return make_conninfo(url, **{k: v for k, v in defaults.items() if k not in given})


def _redact(url: str) -> str:
    """``postgresql://host:port/dbname`` of ``url``: enough to name it, no user or password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(unparsable URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    dbname = parts.get("dbname") or parts.get("user") or ""
    return f"postgresql://{host}:{port}/{dbname}"


def _one_line(exc: BaseException) -> str:
    # libpq's messages carry DETAIL, HINT and indented context on further lines.
    return " ".join(str(exc).split()) or type(exc).__name__

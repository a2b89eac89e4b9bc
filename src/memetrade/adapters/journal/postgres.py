"""The scale-out command journal and snapshot store: PostgreSQL (connections: ``pg_conn``).

Design, and why:

* Tables ``exchange_journal (seq, payload)`` and ``exchange_snapshots (seq, payload, sha256)``,
  with a version table of their own, ``exchange_schema_version`` (one row per migration; the
  market-data store's is ``schema_version``), so either schema can move without the other.
  Migrations run in one transaction under an advisory lock of their own, as the market-data
  store's do.
* Durability: one transaction per ``append`` (group commit: one WAL flush for the whole batch),
  committed durably (``pg_conn``), so an acknowledged entry survives a kill -9 of either
  process. Batches go in with binary COPY; a single entry with a plain INSERT, which costs one
  round trip less.
* Numbering: the journal numbers entries itself (one writer, the matching engine); ``seq`` is
  the primary key, so a second writer cannot interleave: its COPY collides and fails. Appends of
  one journal run one after another; after a failed one (its commit may or may not have
  happened) the next first reads the highest stored seq again.
* Cancelling a caller of ``append`` or ``save`` does not cancel the write: it runs on to COMMIT or
  ROLLBACK in a task of its own (``pg_conn``'s shielded writes; ``close`` waits for it).
* ``truncate_before`` never deletes the newest entry: it is what keeps the numbering after a
  restart.
* ``psycopg`` errors become ``StorageError`` at this boundary (``pg_conn``), with messages that
  name the server but never the password; a server that cannot be reached raises
  ``StorageUnavailable``, after which ``append([])`` re-reads the last stored number.
"""

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from typing import Final, LiteralString

from memetrade.adapters.storage.pg_conn import Conn, PostgresDatabase, copy_rows, migrate
from memetrade.ports import JournalCorruptError, StorageError

__all__ = ["PostgresJournal", "PostgresSnapshotStore"]

log = logging.getLogger(__name__)

# Spells "exchjrnl"; apart from the market-data store's lock, so neither waits for the other.
_MIGRATION_LOCK: Final = 0x657863686A726E6C

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


def _database(url: str) -> PostgresDatabase:
    # Appends use one connection at a time; the second serves reads meanwhile.
    return PostgresDatabase(url, name="memetrade-exchange", max_connections=2)


async def _open(db: PostgresDatabase) -> None:
    async def setup(conn: Conn) -> None:
        await migrate(conn, "exchange_schema_version", _MIGRATION_LOCK, _MIGRATIONS, db.target)

    await db.open(setup)


class PostgresJournal:
    """A ``CommandJournal`` in the PostgreSQL database at ``url`` (anything libpq accepts). The
    database must exist; ``open`` creates or migrates the tables in the schema the connection's
    ``search_path`` selects. After ``close`` it may be opened again."""

    def __init__(self, url: str) -> None:
        self._db = _database(url)
        self._order = asyncio.Lock()  # Appends run one after another, in call order.
        self._last = 0
        self._last_known = False  # False after a failed append: its commit is in doubt.

    def __repr__(self) -> str:
        return f"PostgresJournal({self._db.target!r})"

    async def open(self) -> None:
        await _open(self._db)
        try:
            self._last = await self._stored_last()
        except BaseException:
            await self._db.close()
            raise
        self._last_known = True

    async def close(self) -> None:
        await self._db.close()

    async def _stored_last(self) -> int:
        rows = await self._db.fetch(
            "SELECT coalesce(max(seq), 0) FROM exchange_journal", (), binary=True
        )
        last: int = rows[0][0]
        return last

    def last_seq(self) -> int:
        return self._last

    async def append(self, entries: Sequence[bytes]) -> int:
        return await self._db.shielded(self._append(list(entries)))

    async def _append(self, entries: list[bytes]) -> int:
        async with self._order:
            if not self._last_known:
                self._last = await self._stored_last()
                self._last_known = True
            if not entries:
                return self._last
            rows = list(enumerate(entries, self._last + 1))

            async def write(conn: Conn) -> None:
                async with conn.transaction():
                    if len(rows) == 1:
                        await conn.execute(
                            "INSERT INTO exchange_journal (seq, payload) VALUES (%s, %b)", rows[0]
                        )
                        return
                    await copy_rows(conn, _COPY_ENTRIES, rows, ["int8", "bytea"])

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
            binary=True,
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
        async def delete(conn: Conn) -> None:
            await conn.execute(
                "DELETE FROM exchange_journal"
                " WHERE seq < least(%s, (SELECT max(seq) FROM exchange_journal))",
                (seq,),
            )

        await self._db.shielded(self._db.run("delete from", delete))


class PostgresSnapshotStore:
    """A ``SnapshotStore`` in the PostgreSQL database at ``url``, keeping the newest ``keep``
    snapshots (see ``PostgresJournal`` for the database and schema)."""

    def __init__(self, url: str, *, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self._db = _database(url)
        self._keep = keep

    def __repr__(self) -> str:
        return f"PostgresSnapshotStore({self._db.target!r})"

    async def open(self) -> None:
        await _open(self._db)

    async def close(self) -> None:
        await self._db.close()

    async def save(self, seq: int, payload: bytes) -> None:
        if seq < 0:
            raise ValueError("a snapshot's seq is 0 (before the first entry) or more")
        digest = hashlib.sha256(payload).digest()

        async def write(conn: Conn) -> None:
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

        await self._db.shielded(self._db.run("save a snapshot to", write))

    async def seqs(self) -> list[int]:
        rows = await self._db.fetch(
            "SELECT seq FROM exchange_snapshots ORDER BY seq", (), binary=True
        )
        return [seq for (seq,) in rows]

    async def load_latest_valid(self) -> tuple[int, bytes] | None:
        # One payload at a time: snapshots can be large, and the newest is usually good.
        for seq in reversed(await self.seqs()):
            rows = await self._db.fetch(
                "SELECT payload, sha256 FROM exchange_snapshots WHERE seq = %s", (seq,), binary=True
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

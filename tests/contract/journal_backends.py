"""The backends the command journal contract suite runs against, and how to reach fresh storage
of each.

To add one, add its name to ``JOURNAL_BACKENDS`` and a branch to ``make_journal_backend``
returning a ``JournalBackend`` on fresh, empty storage.

Files: a directory of the test's own, with 4 KiB segments so that rotation and whole-segment
truncation happen within a few hundred entries. PostgreSQL: a database of the test's own, as in
``store_backends.py`` (skipped when the server is unreachable, failed under ``CI=true``).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from store_backends import postgres_database

from memetrade.ports import CommandJournal, SnapshotStore

__all__ = ["JOURNAL_BACKENDS", "JournalBackend", "make_journal_backend"]

JOURNAL_BACKENDS = ["files", "postgres"]

SEGMENT_BYTES = 4096


@dataclass(frozen=True)
class JournalBackend:
    """How to reach one fresh journal and snapshot store of one backend.

    ``journal`` and ``snapshots(keep)`` return new, unopened objects on the same storage (call
    again to "reopen"). ``damage_snapshot(seq)`` changes the stored payload of snapshot ``seq``
    behind the store's back. ``child_setup`` is Python source that, run in another process, binds
    ``make_journal`` to a zero-argument callable like ``journal`` (for the kill -9 test). ``drop``
    removes the storage once the test is done.
    """

    name: str
    journal: Callable[[], CommandJournal]
    snapshots: Callable[[int], SnapshotStore]
    damage_snapshot: Callable[[int], None]
    child_setup: str
    drop: Callable[[], None] = lambda: None


def make_journal_backend(name: str, scratch: Path) -> JournalBackend:
    """Return backend ``name`` on fresh storage; ``scratch`` is an empty directory of its own."""
    if name == "files":
        from memetrade.adapters.journal.file_snapshots import FileSnapshotStore
        from memetrade.adapters.journal.files import FileJournal

        # Does not exist yet: open() must create it.
        directory = scratch / "data" / "memetrade.db.exchange"

        def damage_file(seq: int) -> None:
            path = directory / f"snapshot-{seq:020d}.bin"
            data = bytearray(path.read_bytes())
            data[-1] ^= 0xFF
            path.write_bytes(data)

        return JournalBackend(
            name="files",
            journal=lambda: FileJournal(directory, segment_bytes=SEGMENT_BYTES),
            snapshots=lambda keep: FileSnapshotStore(directory, keep=keep),
            damage_snapshot=damage_file,
            child_setup=(
                "from memetrade.adapters.journal.files import FileJournal\n"
                f"make_journal = lambda: FileJournal({str(directory)!r},"
                f" segment_bytes={SEGMENT_BYTES})\n"
            ),
        )
    if name == "postgres":
        import psycopg

        from memetrade.adapters.journal.postgres import PostgresJournal, PostgresSnapshotStore

        url, drop = postgres_database()

        def damage_row(seq: int) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE exchange_snapshots SET payload = payload || '\\x00'::bytea"
                    " WHERE seq = %s",
                    (seq,),
                )

        return JournalBackend(
            name="postgres",
            journal=lambda: PostgresJournal(url),
            snapshots=lambda keep: PostgresSnapshotStore(url, keep=keep),
            damage_snapshot=damage_row,
            child_setup=(
                "from memetrade.adapters.journal.postgres import PostgresJournal\n"
                f"make_journal = lambda: PostgresJournal({url!r})\n"
            ),
            drop=drop,
        )
    raise AssertionError(f"no fixture for journal backend {name!r}")

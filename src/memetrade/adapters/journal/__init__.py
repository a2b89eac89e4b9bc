"""Where the exchange keeps its command journal and snapshots: ``files`` (the embedded default,
a directory next to the SQLite database) and ``postgres`` (scale-out, in the ``DATABASE_URL``
database). ``journal_from_url`` imports only the backend a URL names."""

from memetrade.ports import CommandJournal, SnapshotStore

__all__ = ["DIRECTORY_SUFFIX", "journal_from_url"]

# The files live in "<database file>.exchange/", beside the SQLite file they go with.
DIRECTORY_SUFFIX: str = ".exchange"
_SQLITE: str = "sqlite:///"
_POSTGRES: tuple[str, ...] = ("postgresql://", "postgres://")


def journal_from_url(database_url: str) -> tuple[CommandJournal, SnapshotStore]:
    """Return an unopened journal and snapshot store for a ``DATABASE_URL``: for
    ``sqlite:///path`` files in the directory ``path.exchange``, for ``postgresql://`` /
    ``postgres://`` tables in that database. Raise ``ValueError`` for any other scheme."""
    if database_url.startswith(_SQLITE) and database_url != _SQLITE:
        from memetrade.adapters.journal.file_snapshots import FileSnapshotStore
        from memetrade.adapters.journal.files import FileJournal

        directory = database_url.removeprefix(_SQLITE) + DIRECTORY_SUFFIX
        return FileJournal(directory), FileSnapshotStore(directory)
    if database_url.startswith(_POSTGRES):
        from memetrade.adapters.journal.postgres import PostgresJournal, PostgresSnapshotStore

        return PostgresJournal(database_url), PostgresSnapshotStore(database_url)
    raise ValueError("expected sqlite:///path/to/file.db or postgresql://user@host:port/dbname")

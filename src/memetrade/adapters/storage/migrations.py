"""What every store's schema migrations have in common, on either backend.

``migrations[i]`` takes schema version ``i`` to ``i + 1``. A step is history: once released it
never changes, so it names the tables, columns and intervals of its own time rather than
importing today's.

Several stores live in one SQLite file or one PostgreSQL database (market data, accounts, the
exchange's journal and history), and each moves its schema on its own. SQLite's ``PRAGMA
user_version`` holds one number per file, and the market store took it first; every other store
keeps a version table of its own (``<name>_schema_version``) with one row per applied step, so
when each step ran is there for whoever reads the database later.

Steps run inside the transaction that opens the store, so a crash leaves the schema at a step
boundary and two processes opening at once migrate once (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: an advisory lock held until the transaction ends, one per store, so stores never
wait for each other's migrations). A database newer than this code is refused, never
downgraded.
"""

from memetrade.ports import StorageError

__all__ = ["check_version"]


def check_version(where: str, version_name: str, version: int, known: int) -> None:
    """Raise ``StorageError`` if ``where`` stands at a schema version (``version_name``: its
    version table, or ``user_version``) later than the ``known`` steps of this code."""
    if version > known:
        raise StorageError(
            f"{where} has {version_name} {version} but this memetrade knows only up to {known};"
            " upgrade memetrade"
        )

"""Implementations of ``memetrade.ports.TradeStore``: ``sqlite`` (embedded default) and
``postgres`` (scale-out), and of ``AccountStore`` (``accounts_sqlite``, ``accounts_postgres``)
and ``ExchangeHistoryStore`` (``history_sqlite``, ``history_postgres``). The ``*_from_url``
functions import only the backend a URL names, so choosing SQLite never pulls in a PostgreSQL
driver.

With PostgreSQL all three share the ``DATABASE_URL`` database. With SQLite each has a file of
its own beside the market data (``memetrade.db``, ``memetrade-accounts.db``,
``memetrade-history.db``): a SQLite file has a single write lock, and three writers taking turns
on it wait in SQLite's busy handler, which sleeps up to 100 ms a turn; an audit line per order
then capped order entry at a few hundred a second.
"""

from pathlib import Path

from memetrade.ports import AccountStore, ExchangeHistoryStore, TradeStore

__all__ = ["account_store_from_url", "history_store_from_url", "store_from_url"]

_SQLITE: str = "sqlite:///"
_POSTGRES: tuple[str, ...] = ("postgresql://", "postgres://")


def store_from_url(url: str) -> TradeStore:
    """Return an unopened store for a ``DATABASE_URL``: ``sqlite:///path`` (a relative path,
    or an absolute one after a fourth slash) or ``postgresql://`` / ``postgres://`` (libpq's
    URL). Raise ``ValueError`` for any other scheme."""
    if url.startswith(_SQLITE) and url != _SQLITE:
        from memetrade.adapters.storage.sqlite import SqliteStore

        return SqliteStore(url.removeprefix(_SQLITE))
    if url.startswith(_POSTGRES):
        from memetrade.adapters.storage.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError("expected sqlite:///path/to/file.db or postgresql://user@host:port/dbname")


def account_store_from_url(url: str) -> AccountStore:
    """Return an unopened account store in the database of a ``DATABASE_URL`` (the same URLs
    as ``store_from_url``). Raise ``ValueError`` for any other scheme."""
    if url.startswith(_SQLITE) and url != _SQLITE:
        from memetrade.adapters.storage.accounts_sqlite import SqliteAccountStore

        return SqliteAccountStore(_beside(url, "accounts"))
    if url.startswith(_POSTGRES):
        from memetrade.adapters.storage.accounts_postgres import PostgresAccountStore

        return PostgresAccountStore(url)
    raise ValueError("expected sqlite:///path/to/file.db or postgresql://user@host:port/dbname")


def history_store_from_url(url: str) -> ExchangeHistoryStore:
    """Return an unopened exchange history store in the database of a ``DATABASE_URL`` (the
    same URLs as ``store_from_url``). Raise ``ValueError`` for any other scheme."""
    if url.startswith(_SQLITE) and url != _SQLITE:
        from memetrade.adapters.storage.history_sqlite import SqliteHistoryStore

        return SqliteHistoryStore(_beside(url, "history"))
    if url.startswith(_POSTGRES):
        from memetrade.adapters.storage.history_postgres import PostgresHistoryStore

        return PostgresHistoryStore(url)
    raise ValueError("expected sqlite:///path/to/file.db or postgresql://user@host:port/dbname")


def _beside(sqlite_url: str, name: str) -> Path:
    """The file ``<stem>-<name><suffix>`` next to the market-data file of ``sqlite_url``."""
    path = Path(sqlite_url.removeprefix(_SQLITE))
    return path.with_name(f"{path.stem}-{name}{path.suffix}")

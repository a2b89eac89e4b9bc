"""Implementations of ``memetrade.ports.TradeStore``: ``sqlite`` (embedded default) and
``postgres`` (scale-out), and of ``AccountStore`` (``accounts_sqlite``, ``accounts_postgres``)
and ``ExchangeHistoryStore`` (``history_sqlite``, ``history_postgres``) in the same database.
The ``*_from_url`` functions import only the backend a URL names, so choosing SQLite never
pulls in a PostgreSQL driver."""

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

        return SqliteAccountStore(url.removeprefix(_SQLITE))
    if url.startswith(_POSTGRES):
        from memetrade.adapters.storage.accounts_postgres import PostgresAccountStore

        return PostgresAccountStore(url)
    raise ValueError("expected sqlite:///path/to/file.db or postgresql://user@host:port/dbname")


def history_store_from_url(url: str) -> ExchangeHistoryStore:
    """Return an unopened exchange history store in the database of a ``DATABASE_URL`` (the
    same URLs as ``store_from_url``). Raise ``ValueError`` for any other scheme."""
    if url.startswith(_SQLITE) and url != _SQLITE:
        from memetrade.adapters.storage.history_sqlite import SqliteHistoryStore

        return SqliteHistoryStore(url.removeprefix(_SQLITE))
    if url.startswith(_POSTGRES):
        from memetrade.adapters.storage.history_postgres import PostgresHistoryStore

        return PostgresHistoryStore(url)
    raise ValueError("expected sqlite:///path/to/file.db or postgresql://user@host:port/dbname")

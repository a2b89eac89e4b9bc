"""Implementations of ``memetrade.ports.TradeStore``: ``sqlite`` (embedded default) and
``postgres`` (scale-out). ``store_from_url`` imports only the backend a URL names, so choosing
SQLite never pulls in a PostgreSQL driver."""

from memetrade.ports import TradeStore

__all__ = ["store_from_url"]

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

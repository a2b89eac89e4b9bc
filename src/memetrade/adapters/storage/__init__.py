"""Implementations of ``memetrade.ports.TradeStore``: ``sqlite`` (embedded default) and, later,
``postgres`` (scale-out). Import the backend module you need; this package imports none of them,
so choosing SQLite never pulls in a PostgreSQL driver."""

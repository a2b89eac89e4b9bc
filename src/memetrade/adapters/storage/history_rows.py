"""Row shapes and queries shared by the exchange history store backends.

Two tables (and a one-row checkpoint):

* ``exchange_orders``: one row per order, its last known state and the journal ``seq`` that
  state is as of. Upserts replace the row only from an equal or higher ``seq``.
* ``exchange_fills``: one row per fill *and user role*, keyed ``(user_id, trade_id, role)``. A
  trade is stored twice, once for its maker and once for its taker, because every query reads
  one user's fills: keyed this way, "a user's fills from trade id X" is one range of the primary
  key in either backend, where one row per trade would need two indexes and a merge of two
  scans (maker side, taker side) for every page. Users never see the other side's ids.

Quote amounts and fees (and the cumulative ``cum_quote``/``cum_fee``) are products and sums of
64-bit integers, so they may not fit 64 bits: each backend passes ``big`` to say how it stores
them (SQLite: decimal text; PostgreSQL: numeric), and rows are read back with ``int``.
"""

from collections.abc import Callable, Sequence
from typing import Any, Final

from memetrade.domain.exchange.events import Fill, OrderUpdate
from memetrade.domain.exchange.history import (
    ENDED_STATUSES,
    OPEN_STATUSES,
    FillRecord,
    OrderRecord,
    StatusFilter,
)

__all__ = [
    "FILL_COLUMNS",
    "ORDER_COLUMNS",
    "fill_from_row",
    "fills_query",
    "order_from_row",
    "orders_query",
    "rows_of",
]

ORDER_COLUMNS: Final = (
    "order_id, user_id, symbol, side, type, status, price, stop_price, quantity, filled,"
    " remaining, cum_quote, cum_fee, reason, client_order_id, created_at, updated_at"
)
FILL_COLUMNS: Final = (
    "trade_id, user_id, order_id, symbol, side, role, price, quantity, quote_amount, fee,"
    " fee_asset, ts"
)

# The status conditions are texts of constants only: the statuses are fixed words.
_STATUS_CONDITION: Final[dict[StatusFilter, str]] = {
    "open": "status IN ({})".format(", ".join(f"'{s}'" for s in OPEN_STATUSES)),
    "ended": "status IN ({})".format(", ".join(f"'{s}'" for s in ENDED_STATUSES)),
}
_MAKER_SIDE: Final = {"buy": "sell", "sell": "buy"}


def rows_of(
    seq: int, events: Sequence[OrderUpdate | Fill], big: Callable[[int], Any]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The order rows (columns ``ORDER_COLUMNS, seq``) and fill rows (``FILL_COLUMNS, seq``)
    that ``record(seq, events)`` writes.

    An order updated several times is one row, its last state with the time of its first
    update as ``created_at``: an upsert statement must not meet one key twice. A trade seen
    twice keeps its first fill, as the table keeps the first stored. Both come sorted by key,
    so concurrent writers take row locks in one order."""
    orders: dict[int, OrderUpdate] = {}
    # The time of each order's first update here: its creation time, if the order is new.
    first_ts: dict[int, int] = {}
    fills: dict[int, Fill] = {}
    for event in events:
        if isinstance(event, OrderUpdate):
            orders[event.order_id] = event
            first_ts.setdefault(event.order_id, event.ts)
        else:
            fills.setdefault(event.trade_id, event)
    order_rows = [
        (
            o.order_id, o.user_id, o.symbol, o.side, o.type, o.status, o.price, o.stop_price,
            o.quantity, o.filled, o.remaining, big(o.cum_quote), big(o.cum_fee), o.reason,
            o.client_order_id, first_ts[order_id], o.ts, seq,
        )
        for order_id, o in sorted(orders.items())
    ]  # fmt: skip
    fill_rows = [
        (f.trade_id, user_id, order_id, f.symbol, side, role, f.price, f.quantity,
         big(f.quote_amount), big(fee), f.fee_asset, f.ts, seq)
        for f in fills.values()
        for user_id, order_id, side, role, fee in (
            (f.maker_user_id, f.maker_order_id, _MAKER_SIDE[f.taker_side], "maker", f.maker_fee),
            (f.taker_user_id, f.taker_order_id, f.taker_side, "taker", f.taker_fee),
        )
    ]  # fmt: skip
    # The table's key order, (user_id, trade_id, role).
    fill_rows.sort(key=lambda row: (row[1], row[0], row[5]))
    return order_rows, fill_rows


def order_from_row(row: Sequence[Any]) -> OrderRecord:
    values = list(row)
    values[11], values[12] = int(values[11]), int(values[12])  # cum_quote, cum_fee
    return OrderRecord(*values)


def fill_from_row(row: Sequence[Any]) -> FillRecord:
    values = list(row)
    values[8], values[9] = int(values[8]), int(values[9])  # quote_amount, fee
    return FillRecord(*values)


def orders_query(
    mark: str,
    user_id: int,
    symbol: str | None,
    status: StatusFilter,
    start: int | None,
    end: int | None,
    before: int | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SELECT of ``orders`` with ``mark`` as the parameter placeholder, and its arguments.
    Only the fixed condition texts here reach the SQL; values are parameters."""
    if status not in ("open", "ended", "all"):
        raise ValueError(f"status must be open, ended or all, not {status!r}")
    conditions = [f"user_id = {mark}"]
    args: list[Any] = [user_id]
    if status != "all":
        # The same text as the partial index of open orders, so the planners can use it.
        conditions.append(_STATUS_CONDITION[status])
    for condition, value in (
        ("symbol = ", symbol),
        ("created_at >= ", start),
        ("created_at <= ", end),
        ("order_id < ", before),
    ):
        if value is not None:
            conditions.append(condition + mark)
            args.append(value)
    sql = (
        f"SELECT {ORDER_COLUMNS} FROM exchange_orders WHERE {' AND '.join(conditions)}"
        f" ORDER BY order_id DESC LIMIT {mark}"
    )
    args.append(max(limit, 0))
    return sql, args


def fills_query(
    mark: str,
    user_id: int,
    symbol: str | None,
    start: int | None,
    end: int | None,
    from_id: int | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SELECT of ``fills``, as ``orders_query``. Without ``from_id`` it reads the newest
    first (the caller reverses them); with it, the oldest first."""
    conditions = [f"user_id = {mark}"]
    args: list[Any] = [user_id]
    for condition, value in (
        ("symbol = ", symbol),
        ("ts >= ", start),
        ("ts <= ", end),
        ("trade_id >= ", from_id),
    ):
        if value is not None:
            conditions.append(condition + mark)
            args.append(value)
    order = "trade_id, role" if from_id is not None else "trade_id DESC, role DESC"
    sql = (
        f"SELECT {FILL_COLUMNS} FROM exchange_fills WHERE {' AND '.join(conditions)}"
        f" ORDER BY {order} LIMIT {mark}"
    )
    args.append(max(limit, 0))
    return sql, args

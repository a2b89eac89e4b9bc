"""The ``ExchangeHistoryStore`` contract: every backend in
``history_backends.HISTORY_BACKENDS`` must pass all of it."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from history_backends import HISTORY_BACKENDS, HistoryBackend, make_history_backend
from store_backends import SYMBOLS

from memetrade.adapters.storage import history_store_from_url, store_from_url
from memetrade.domain.exchange.events import Fill, OrderStatus, OrderUpdate
from memetrade.domain.exchange.history import FillRecord, OrderRecord
from memetrade.ports import ExchangeHistoryStore, StorageError

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000
BIG = 2**64 + 12_345  # Fits neither a signed nor an unsigned 64-bit integer.


@pytest.fixture(params=HISTORY_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryBackend]:
    made = make_history_backend(request.param, tmp_path)
    yield made
    made.drop()


@pytest.fixture
async def history(backend: HistoryBackend) -> AsyncIterator[ExchangeHistoryStore]:
    store = history_store_from_url(backend.url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def order(
    order_id: int,
    status: OrderStatus = "new",
    *,
    user_id: int = 1,
    symbol: str = "PEPE",
    ts: int = T0,
    filled: int = 0,
    cum_quote: int = 0,
    **fields: Any,
) -> OrderUpdate:
    values: dict[str, Any] = {
        "side": "buy",
        "type": "limit",
        "price": 100,
        "stop_price": None,
        "quantity": 10,
        "remaining": 10 - filled,
        "cum_fee": cum_quote // 1000,
        "reason": None,
        "client_order_id": None,
    }
    values.update(fields)
    return OrderUpdate(
        order_id=order_id,
        user_id=user_id,
        symbol=symbol,
        status=status,
        filled=filled,
        cum_quote=cum_quote,
        ts=ts,
        **values,
    )


def fill(
    trade_id: int,
    *,
    maker: tuple[int, int] = (2, 20),
    taker: tuple[int, int] = (1, 10),
    taker_side: str = "buy",
    symbol: str = "PEPE",
    ts: int = T0,
    quantity: int = 3,
    quote_amount: int = 300,
) -> Fill:
    """A trade between ``maker`` and ``taker``, each ``(user_id, order_id)``."""
    return Fill(
        trade_id=trade_id,
        symbol=symbol,
        price=100,
        quantity=quantity,
        quote_amount=quote_amount,
        taker_side=taker_side,  # type: ignore[arg-type]
        maker_order_id=maker[1],
        taker_order_id=taker[1],
        maker_user_id=maker[0],
        taker_user_id=taker[0],
        maker_fee=quote_amount // 1000,
        taker_fee=quote_amount // 500,
        fee_asset="USDT",
        ts=ts,
    )


def ids(records: list[OrderRecord]) -> list[int]:
    return [r.order_id for r in records]


def trade_ids(records: list[FillRecord]) -> list[int]:
    return [r.trade_id for r in records]


# -- writes ---------------------------------------------------------------------------------------


async def test_a_fresh_store_is_empty_at_checkpoint_zero(history: ExchangeHistoryStore) -> None:
    await history.ping()
    assert await history.checkpoint() == 0
    assert await history.orders(1) == []
    assert await history.order(1, 1) is None
    assert await history.fills(1) == []


async def test_an_order_is_its_last_update_and_keeps_its_creation_time(
    history: ExchangeHistoryStore,
) -> None:
    await history.record(1, [order(7, ts=T0)])
    await history.record(
        3,
        [
            order(7, "partially_filled", ts=T0 + 5, filled=4, cum_quote=400),
            order(7, "filled", ts=T0 + 9, filled=10, cum_quote=1_000, reason=None),
        ],
    )
    stored = await history.order(1, 7)
    assert stored == OrderRecord(
        order_id=7, user_id=1, symbol="PEPE", side="buy", type="limit", status="filled",
        price=100, stop_price=None, quantity=10, filled=10, remaining=0, cum_quote=1_000,
        cum_fee=1, reason=None, client_order_id=None, created_at=T0, updated_at=T0 + 9,
    )  # fmt: skip


async def test_an_order_placed_and_ended_in_one_record_keeps_its_creation_time(
    history: ExchangeHistoryStore,
) -> None:
    await history.record(
        4, [order(7, ts=T0), order(7, "filled", ts=T0 + 3, filled=10, cum_quote=1_000)]
    )
    stored = await history.order(1, 7)
    assert stored is not None
    assert (stored.status, stored.created_at, stored.updated_at) == ("filled", T0, T0 + 3)


async def test_an_older_update_never_overwrites_a_newer_one(
    history: ExchangeHistoryStore,
) -> None:
    await history.record(10, [order(7, "canceled", ts=T0 + 10, reason="canceled_by_user")])
    # A replay of an earlier entry (a feed restarted before the checkpoint) comes late.
    await history.record(4, [order(7, "new", ts=T0)])
    stored = await history.order(1, 7)
    assert stored is not None
    assert (stored.status, stored.reason, stored.updated_at) == (
        "canceled",
        "canceled_by_user",
        T0 + 10,
    )
    # The same entry again (seq equal) is the same state: applying it is harmless.
    await history.record(10, [order(7, "canceled", ts=T0 + 10, reason="canceled_by_user")])
    assert await history.order(1, 7) == stored
    assert await history.checkpoint() == 10


async def test_fills_are_stored_once_per_trade_id(history: ExchangeHistoryStore) -> None:
    await history.record(1, [fill(1), fill(1), fill(2)])
    await history.record(2, [fill(2), fill(3)])
    # A different fill under a stored trade id is a replay too: the first one stays.
    await history.record(3, [fill(1, quantity=99)])
    taker = await history.fills(1)
    assert trade_ids(taker) == [1, 2, 3]
    assert taker[0].quantity == 3
    assert trade_ids(await history.fills(2)) == [1, 2, 3]


async def test_a_fill_is_seen_by_its_maker_and_its_taker_with_their_side_and_fee(
    history: ExchangeHistoryStore,
) -> None:
    await history.record(1, [fill(5, maker=(2, 20), taker=(1, 10), taker_side="sell")])
    common = {"trade_id": 5, "symbol": "PEPE", "price": 100, "quantity": 3,
              "quote_amount": 300, "fee_asset": "USDT", "ts": T0}  # fmt: skip
    assert await history.fills(1) == [
        FillRecord(user_id=1, order_id=10, side="sell", role="taker", fee=0, **common)
    ]
    assert await history.fills(2) == [
        FillRecord(user_id=2, order_id=20, side="buy", role="maker", fee=0, **common)
    ]
    assert await history.fills(3) == []


async def test_a_self_trade_gives_its_user_both_roles(history: ExchangeHistoryStore) -> None:
    await history.record(1, [fill(5, maker=(1, 20), taker=(1, 21), taker_side="buy")])
    got = await history.fills(1)
    assert [(r.role, r.order_id, r.side) for r in got] == [
        ("maker", 20, "sell"),
        ("taker", 21, "buy"),
    ]


async def test_amounts_beyond_64_bits_round_trip_exactly(history: ExchangeHistoryStore) -> None:
    await history.record(
        1,
        [
            order(1, "filled", filled=10, cum_quote=BIG, cum_fee=BIG + 1),
            fill(1, quote_amount=BIG),
        ],
    )
    stored = await history.order(1, 1)
    assert stored is not None
    assert (stored.cum_quote, stored.cum_fee) == (BIG, BIG + 1)
    (taker,) = await history.fills(1)
    assert (taker.quote_amount, taker.fee) == (BIG, BIG // 500)


async def test_the_checkpoint_only_rises_and_survives_a_reopen(backend: HistoryBackend) -> None:
    store = history_store_from_url(backend.url)
    await store.open()
    await store.record(5, [order(1)])
    await store.record(3, [])
    assert await store.checkpoint() == 5
    await store.record(9, [])  # an entry with no order or fill events still counts
    await store.close()
    reopened = history_store_from_url(backend.url)
    await reopened.open()
    try:
        assert await reopened.checkpoint() == 9
        assert ids(await reopened.orders(1)) == [1]
    finally:
        await reopened.close()


async def test_a_refused_record_stores_nothing_of_it(history: ExchangeHistoryStore) -> None:
    await history.record(1, [order(1)])
    bad = order(3, side="up")  # the schema refuses it, as it would a corrupted event
    with pytest.raises(StorageError):
        await history.record(2, [order(1, "canceled", ts=T0 + 1), fill(1), bad])
    assert await history.checkpoint() == 1
    stored = await history.order(1, 1)
    assert stored is not None
    assert stored.status == "new"
    assert await history.fills(1) == []
    await history.ping()  # and the store goes on working


# -- queries --------------------------------------------------------------------------------------


async def test_orders_are_newest_first_and_only_the_users_own(
    history: ExchangeHistoryStore,
) -> None:
    await history.record(1, [order(i, ts=T0 + i, user_id=2 if i == 7 else 1) for i in range(1, 8)])
    assert ids(await history.orders(1)) == [6, 5, 4, 3, 2, 1]
    assert ids(await history.orders(2)) == [7]
    assert await history.order(1, 7) is None  # someone else's order is not found
    assert await history.order(2, 7) is not None


async def test_orders_filter_by_status_symbol_time_and_page_by_id(
    history: ExchangeHistoryStore,
) -> None:
    statuses: list[tuple[OrderStatus, str]] = [
        ("filled", "PEPE"),
        ("new", "DOGE"),
        ("canceled", "PEPE"),
        ("partially_filled", "PEPE"),
        ("triggered", "DOGE"),
        ("expired", "DOGE"),
        ("rejected", "PEPE"),
    ]
    await history.record(
        1,
        [
            order(i, status, symbol=symbol, ts=T0 + i * 1000)
            for i, (status, symbol) in enumerate(statuses, start=1)
        ],
    )
    # A later update moves updated_at, never the creation time the range filters on.
    await history.record(2, [order(1, "filled", ts=T0 + 99_000, filled=10, cum_quote=1_000)])

    assert ids(await history.orders(1, status="open")) == [5, 4, 2]
    assert ids(await history.orders(1, status="ended")) == [7, 6, 3, 1]
    assert ids(await history.orders(1, status="all")) == [7, 6, 5, 4, 3, 2, 1]
    assert ids(await history.orders(1, symbol="DOGE")) == [6, 5, 2]
    assert ids(await history.orders(1, symbol="DOGE", status="open")) == [5, 2]
    assert ids(await history.orders(1, start=T0 + 2000, end=T0 + 4000)) == [4, 3, 2]
    assert ids(await history.orders(1, end=T0 + 1000)) == [1]
    assert ids(await history.orders(1, start=T0 + 50_000)) == []

    pages: list[list[int]] = []
    before: int | None = None
    while page := ids(await history.orders(1, limit=3, before=before)):
        pages.append(page)
        before = page[-1]
    assert pages == [[7, 6, 5], [4, 3, 2], [1]]
    assert ids(await history.orders(1, status="ended", before=6, limit=1)) == [3]
    assert await history.orders(1, limit=0) == []
    with pytest.raises(ValueError, match="status"):
        await history.orders(1, status="closed")  # type: ignore[arg-type]


async def test_fills_filter_by_symbol_and_time_and_page_from_a_trade_id(
    history: ExchangeHistoryStore,
) -> None:
    await history.record(
        1,
        [fill(i, symbol="DOGE" if i % 3 == 0 else "PEPE", ts=T0 + i * 1000) for i in range(1, 11)]
        + [fill(11, maker=(3, 30), taker=(4, 40))],  # between two other users
    )
    assert trade_ids(await history.fills(1)) == list(range(1, 11))
    # Without from_id: the newest ones, oldest first.
    assert trade_ids(await history.fills(1, limit=3)) == [8, 9, 10]
    # With it: the oldest from there on.
    assert trade_ids(await history.fills(1, from_id=4, limit=3)) == [4, 5, 6]
    assert trade_ids(await history.fills(1, symbol="DOGE")) == [3, 6, 9]
    assert trade_ids(await history.fills(2, symbol="DOGE", from_id=4)) == [6, 9]
    assert trade_ids(await history.fills(1, start=T0 + 4000, end=T0 + 6000)) == [4, 5, 6]
    assert trade_ids(await history.fills(1, start=T0 + 4000, limit=2)) == [9, 10]

    pages: list[list[int]] = []
    next_id = 1
    while page := trade_ids(await history.fills(1, from_id=next_id, limit=4)):
        pages.append(page)
        next_id = page[-1] + 1
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert await history.fills(1, limit=0) == []


# -- schema ---------------------------------------------------------------------------------------


async def test_it_lives_beside_the_market_store_under_its_own_version(
    backend: HistoryBackend,
) -> None:
    market = store_from_url(backend.url)
    history = history_store_from_url(backend.url)
    await history.open()
    await market.open(SYMBOLS)
    try:
        await history.record(1, [order(1)])
        await market.ping()
        assert await market.trade_count() == 0
    finally:
        await market.close()
        await history.close()
    rows = backend.sql("SELECT version FROM exchange_history_schema_version ORDER BY version")
    assert rows == [(1,)]
    # Opening again applies nothing twice.
    again = history_store_from_url(backend.url)
    await again.open()
    await again.close()
    assert len(backend.sql("SELECT version FROM exchange_history_schema_version")) == 1


async def test_a_schema_newer_than_this_code_is_refused(backend: HistoryBackend) -> None:
    history = history_store_from_url(backend.url)
    await history.open()
    await history.close()
    backend.sql("INSERT INTO exchange_history_schema_version (version) VALUES (99)")
    with pytest.raises(StorageError, match="upgrade memetrade"):
        await history_store_from_url(backend.url).open()


def test_history_store_from_url_refuses_other_schemes() -> None:
    with pytest.raises(ValueError, match="sqlite"):
        history_store_from_url("mysql://localhost/db")

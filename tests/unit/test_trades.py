"""Trades: make_trade checks every edge value against the symbol's steps."""

from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memetrade.domain.errors import DomainError, InvalidTrade, UnknownInterval
from memetrade.domain.intervals import INTERVALS, parse_interval
from memetrade.domain.symbols import PRESETS, SymbolSpec
from memetrade.domain.trades import MAX_ID_LENGTH, Side, Trade, make_trade

DOGE = PRESETS["DOGE"]  # tick 0.000001, lot 0.01
PEPE = PRESETS["PEPE"]  # tick 0.000000000001, lot 1


def test_a_valid_trade_holds_ticks_and_lots_and_renders_back() -> None:
    trade = make_trade(DOGE, "t-1", "0.123456", Decimal("10.5"), Side.SELL, 1_700_000_000_123)
    assert trade == Trade("t-1", "DOGE", 123456, 1050, Side.SELL, 1_700_000_000_123)
    assert trade.price_text(DOGE) == "0.123456"
    assert trade.amount_text(DOGE) == "10.5"
    pepe = make_trade(PEPE, "p", "0.000001234", 5, Side.BUY, 0)
    assert (pepe.price, pepe.price_text(PEPE)) == (1_234_000, "0.000001234")


@given(
    ticks=st.integers(1, 2**62 - 1),
    lots=st.integers(1, 2**62 - 1),
    ts=st.integers(0, 2**53),
    side=st.sampled_from(Side),
    tid=st.text(min_size=1, max_size=MAX_ID_LENGTH).filter(str.isprintable),
)
def test_make_trade_roundtrips_every_valid_value(
    ticks: int, lots: int, ts: int, side: Side, tid: str
) -> None:
    price = Decimal(f"{ticks}E-6")
    amount = Decimal(f"{lots}E-2")
    trade = make_trade(DOGE, tid, str(price), amount, side, ts)
    assert (trade.id, trade.price, trade.amount, trade.side, trade.ts) == (
        tid,
        ticks,
        lots,
        side,
        ts,
    )
    assert Decimal(trade.price_text(DOGE)) == price
    assert Decimal(trade.amount_text(DOGE)) == amount
    assert make_trade(DOGE, tid, trade.price_text(DOGE), trade.amount_text(DOGE), side, ts) == trade


@pytest.mark.parametrize(
    ("price", "amount", "message"),
    [
        ("0", "1", "price must be positive"),
        ("-0.000001", "1", "price must be positive"),
        ("1", "0", "amount must be positive"),
        ("1", "-0.01", "amount must be positive"),
        ("0.0000001", "1", "DOGE: price 0.0000001 is not a multiple of its step 0.000001"),
        ("1", "0.001", "DOGE: amount 0.001 is not a multiple of its step 0.01"),
        ("one", "1", "DOGE: price 'one' is not a number"),
        ("1", "NaN", "DOGE: amount must be a finite number"),
        ("Infinity", "1", "DOGE: price must be a finite number"),
        ("4611686018427.387904", "1", "price or amount is too large"),  # 2**62 ticks
        ("1", "46116860184273879.04", "price or amount is too large"),  # 2**62 lots
        ("1e999999", "1", "DOGE: price 1e999999 is too large"),
    ],
)
def test_bad_prices_and_amounts_are_invalid_trades(price: str, amount: str, message: str) -> None:
    with pytest.raises(InvalidTrade) as info:
        make_trade(DOGE, "t", price, amount, Side.BUY, 1)
    assert info.value.message == message
    assert info.value.code == "invalid_trade"
    assert isinstance(info.value, DomainError)


def test_the_largest_representable_price_is_accepted() -> None:
    trade = make_trade(DOGE, "t", "4611686018427.387903", "0.01", Side.BUY, 1)
    assert trade.price == 2**62 - 1


@pytest.mark.parametrize(
    "trade_id", ["", "x" * (MAX_ID_LENGTH + 1), "tab\there", "new\nline", "nul\x00"]
)
def test_bad_ids_are_invalid_trades(trade_id: str) -> None:
    with pytest.raises(InvalidTrade, match=f"id must be 1..{MAX_ID_LENGTH} printable characters"):
        make_trade(DOGE, trade_id, "1", "1", Side.BUY, 1)


def test_ids_up_to_the_limit_with_spaces_and_unicode_are_fine() -> None:
    for trade_id in ("x" * MAX_ID_LENGTH, "a b", "ü-7"):
        assert make_trade(DOGE, trade_id, "1", "1", Side.BUY, 1).id == trade_id


def test_a_timestamp_before_1970_is_an_invalid_trade() -> None:
    with pytest.raises(InvalidTrade, match="timestamp must not be before 1970"):
        make_trade(DOGE, "t", "1", "1", Side.BUY, -1)
    assert make_trade(DOGE, "t", "1", "1", Side.BUY, 0).ts == 0


@given(price=st.text(max_size=10), amount=st.text(max_size=10))
def test_make_trade_raises_only_invalid_trade_on_arbitrary_text(price: str, amount: str) -> None:
    spec = SymbolSpec("ANY", 4, 0)
    try:
        trade = make_trade(spec, "t", price, amount, Side.BUY, 1)
    except InvalidTrade as exc:
        message = exc.message
    else:
        assert trade.price > 0
        assert trade.amount > 0
        return
    assert message


def test_sides_have_stable_wire_names() -> None:
    assert [side.value for side in Side] == ["Buy", "Sell"]


def test_intervals_are_epoch_aligned_and_each_a_multiple_of_the_finer() -> None:
    assert [str(i) for i in INTERVALS] == ["1s", "1m", "5m", "15m", "1h"]
    for fine, coarse in pairwise(INTERVALS):
        assert coarse.ms % fine.ms == 0
    minute = parse_interval("1m")
    assert minute.open_time(1_700_000_099_999) == 1_700_000_040_000
    assert minute.open_time(1_700_000_039_999) == 1_699_999_980_000
    assert minute.open_time(1_700_000_040_000) == 1_700_000_040_000
    with pytest.raises(UnknownInterval, match="unknown interval '2m'; use one of 1s, 1m"):
        parse_interval("2m")

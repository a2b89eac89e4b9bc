"""Snapshots, state hashes, command encoding and depth update ids."""

import msgspec
import pytest
from exchange_helpers import MARKETS, fund, new_engine, ok, place

from memetrade.domain.exchange import (
    BookLevelChange,
    CancelAll,
    CancelOrder,
    Deposit,
    Engine,
    PlaceOrder,
    Withdraw,
    build_markets,
    decode_command,
    encode_command,
)
from memetrade.domain.exchange.fees import DAY_MS
from memetrade.domain.symbols import PRESETS, SymbolSpec


def busy_engine() -> Engine:
    engine = new_engine()
    for user in (1, 2, 3):
        fund(engine, user)
    ok(place(engine, 1, "sell", price=101, quantity=5))
    ok(place(engine, 2, "sell", price=101, quantity=5))
    ok(place(engine, 1, "buy", price=99, quantity=5))
    ok(place(engine, 3, "buy", price=100, quantity=7, ts=DAY_MS))
    ok(place(engine, 3, "buy", type="stop_limit", stop_price=103, price=104, quantity=3))
    ok(place(engine, 2, "buy", price=101, quantity=2, stp="none"))
    return engine


def test_restore_gives_the_same_hash_and_the_same_behaviour() -> None:
    engine = busy_engine()
    restored = Engine.restore(MARKETS, engine.snapshot())
    assert restored.state_hash() == engine.state_hash()
    assert restored.snapshot() == engine.snapshot()
    assert restored.open_orders(3) == engine.open_orders(3)
    follow = [
        PlaceOrder(1, "DOGE", "buy", "limit", quantity=20, price=104),
        CancelAll(3, None),
        PlaceOrder(2, "DOGE", "sell", "market", quantity=3),
        CancelOrder(1, 3),
        Withdraw(0, "USDT", 1),
    ]
    for ts, command in enumerate(follow, start=2 * DAY_MS):
        assert restored.execute(command, ts) == engine.execute(command, ts)
    assert restored.state_hash() == engine.state_hash()


def test_hash_ignores_history_but_not_state() -> None:
    a, b = new_engine(), new_engine()
    ok(a.execute(Deposit(1, "USDT", 500), 0))
    ok(a.execute(Deposit(2, "USDT", 500), 0))
    ok(b.execute(Deposit(2, "USDT", 500), 0))
    ok(b.execute(Deposit(1, "USDT", 500), 0))
    assert a.state_hash() == b.state_hash()
    ok(b.execute(Deposit(1, "USDT", 1), 0))
    assert a.state_hash() != b.state_hash()


def test_restore_refuses_foreign_payloads() -> None:
    with pytest.raises(ValueError, match="not an exchange snapshot"):
        Engine.restore(MARKETS, b"\x01\x02")
    other = build_markets([SymbolSpec("WIF", 2, 0)])
    with pytest.raises(ValueError, match="unknown markets"):
        Engine.restore(other, busy_engine().snapshot())


def test_commands_round_trip_through_their_encoding() -> None:
    commands = [
        PlaceOrder(1, "DOGE", "buy", "limit", quantity=3, price=100, client_order_id="x"),
        PlaceOrder(1, "DOGE", "buy", "stop_market", quote_amount=9, stop_price=5, stp="none"),
        CancelOrder(1, 7),
        CancelAll(1),
        Deposit(2, "USDT", 10),
        Withdraw(2, "USDT", 10),
    ]
    for ts, command in enumerate(commands):
        assert decode_command(encode_command(command, ts)) == (ts, command)
    assert len(encode_command(commands[0], 1_796_000_000_000)) < 100
    with pytest.raises(msgspec.ValidationError):
        decode_command(msgspec.msgpack.encode([1, {"cmd": "place", "user_id": 1}]))


def test_balances_past_64_bits_are_snapshotted_exactly() -> None:
    # A command moves at most 2**62 units, but a balance is their sum: ten such deposits are
    # past 2**64, which the snapshot must still carry exactly.
    engine = busy_engine()
    for i in range(10):
        ok(engine.execute(Deposit(1, "USDT", 2**62), 1_796_000_000_000 + i))
    refused = engine.execute(Deposit(1, "USDT", 2**62 + 1), 1_796_000_000_100)
    assert refused.code == "invalid_quantity"
    restored = Engine.restore(MARKETS, engine.snapshot())
    assert restored.state_hash() == engine.state_hash()
    assert restored.balances(1)["USDT"].available >= 10 * 2**62


def test_book_changes_carry_consecutive_update_ids() -> None:
    engine = busy_engine()
    last, _, _ = engine.depth("DOGE")
    out = ok(place(engine, 1, "sell", type="market", quantity=10))
    ids = [e.update_id for e in out.events if isinstance(e, BookLevelChange)]
    assert ids == list(range(last + 1, last + 1 + len(ids)))
    assert engine.depth("DOGE")[0] == ids[-1]


def test_markets_from_presets_share_exact_quote_units() -> None:
    markets = {m.symbol: m for m in build_markets(PRESETS.values())}
    pepe, doge = markets["PEPE"], markets["DOGE"]
    assert pepe.quote_decimals == doge.quote_decimals == 12
    assert doge.notional(doge.parse_price("0.1234"), doge.parse_quantity("10")) == 1_234 * 10**9
    assert pepe.quote_text(pepe.notional(pepe.parse_price("0.000001234"), 10**6)) == "1.234"
    assert pepe.min_notional == 10**12
    engine = Engine(markets.values())
    assert engine.asset_decimals("USDT") == 12
    assert engine.asset_decimals("DOGE") == 2

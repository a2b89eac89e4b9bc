"""Stateful property test: random command sequences of several users, engine vs reference.

After every step the engine must agree with the naive reference (``exchange_reference``) on
refusals, fills (price, size, orders, fees), balances and open orders; and the invariants
hold: the book is never crossed, each level is FIFO, balances are never negative, each asset
is conserved (balances plus fees equal deposits less withdrawals) and ``locked`` is exactly
what the open orders reserve. A snapshot/restore step swaps in a restored twin, which must
have the same hash and behave identically from then on.
"""

from collections import Counter
from typing import Any

from exchange_reference import DAY_MS, Reference, RefFill
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from memetrade.domain.exchange import (
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    Engine,
    FeeSchedule,
    FeeTier,
    Fill,
    PlaceOrder,
    Withdraw,
    build_markets,
)
from memetrade.domain.symbols import SymbolSpec

MARKETS = build_markets([SymbolSpec("DOGE", 2, 0)], min_notional="0.5")
# Low thresholds and a short window, so tiers change and volume ages out within a run.
SCHEDULE = FeeSchedule(
    (FeeTier("Standard", 0, 10, 20), FeeTier("VIP1", 20, 5, 10), FeeTier("VIP3", 60, 0, 5)),
    window_days=3,
)
MAX_OPEN = 6
USERS = st.integers(1, 3)
SIDES = st.sampled_from(["buy", "sell"])
PRICES = st.integers(95, 105)
QTYS = st.integers(1, 8)
STPS = st.sampled_from(["expire_taker", "expire_maker", "expire_both", "none"])
TIFS = st.sampled_from(["GTC", "GTC", "IOC", "FOK"])
STEPS = st.sampled_from([0, 0, 1_000, DAY_MS])


def _fill_key(f: Fill | RefFill) -> tuple[int, ...]:
    return (
        f.trade_id,
        f.price,
        f.quantity,
        f.taker_order_id,
        f.maker_order_id,
        f.taker_fee,
        f.maker_fee,
    )


class ExchangeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(MARKETS, SCHEDULE, MAX_OPEN)
        self.ref = Reference(
            min_notional=50,
            tiers=[(t.min_volume * 100, t.maker_bps, t.taker_bps) for t in SCHEDULE.tiers],
            window_days=SCHEDULE.window_days,
            max_open=MAX_OPEN,
        )
        self.ts = 0
        self.net: Counter[str] = Counter()  # deposits less withdrawals
        self.twin: Engine | None = None
        for user in (1, 2, 3):
            for asset, amount in (("USDT", 20_000), ("DOGE", 200)):
                self.ref.deposit(user, asset, amount)
                self.run(Deposit(user, asset, amount), 0, None)
                self.net[asset] += amount

    def run(self, command: Command, step: int, expected: str | None) -> None:
        self.ts += step
        out = self.engine.execute(command, self.ts)
        if self.twin is not None:
            assert self.twin.execute(command, self.ts) == out
        assert (out.ok, out.code) == (expected is None, expected), command
        if isinstance(command, PlaceOrder):
            got = [_fill_key(f) for f in out.events if isinstance(f, Fill)]
            want = [_fill_key(f) for f in self.ref.fills]
            assert got == want, command

    # -- rules ------------------------------------------------------------------------------

    @rule(user=USERS, asset=st.sampled_from(["USDT", "DOGE"]), amount=st.integers(0, 3_000))
    def deposit(self, user: int, asset: str, amount: int) -> None:
        expected = self.ref.deposit(user, asset, amount)
        self.run(Deposit(user, asset, amount), 0, expected)
        if expected is None:
            self.net[asset] += amount

    @rule(user=st.integers(0, 3), asset=st.sampled_from(["USDT", "DOGE"]), amount=QTYS)
    def withdraw(self, user: int, asset: str, amount: int) -> None:
        expected = self.ref.withdraw(user, asset, amount * 50)
        self.run(Withdraw(user, asset, amount * 50), 0, expected)
        if expected is None:
            self.net[asset] -= amount * 50

    def place(self, step: int, **fields: Any) -> None:
        self.ts += step
        ref_fields = {
            "qty": fields.get("quantity"),
            "quote": fields.get("quote_amount"),
            "price": fields.get("price"),
            "stop": fields.get("stop_price"),
            "tif": fields.get("time_in_force", "GTC"),
            "post_only": fields.get("post_only", False),
            "stp": fields.get("stp", "expire_taker"),
        }
        expected = self.ref.place(
            fields["user_id"], fields["side"], fields["type"], self.ts, **ref_fields
        )
        self.ts -= step
        self.run(PlaceOrder(symbol="DOGE", **fields), step, expected)

    @rule(u=USERS, side=SIDES, price=PRICES, qty=QTYS, tif=TIFS, stp=STPS, post=st.booleans())
    def limit(
        self, u: int, side: str, price: int, qty: int, tif: str, stp: str, post: bool
    ) -> None:
        post = post and tif == "GTC"
        self.place(
            0,
            user_id=u,
            side=side,
            type="limit",
            price=price,
            quantity=qty,
            time_in_force=tif,
            stp=stp,
            post_only=post,
        )

    @rule(u=USERS, side=SIDES, qty=st.integers(1, 12), stp=STPS, step=STEPS)
    def market(self, u: int, side: str, qty: int, stp: str, step: int) -> None:
        self.place(step, user_id=u, side=side, type="market", quantity=qty, stp=stp)

    @rule(u=USERS, quote=st.integers(40, 1_500), stp=STPS, step=STEPS)
    def market_by_quote(self, u: int, quote: int, stp: str, step: int) -> None:
        self.place(step, user_id=u, side="buy", type="market", quote_amount=quote, stp=stp)

    @rule(u=USERS, side=SIDES, stop=PRICES, price=PRICES, qty=QTYS, tif=TIFS, stp=STPS)
    def stop_limit(
        self, u: int, side: str, stop: int, price: int, qty: int, tif: str, stp: str
    ) -> None:
        self.place(
            0,
            user_id=u,
            side=side,
            type="stop_limit",
            stop_price=stop,
            price=price,
            quantity=qty,
            time_in_force=tif,
            stp=stp,
        )

    @rule(u=USERS, side=SIDES, stop=PRICES, size=st.integers(1, 8), stp=STPS)
    def stop_market(self, u: int, side: str, stop: int, size: int, stp: str) -> None:
        amount = {"quote_amount": size * 100} if side == "buy" else {"quantity": size}
        self.place(0, user_id=u, side=side, type="stop_market", stop_price=stop, stp=stp, **amount)

    @rule(u=USERS, order_id=st.integers(1, 40))
    def cancel(self, u: int, order_id: int) -> None:
        self.run(CancelOrder(u, order_id), 0, self.ref.cancel(u, order_id))

    @rule(u=USERS, everywhere=st.booleans())
    def cancel_all(self, u: int, everywhere: bool) -> None:
        self.ref.cancel_all(u)
        self.run(CancelAll(u, None if everywhere else "DOGE"), 0, None)

    @precondition(lambda self: self.twin is None)
    @rule()
    def snapshot_and_restore(self) -> None:
        restored = Engine.restore(MARKETS, self.engine.snapshot(), SCHEDULE, MAX_OPEN)
        assert restored.state_hash() == self.engine.state_hash()
        self.twin, self.engine = self.engine, restored

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def agrees_with_reference(self) -> None:
        engine, ref = self.engine, self.ref
        mine = {
            (u, a): (b.available, b.locked)
            for u in range(4)
            for a, b in engine.balances(u).items()
            if b.available or b.locked
        }
        theirs = {k: (v[0], v[1]) for k, v in ref.balances.items() if v[0] or v[1]}
        assert mine == theirs
        for u in range(1, 4):
            got = [(o.order_id, o.remaining, o.locked) for o in engine.open_orders(u)]
            want = [(o.id, o.remaining, o.reserved) for o in ref.open_orders(u)]
            assert got == want
        assert engine.last_price("DOGE") == ref.last

    @invariant()
    def book_is_sound(self) -> None:
        _, bids, asks = self.engine.depth("DOGE", 1_000)
        if bids and asks:
            assert bids[0][0] < asks[0][0]
        book = self.engine._core.books["DOGE"]
        for ladder in (book.bids, book.asks):
            for key in ladder.keys:
                level = ladder.levels[key]
                order, seen, total = level.head, [], 0
                while order is not None:
                    seen.append(order.id)
                    total += order.remaining
                    order = order.next
                assert total == level.total > 0
                # FIFO: the reference keeps arrival order explicitly.
                ref = sorted(
                    (o for o in self.ref.book if o.price == level.price), key=lambda o: o.seq
                )
                assert seen == [o.id for o in ref]

    @invariant()
    def money_is_conserved_and_locked_is_reserved(self) -> None:
        totals: Counter[str] = Counter()
        reserved: Counter[tuple[int, str]] = Counter()
        for u in range(1, 4):
            for o in self.engine.open_orders(u):
                reserved[u, "USDT" if o.side == "buy" else "DOGE"] += o.locked
                if o.side == "buy" and o.price is not None:
                    assert o.locked == o.remaining * (o.price + -(-o.price * 20 // 10_000))
        for u in range(4):
            for asset, b in self.engine.balances(u).items():
                assert b.available >= 0
                assert b.locked >= 0
                assert b.locked == reserved[u, asset]
                totals[asset] += b.available + b.locked
        for asset in ("USDT", "DOGE"):
            assert totals[asset] == self.net[asset]


ExchangeMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestExchangeAgainstReference = ExchangeMachine.TestCase

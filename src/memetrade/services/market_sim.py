"""The mock market through the real order book (``MOCK_MODE=book``): simulated market makers
quote ladders around each symbol's model price and simulated takers trade against them, all as
ordinary exchange users, so balances, fees and self-trade prevention apply to them as to anyone
and the depth, trades and candles served look like a live venue's.

Design, and why:

* The participants are users with reserved ids from ``SIMULATED_USER_BASE`` up: account ids
  count up from 1 and never get there, so no person can be one of them. Their balances come
  from ``Deposit`` commands (topped up when half spent), journaled like any other.
* Each tick (every ``interval_ms``, on absolute times of the loop's clock, like the plain
  generator) asks every ``MarketModel`` for the tape of the time that just elapsed. The model's
  mid price after it is the makers' fair price; its trades become the takers' orders, so
  arrivals are as bursty as the plain generator's and order flow follows the price.
* Makers requote first (cancel/replace on a fixed price grid, see ``domain/market_maker.py``),
  then the takers' orders go in. A tick's commands are submitted together, in that order, so
  they share one journal write; the tick waits until they are durable, which paces the
  simulation to what the journal keeps up with.
* Refusals are expected (a post-only quote the book moved onto, a taker short of funds after a
  run of buys) and change nothing; they are counted in ``refused`` by code.
* At start the makers cancel whatever they left open (a restart recovers their orders with the
  engine) and quote afresh from the model's price.
"""

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from memetrade.domain.exchange.commands import CancelAll, Command
from memetrade.domain.exchange.markets import Market
from memetrade.domain.market_maker import (
    MakerParams,
    maker_commands,
    maker_params,
    quote_ladder,
    taker_orders,
    top_ups,
)
from memetrade.domain.market_model import MarketModel
from memetrade.ports import Clock
from memetrade.services.exchange import ExchangeService
from memetrade.services.generator import MAX_CATCH_UP_MS

__all__ = ["SIMULATED_USER_BASE", "MakerProfile", "MarketSimulation"]

SIMULATED_USER_BASE = 1 << 40


@dataclass(frozen=True, slots=True)
class MakerProfile:
    """A kind of maker: spreads in basis points of the price, each level worth
    ``level_quote`` whole units of the quote asset."""

    half_spread_bps: int
    step_bps: int
    level_quote: int
    levels: int


# A tight small maker and a wider, deeper one: a book with a thin inside and more behind it.
DEFAULT_MAKERS = (MakerProfile(2, 2, 300, 5), MakerProfile(6, 4, 1_500, 5))
# Takers hold this many times the deepest level's notional, in quote and in each base.
_TAKER_FUNDS = 200
# A taker order is at most this many of the deepest maker's levels; a sweep reaches into
# the second level of the widest one.
_TAKER_LEVELS = 2


@dataclass(slots=True)
class _Maker:
    user_id: int
    market: Market
    model: MarketModel
    params: MakerParams
    funds: dict[str, int]


class MarketSimulation:
    """Makers and takers for every symbol that has both a model and a market."""

    def __init__(
        self,
        exchange: ExchangeService,
        models: Sequence[MarketModel],
        interval_ms: int,
        clock: Clock,
        *,
        makers: Sequence[MakerProfile] = DEFAULT_MAKERS,
        takers: int = 3,
        trades_per_tick: float = 1.0,
    ) -> None:
        if interval_ms < 1:
            raise ValueError("interval_ms must be at least 1")
        if not makers or takers < 1:
            raise ValueError("a simulated market needs makers and takers")
        self._exchange = exchange
        self._models = [m for m in models if m.spec.name in exchange.markets]
        self._profiles = tuple(makers)
        self._interval_ms = interval_ms
        self._clock = clock
        self._intensity = trades_per_tick * 1000.0 / interval_ms
        self.takers = [SIMULATED_USER_BASE + i for i in range(takers)]
        self.makers: list[_Maker] = []
        self._taker_funds: dict[str, int] = {}
        self._taker_cap: dict[str, tuple[int, int]] = {}
        self.refused: Counter[str] = Counter()
        self.submitted = 0

    def _build(self) -> None:
        """Size the makers and the takers' funds from each model's current price."""
        self.makers.clear()
        user = SIMULATED_USER_BASE + len(self.takers)
        for model in self._models:
            market = self._exchange.markets[model.spec.name]
            price = model.mid_price()
            unit = 10**market.quote_decimals
            deepest = reach = 0
            for profile in self._profiles:
                params = maker_params(
                    market,
                    price,
                    half_spread_bps=profile.half_spread_bps,
                    step_bps=profile.step_bps,
                    level_notional=profile.level_quote * unit,
                    levels=profile.levels,
                )
                # The target inventory of base, and quote worth twice as much: the skew keeps
                # the inventory within half the target of it, so neither runs out.
                base = params.target_inventory
                funds = {market.base: base, market.quote: market.notional(price, 2 * base)}
                self.makers.append(_Maker(user, market, model, params, funds))
                user += 1
                deepest = max(deepest, params.quantity)
                reach = max(reach, params.half_spread_ticks + params.step_ticks)
            self._taker_cap[market.symbol] = (_TAKER_LEVELS * deepest, reach)
            self._taker_funds[market.base] = _TAKER_FUNDS * deepest
            quote_funds = _TAKER_FUNDS * market.notional(price, deepest)
            self._taker_funds[market.quote] = max(
                self._taker_funds.get(market.quote, 0), quote_funds
            )

    async def run(self) -> None:
        """Trade every ``interval_ms`` until cancelled. Raise ``StorageError`` when the
        exchange's journal fails."""
        self._build()
        loop = asyncio.get_running_loop()
        interval_s = self._interval_ms / 1000.0
        started = loop.time()
        tick = 0
        window_start = self._clock.now_ms()
        # Makers' ids follow the order of SYMBOLS, so after a change of it a maker may have
        # orders in a symbol it no longer quotes: start from no orders at all.
        engine = self._exchange.engine
        await self._submit(
            [CancelAll(m.user_id) for m in self.makers if engine.open_orders(m.user_id)]
        )
        await self._submit(self._requote())
        while True:
            tick += 1
            delay = started + tick * interval_s - loop.time()
            if delay < -interval_s:
                tick += int(-delay / interval_s)  # Fell behind: skip, as the generator does.
            await asyncio.sleep(max(delay, 0.0))
            now = self._clock.now_ms()
            if now <= window_start:
                continue
            window_start = max(window_start, now - MAX_CATCH_UP_MS)
            taking: list[Command] = []
            for model in self._models:
                start = max(window_start, model.next_start_ms or window_start)
                if start < now:
                    tape = model.trades_between(start, now, self._intensity)
                    if tape:
                        cap, reach = self._taker_cap[model.spec.name]
                        taking += taker_orders(tape, self.takers, cap, reach)
            window_start = now
            # Makers requote around the prices the tape moved to, then the takers trade.
            commands = self._requote() + taking
            await self._submit(commands)

    def _requote(self) -> list[Command]:
        """Top-ups first, then each maker's cancel/replace against its current state."""
        engine = self._exchange.engine
        commands: list[Command] = []
        for taker in self.takers:
            commands += top_ups(taker, engine.balances(taker), self._taker_funds)
        for maker in self.makers:
            balances = engine.balances(maker.user_id)
            commands += top_ups(maker.user_id, balances, maker.funds)
            held = balances.get(maker.market.base)
            inventory = (
                maker.params.target_inventory if held is None else held.available + held.locked
            )
            desired = quote_ladder(maker.model.mid_price(), inventory, maker.params)
            resting = engine.open_orders(maker.user_id, maker.market.symbol)
            commands += maker_commands(maker.user_id, maker.market.symbol, desired, resting)
        return commands

    async def _submit(self, commands: Sequence[Command]) -> None:
        if not commands:
            return
        # Tasks start in creation order and each executes before its first await, so the
        # engine sees the commands in this order; all of them then share a journal write.
        outcomes = await asyncio.gather(*(self._exchange.submit(c) for c in commands))
        self.submitted += len(commands)
        for outcome in outcomes:
            if not outcome.ok:
                self.refused[outcome.code or "refused"] += 1

"""Property tests: the candle book against the naive reference aggregator (see reference.py)."""

from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import (
    SPEC,
    T0,
    WIDE_RULES,
    Consumer,
    RefTrade,
    assert_matches_reference,
    bucket,
    merge_candles,
    reference_candles,
    to_ref,
    trade_pair,
    trade_sets,
)

from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import Candle, CandleRules
from memetrade.domain.errors import TradeTooNew, TradeTooOld
from memetrade.domain.intervals import INTERVALS
from memetrade.domain.trades import Side, Trade

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def snapshot(book: CandleBook, start: int) -> dict[str, list[Candle]]:
    return {i.name: book.candles(i, bucket(start, i.ms), book.open_time(i)) for i in INTERVALS}


# -- 1. every candle equals the reference, in any arrival order, late trades included --------


@SETTINGS
@given(trades=trade_sets(), data=st.data())
def test_candles_equal_reference_for_any_arrival_order_with_a_running_clock(
    trades: list[tuple[Trade, RefTrade]], data: st.DataObject
) -> None:
    # now = the newest timestamp seen so far: every trade older than the frontier second is late.
    order = data.draw(st.permutations(trades))
    drain_after = data.draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    book = CandleBook(SPEC.name, WIDE_RULES)
    consumer = Consumer(book)
    now = 0
    for (trade, _), drain in zip(order, drain_after, strict=True):
        now = max(now, trade.ts)
        assert book.apply(trade, now) is True
        if drain:
            consumer.drain()
    consumer.drain()
    refs = [ref for _, ref in trades]
    assert_matches_reference(book, refs)
    # The frontier is the newest trade's candle at every interval.
    newest = max(ref.ts for ref in refs)
    for interval in INTERVALS:
        assert book.open_time(interval) == bucket(newest, interval.ms)
    # A subscriber that applied every published update holds exactly the reference candles,
    # so every late revision (and the empty candles flat at a revised close) was published.
    for interval in INTERVALS:
        first = bucket(min(ref.ts for ref in refs), interval.ms)
        want = reference_candles(refs, interval.ms, first, book.open_time(interval))
        assert [to_ref(c) for c in consumer.view(interval)] == want, interval


@SETTINGS
@given(trades=trade_sets(), data=st.data(), slack=st.integers(0, 60_000))
def test_candles_equal_reference_for_any_arrival_order_with_a_fixed_clock(
    trades: list[tuple[Trade, RefTrade]], data: st.DataObject, slack: int
) -> None:
    order = data.draw(st.permutations(trades))
    now = max(ref.ts for _, ref in trades) + slack
    book = CandleBook(SPEC.name, WIDE_RULES)
    for trade, _ in order:
        assert book.apply(trade, now) is True
    assert_matches_reference(book, [ref for _, ref in trades])


@SETTINGS
@given(trades=trade_sets(), data=st.data())
def test_arrival_order_never_changes_the_book(
    trades: list[tuple[Trade, RefTrade]], data: st.DataObject
) -> None:
    books = []
    for order in (trades, data.draw(st.permutations(trades))):
        book = CandleBook(SPEC.name, WIDE_RULES)
        now = 0
        for trade, _ in order:
            now = max(now, trade.ts)
            book.apply(trade, now)
        books.append(book)
    start = min(ref.ts for _, ref in trades)
    assert snapshot(books[0], start) == snapshot(books[1], start)


# -- 2. a coarse candle is the merge of the finer candles it contains ----------------------


@SETTINGS
@given(trades=trade_sets(spans_s=(150, 4_000)), data=st.data())
def test_every_coarse_candle_is_the_merge_of_its_finer_candles(
    trades: list[tuple[Trade, RefTrade]], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(trades))
    book = CandleBook(SPEC.name, WIDE_RULES)
    now = 0
    for trade, _ in order:
        now = max(now, trade.ts)
        book.apply(trade, now)
    first_ts = min(ref.ts for _, ref in trades)
    pairs = [*pairwise(INTERVALS), (INTERVALS[0], INTERVALS[-1])]
    for fine, coarse in pairs:
        coarse_candles = book.candles(coarse, bucket(first_ts, coarse.ms), book.open_time(coarse))
        assert coarse_candles
        for candle in coarse_candles:
            inner = book.candles(
                fine,
                candle.open_time,
                min(candle.open_time + coarse.ms - fine.ms, book.open_time(fine)),
                prev_close=book.close_before(fine, candle.open_time),
            )
            assert candle == merge_candles(candle.open_time, inner), (fine, coarse)


# -- 3. a trade id counts once ----------------------------------------------------------------


@SETTINGS
@given(trades=trade_sets(), data=st.data())
def test_replaying_a_trade_anywhere_changes_nothing_and_returns_false(
    trades: list[tuple[Trade, RefTrade]], data: st.DataObject
) -> None:
    order = [t for t, _ in data.draw(st.permutations(trades))]
    # Replays of random trades, inserted anywhere after the original (late ones included).
    replays = data.draw(
        st.lists(st.tuples(st.integers(0, len(order) - 1), st.integers(0, 10**6)), max_size=10)
    )
    sequence: list[tuple[Trade, bool]] = [(t, True) for t in order]
    for index, where in replays:
        original = sequence.index((order[index], True))
        position = original + 1 + where % (len(sequence) - original)
        sequence.insert(position, (order[index], False))
    advance_at = data.draw(st.sets(st.integers(0, len(sequence))))
    book = CandleBook(SPEC.name, WIDE_RULES)
    consumer = Consumer(book)
    now = 0
    first_ts = min(t.ts for t in order)
    for step, (trade, fresh) in enumerate(sequence):
        now = max(now, trade.ts)
        if step in advance_at:
            now += 1_500  # end the current second: later replays are late replays
            book.advance(now)
        consumer.drain()
        before = snapshot(book, first_ts)
        assert book.apply(trade, now) is fresh
        if not fresh:
            assert consumer.drain() == []
            assert snapshot(book, first_ts) == before
    consumer.drain()
    assert_matches_reference(book, [ref for _, ref in trades])


@SETTINGS
@given(trades=trade_sets(), data=st.data())
def test_a_replay_with_the_same_id_but_other_values_is_still_a_duplicate(
    trades: list[tuple[Trade, RefTrade]], data: st.DataObject
) -> None:
    book = CandleBook(SPEC.name, WIDE_RULES)
    now = max(ref.ts for _, ref in trades)
    for trade, _ in trades:
        book.apply(trade, now)
    victim, _ = data.draw(st.sampled_from(trades))
    ms = data.draw(st.integers(0, 999))
    altered, _ = trade_pair(victim.id, bucket(victim.ts, 1000) + ms, 7, 3)
    book.drain()
    assert book.apply(altered, now) is False
    assert book.drain() == []
    assert_matches_reference(book, [ref for _, ref in trades])


# -- 4. empty intervals ----------------------------------------------------------------------


@SETTINGS
@given(trades=trade_sets(spans_s=(30, 400)), gap=st.integers(0, 3_000_000))
def test_empty_intervals_are_flat_at_the_previous_close_and_nothing_precedes_the_first_trade(
    trades: list[tuple[Trade, RefTrade]], gap: int
) -> None:
    book = CandleBook(SPEC.name, WIDE_RULES)
    newest = max(ref.ts for _, ref in trades)
    for trade, _ in trades:
        book.apply(trade, newest)
    book.advance(newest + gap)
    first_ts = min(ref.ts for _, ref in trades)
    for interval in INTERVALS:
        candles = book.candles(interval, bucket(first_ts, interval.ms) - 5 * interval.ms, 10**15)
        assert candles[0].open_time == bucket(first_ts, interval.ms)
        assert candles[-1].open_time == bucket(newest + gap, interval.ms)
        times = [c.open_time for c in candles]
        assert times == list(range(times[0], times[-1] + 1, interval.ms))
        for previous, candle in pairwise(candles):
            if candle.trades == 0:
                flat = previous.close
                assert candle == Candle(
                    candle.open_time, flat, flat, flat, flat, 0, 0, 0, None, None, 0, 0
                )
            else:
                assert candle.volume > 0
                assert 0 <= candle.buy_volume <= candle.volume
                assert 0 <= candle.buy_quote_volume <= candle.quote_volume
    assert_matches_reference(book, [ref for _, ref in trades])


# -- 5. the update stream -----------------------------------------------------------------------


@SETTINGS
@given(trades=trade_sets(spans_s=(2, 150)), ticks=st.lists(st.integers(1, 400_000), max_size=4))
def test_advance_closes_candles_without_any_trade(
    trades: list[tuple[Trade, RefTrade]], ticks: list[int]
) -> None:
    book = CandleBook(SPEC.name, WIDE_RULES)
    consumer = Consumer(book)
    now = max(ref.ts for _, ref in trades)
    for trade, _ in trades:
        book.apply(trade, now)
    consumer.drain()
    for tick in ticks:
        before = {i: book.open_time(i) for i in INTERVALS}
        published = {i: consumer.latest[(i, before[i])].candle for i in INTERVALS}
        now += tick
        book.advance(now)
        updates = consumer.drain()
        for interval in INTERVALS:
            mine = [u for u in updates if u.interval == interval]
            assert book.open_time(interval) == bucket(now, interval.ms)
            if book.open_time(interval) == before[interval]:
                assert mine == []  # nothing happened to this stream
                continue
            # The candle that was open gets its final update, unchanged and closed; every
            # interval up to the new open one is announced, in order.
            assert mine[0].candle == published[interval]
            assert mine[0].closed
            assert [u.candle.open_time for u in mine] == list(
                range(before[interval], book.open_time(interval) + 1, interval.ms)
            )
            assert [u.closed for u in mine] == [True] * (len(mine) - 1) + [False]
            assert all(u.candle.trades == 0 for u in mine[1:])
    # Advancing to the current second (or back in time) changes nothing.
    book.advance(now)
    book.advance(now - 10_000)
    assert consumer.drain() == []
    assert_matches_reference(book, [ref for _, ref in trades])


@SETTINGS
@given(trades=trade_sets(spans_s=(20, 400)), data=st.data())
def test_a_late_trade_republishes_its_candle_and_the_empty_candles_flat_at_its_close(
    trades: list[tuple[Trade, RefTrade]], data: st.DataObject
) -> None:
    book = CandleBook(SPEC.name, WIDE_RULES)
    consumer = Consumer(book)
    newest = max(ref.ts for _, ref in trades)
    for trade, _ in trades:
        book.apply(trade, newest)
    consumer.drain()
    oldest = min(ref.ts for _, ref in trades)
    ts = data.draw(st.integers(oldest - 3_000, bucket(newest, 1000) - 1))
    late, late_ref = trade_pair("late~", ts, data.draw(st.integers(1, 30)), 1)
    assert book.apply(late, newest) is True
    updates = consumer.drain()
    refs = [ref for _, ref in trades] + [late_ref]
    for interval in INTERVALS:
        t = bucket(ts, interval.ms)
        mine = {u.candle.open_time: u for u in updates if u.interval == interval}
        assert t in mine
        assert mine[t].candle.trades >= 1
        assert mine[t].closed == (t < book.open_time(interval))
        # When the late trade set the close, every following empty candle (up to the next
        # non-empty one) is flat at the new close, so it is published again.
        after = book.candles(interval, t, book.open_time(interval))
        sets_close = after[0].last == (ts, late.id)
        for candle in after[1:] if sets_close else []:
            if candle.trades:
                break
            assert candle.open_time in mine
            assert mine[candle.open_time].candle == candle
        # Published candles are exactly the book's candles.
        for open_time, update in mine.items():
            assert book.candles(interval, open_time, open_time) == [update.candle]
    assert_matches_reference(book, refs)


# -- 6. trades outside the time window ----------------------------------------------------


@SETTINGS
@given(
    trades=trade_sets(spans_s=(2, 150)),
    data=st.data(),
    age=st.integers(0, 400_000),
    ahead=st.integers(0, 20_000),
)
def test_trades_too_new_or_too_old_are_refused_and_change_nothing(
    trades: list[tuple[Trade, RefTrade]], data: st.DataObject, age: int, ahead: int
) -> None:
    rules = CandleRules(max_trade_age_ms=age, max_trade_ahead_ms=ahead, history_limit=50)
    book = CandleBook(SPEC.name, rules)
    consumer = Consumer(book)
    now = max(ref.ts for _, ref in trades)
    oldest = min(ref.ts for _, ref in trades)
    accepted = [ref for trade, ref in trades if trade.ts >= now - age]
    for trade, _ in trades:
        if trade.ts < now - age:
            continue
        book.apply(trade, now)
    consumer.drain()
    before = snapshot(book, max(oldest, now - age))
    seconds_before = book.open_time(INTERVALS[0])
    too_new_ts = now + ahead + data.draw(st.integers(1, 10**9))
    too_old_ts = now - age - data.draw(st.integers(1, min(10**9, now - age)))
    new, _ = trade_pair("new", too_new_ts, 1, 1)
    old, _ = trade_pair("old", too_old_ts, 1, 1)
    for trade, error in ((new, TradeTooNew), (old, TradeTooOld)):
        with pytest.raises(error, match=f"^trade {trade.id} is ") as info:
            book.apply(trade, now)
        assert info.value.code in ("trade_too_new", "trade_too_old")
        assert consumer.drain() == []
        assert book.open_time(INTERVALS[0]) == seconds_before
        assert snapshot(book, max(oldest, now - age)) == before
    # Exactly at the limits a trade is still accepted.
    edge_new, ref_new = trade_pair("edge-new", now + ahead, 2, 1)
    edge_old, ref_old = trade_pair("edge-old", now - age, 3, 1)
    assert book.apply(edge_new, now) is True
    assert book.apply(edge_old, now) is True
    if accepted:
        assert_matches_reference(book, [*accepted, ref_new, ref_old])


# -- 7. restore ----------------------------------------------------------------------------------


@SETTINGS
@given(trades=trade_sets(), more=trade_sets(spans_s=(3, 60)), data=st.data())
def test_a_book_restored_from_drained_candles_continues_exactly(
    trades: list[tuple[Trade, RefTrade]],
    more: list[tuple[Trade, RefTrade]],
    data: st.DataObject,
) -> None:
    original = CandleBook(SPEC.name, WIDE_RULES)
    consumer = Consumer(original)
    now = 0
    for trade, _ in data.draw(st.permutations(trades)):
        now = max(now, trade.ts)
        original.apply(trade, now)
        if data.draw(st.booleans()):
            consumer.drain()
    consumer.drain()
    refs = [ref for _, ref in trades]

    restored = CandleBook(SPEC.name, WIDE_RULES)
    for interval in data.draw(st.permutations(INTERVALS)):
        stored = [c for c in consumer.view(interval) if c.trades]
        restored.restore(interval, data.draw(st.permutations(stored)))
    restored.restore_ids((trade.ts, trade.id) for trade, _ in trades)
    first_ts = min(ref.ts for ref in refs)
    assert snapshot(restored, first_ts) == snapshot(original, first_ts)
    for interval in INTERVALS:
        assert restored.open_time(interval) == original.open_time(interval)
    assert_matches_reference(restored, refs)

    # Replays of stored trades are still duplicates.
    for trade, _ in trades:
        assert restored.apply(trade, now) is False
    assert restored.drain() == []

    # New trades go on from the restored last second (which is now late) onwards: shift the
    # second batch so it starts inside that second, with fresh ids.
    last_second = bucket(max(ref.ts for ref in refs), 1000)
    shift = last_second - T0
    restored_consumer = Consumer(restored)
    for trade, _ in more:
        new, new_ref = trade_pair(f"n{trade.id}", trade.ts + shift, trade.price, trade.amount)
        now = max(now, new.ts)
        assert restored.apply(new, now) is True
        restored_consumer.drain()
        refs.append(new_ref)
    assert_matches_reference(restored, refs)


# -- memory limits: what the book serves is right even after pruning --------------------------


TIGHT_RULES = CandleRules(max_trade_age_ms=3_000, max_trade_ahead_ms=1_000, history_limit=2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 999, 1_000, 2_000, 3_000, 4_000, 7_000, 65_000, 400_000]),
            st.one_of(
                st.sampled_from([-3_000, -2_000, -1_000, 0, 999]), st.integers(-3_000, 1_000)
            ),
            st.integers(1, 30),
            st.booleans(),
            st.sampled_from(Side),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_candles_served_within_memory_are_right_after_old_ones_are_dropped(
    steps: list[tuple[int, int, int, bool, Side]],
) -> None:
    # A tiny memory (6 one-second candles, 3 of each coarser interval) and a clock that jumps:
    # every candle the book still serves must be right, and the only candles it may omit are
    # leading empty ones whose previous close it no longer holds.
    book = CandleBook(SPEC.name, TIGHT_RULES)
    consumer = Consumer(book)
    refs: list[RefTrade] = []
    now = T0
    for n, (tick, offset, ticks, advance, side) in enumerate(steps):
        now += tick
        if advance:
            book.advance(now)
        trade, ref = trade_pair(f"t{n}", now + offset, ticks, 1, side)
        assert book.apply(trade, now) is True
        refs.append(ref)
        consumer.drain()
        assert_served_candles_are_right(book, consumer, refs)


def assert_served_candles_are_right(
    book: CandleBook, consumer: Consumer, refs: list[RefTrade]
) -> None:
    for interval in INTERVALS:
        start = book.memory_start(interval)
        end = book.open_time(interval)
        served = book.candles(interval, start, end)
        want = {c.open_time: c for c in reference_candles(refs, interval.ms, start, end)}
        assert served, interval
        assert served[-1].open_time == end
        times = [c.open_time for c in served]
        assert times == list(range(times[0], end + 1, interval.ms))
        for candle in served:
            assert to_ref(candle) == want[candle.open_time], (interval, candle.open_time)
        assert all(want[t].trades == 0 for t in want if t < times[0]), interval
        # Published updates of candles still in memory are the served ones.
        for candle in served:
            update = consumer.latest.get((interval, candle.open_time))
            if update is not None:
                assert update.candle == candle

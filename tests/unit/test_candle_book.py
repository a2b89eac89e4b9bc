"""The candle book, scenario by scenario (the properties are in test_candle_book_properties)."""

import pytest
from reference import SPEC, T0, WIDE_RULES, Consumer, RefTrade, assert_matches_reference, trade_pair

from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import Candle, CandleRules
from memetrade.domain.errors import TradeTooNew, TradeTooOld
from memetrade.domain.intervals import INTERVALS, parse_interval
from memetrade.domain.trades import Trade

S = T0 - T0 % 1000  # a whole second, 90 s before an hour boundary
ONE_S, ONE_M, ONE_H = parse_interval("1s"), parse_interval("1m"), parse_interval("1h")


def flat(t: int, close: int) -> Candle:
    return Candle(t, close, close, close, close, 0, 0, 0, None, None, 0, 0)


class Feed:
    """A book, a subscriber and the trades applied so far."""

    def __init__(self, rules: CandleRules = WIDE_RULES) -> None:
        self.book = CandleBook(SPEC.name, rules)
        self.consumer = Consumer(self.book)
        self.refs: list[RefTrade] = []

    def trade(self, tid: str, ts: int, ticks: int, now: int | None = None, lots: int = 1) -> Trade:
        trade, ref = trade_pair(tid, ts, ticks, lots)
        assert self.book.apply(trade, ts if now is None else now) is True
        self.refs.append(ref)
        return trade

    def drain(self) -> dict[tuple[str, int], tuple[Candle, bool]]:
        return {
            (u.interval.name, u.candle.open_time): (u.candle, u.closed)
            for u in self.consumer.drain()
        }


def test_a_fresh_book_has_no_candles_and_ignores_the_clock() -> None:
    book = CandleBook("MEME")
    book.advance(S)
    assert book.drain() == []
    for interval in INTERVALS:
        assert book.open_time(interval) == -1
        assert book.seq(interval) == 0
        assert book.candles(interval, 0, S) == []


def test_the_first_trade_opens_a_candle_at_every_interval() -> None:
    feed = Feed()
    feed.trade("a", S + 250, 10, lots=3)
    updates = feed.drain()
    assert len(updates) == len(INTERVALS)
    for interval in INTERVALS:
        t = S - S % interval.ms
        candle, closed = updates[(interval.name, t)]
        assert candle == Candle(t, 10, 10, 10, 10, 3, 30, 1, (S + 250, "a"), (S + 250, "a"), 3, 30)
        assert not closed
        assert feed.book.open_time(interval) == t


def test_open_and_close_follow_timestamp_then_id_not_arrival() -> None:
    feed = Feed()
    feed.trade("m", S + 500, 5)
    feed.trade("b", S + 500, 7, now=S + 500)  # same ms, smaller id: it opens
    feed.trade("z", S + 500, 9, now=S + 500)  # same ms, larger id: it closes
    feed.trade("a", S + 499, 6, now=S + 500)  # earlier ms: it opens, whatever its id
    [candle] = feed.book.candles(ONE_S, S, S)
    assert (candle.open, candle.close, candle.high, candle.low) == (6, 9, 9, 5)
    assert (candle.first, candle.last) == ((S + 499, "a"), (S + 500, "z"))
    assert_matches_reference(feed.book, feed.refs)


def test_a_trade_after_advance_into_a_quiet_second_opens_it() -> None:
    feed = Feed()
    feed.trade("a", S, 10)
    feed.book.advance(S + 2_000)  # seconds S+1 and S+2 exist, empty
    feed.trade("b", S + 2_100, 12, now=S + 2_100)  # the open second, but no hot bar yet
    feed.trade("c", S + 2_200, 11, now=S + 2_200)
    candles = feed.book.candles(ONE_S, S, S + 2_000)
    assert candles[:2] == [feed.book.candles(ONE_S, S, S)[0], flat(S + 1_000, 10)]
    assert (candles[2].open, candles[2].close, candles[2].trades) == (12, 11, 2)
    assert_matches_reference(feed.book, feed.refs)


def test_a_late_trade_that_moves_the_close_republishes_the_following_empty_candles() -> None:
    feed = Feed()
    feed.trade("a", S + 100, 10)
    feed.trade("b", S + 3_100, 20)  # seconds S+1 and S+2 are empty, flat at 10
    feed.drain()
    feed.trade("c", S + 900, 15, now=S + 3_100)  # late, and now the close of second S
    updates = feed.drain()
    seconds = {t: u for (name, t), u in updates.items() if name == "1s"}
    assert sorted(seconds) == [S, S + 1_000, S + 2_000]  # not S+3, which has its own trade
    assert seconds[S] == (
        Candle(S, 10, 15, 10, 15, 2, 25, 2, (S + 100, "a"), (S + 900, "c"), 2, 25),
        True,
    )
    assert seconds[S + 1_000] == (flat(S + 1_000, 15), True)
    assert seconds[S + 2_000] == (flat(S + 2_000, 15), True)
    # The minute that holds all of it is still open; it is republished too.
    minute = S - S % 60_000
    assert updates[("1m", minute)][0].trades == 3
    assert not updates[("1m", minute)][1]
    assert_matches_reference(feed.book, feed.refs)


def test_a_late_trade_that_does_not_move_the_close_republishes_only_its_candle() -> None:
    feed = Feed()
    feed.trade("b", S + 900, 10)
    feed.trade("c", S + 3_100, 20)
    feed.drain()
    feed.trade("a", S + 100, 15, now=S + 3_100)  # late, becomes the open of second S
    seconds = {t: u for (name, t), u in feed.drain().items() if name == "1s"}
    assert list(seconds) == [S]
    assert (seconds[S][0].open, seconds[S][0].close) == (15, 10)


def test_a_late_trade_before_the_first_one_publishes_the_gap_up_to_it() -> None:
    feed = Feed()
    feed.trade("b", S + 3_000, 10)
    feed.drain()
    feed.trade("a", S, 7, now=S + 3_000)
    seconds = {t: u for (name, t), u in feed.drain().items() if name == "1s"}
    assert sorted(seconds) == [S, S + 1_000, S + 2_000]
    assert seconds[S + 2_000] == (flat(S + 2_000, 7), True)
    assert_matches_reference(feed.book, feed.refs)


def test_advance_gives_the_open_candle_a_final_closed_update() -> None:
    feed = Feed()
    feed.trade("a", S + 10, 10)
    before = feed.drain()
    feed.book.advance(S + 1_000)
    updates = feed.drain()
    assert updates == {
        ("1s", S): (before[("1s", S)][0], True),
        ("1s", S + 1_000): (flat(S + 1_000, 10), False),
    }
    # 90 seconds later every interval has rolled over (an hour boundary was crossed).
    feed.book.advance(S + 91_000)
    updates = feed.drain()
    hour = S - S % ONE_H.ms
    assert updates[("1h", hour)] == (before[("1h", hour)][0], True)
    assert updates[("1h", hour + ONE_H.ms)] == (flat(hour + ONE_H.ms, 10), False)
    assert len([k for k in updates if k[0] == "1s"]) == 91


@pytest.mark.parametrize(
    ("offset", "error", "message"),
    [
        (5_001, TradeTooNew, "trade x is 5001 ms in the future (at most 5000 ms allowed)"),
        (-300_001, TradeTooOld, "trade x is 300001 ms old (at most 300000 ms allowed)"),
    ],
)
def test_trades_outside_the_window_are_refused_with_a_clear_message(
    offset: int, error: type[Exception], message: str
) -> None:
    feed = Feed(CandleRules())
    feed.trade("a", S, 10)
    feed.drain()
    trade, _ = trade_pair("x", S + offset, 3)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        feed.book.apply(trade, S)
    assert feed.drain() == {}
    for ok, ts in (("edge-new", S + 5_000), ("edge-old", S - 300_000)):
        trade, _ = trade_pair(ok, ts, 3)
        assert feed.book.apply(trade, S) is True


def test_a_trade_older_than_the_candles_in_memory_is_refused_even_if_the_clock_allows_it() -> None:
    # The caller's clock went backwards: the trade is young for that clock, but its second has
    # left memory, so the book cannot tell whether it is a replay.
    rules = CandleRules(max_trade_age_ms=3_000, max_trade_ahead_ms=1_000, history_limit=2)
    feed = Feed(rules)
    feed.trade("a", S, 10)
    feed.trade("b", S + 60_000, 11)
    trade, _ = trade_pair("c", S + 1_000, 12)
    with pytest.raises(TradeTooOld, match="older than the candles kept in memory"):
        feed.book.apply(trade, S + 1_000)


def test_a_late_trade_in_an_empty_second_does_not_leave_a_stale_close_behind() -> None:
    # Regression: the late bar for S+9 was inserted after S+12's and so outlived S+10's when
    # old bars were pruned; the empty S+11 then came out flat at S+9's close (7), not S+10's.
    rules = CandleRules(max_trade_age_ms=3_000, max_trade_ahead_ms=1_000, history_limit=2)
    feed = Feed(rules)
    feed.trade("b", S + 10_000, 5)
    feed.trade("d", S + 12_000, 6)
    feed.trade("a", S + 9_000, 7, now=S + 12_000)
    feed.book.advance(S + 16_000)
    assert feed.book.memory_start(ONE_S) == S + 11_000
    served = feed.book.candles(ONE_S, S + 11_000, S + 16_000)
    assert all(candle.close != 7 for candle in served)
    assert served[0].open_time == S + 12_000  # S+11's previous close is no longer known
    assert feed.book.candles(ONE_S, S + 11_000, S + 11_000, prev_close=5) == [flat(S + 11_000, 5)]


def test_candles_take_prev_close_clip_to_the_open_candle_and_skip_before_the_first_trade() -> None:
    feed = Feed()
    feed.trade("a", S + 5_000, 10)
    book = feed.book
    assert book.candles(ONE_S, S, S + 4_000) == []
    assert book.candles(ONE_S, S, S + 5_000, prev_close=3)[:2] == [flat(S, 3), flat(S + 1_000, 3)]
    assert [c.open_time for c in book.candles(ONE_S, S + 5_000, S + 60_000)] == [S + 5_000]
    assert book.candles(ONE_S, S + 6_000, S + 9_000) == []
    assert book.close_before(ONE_S, S + 5_000) is None
    assert book.close_before(ONE_S, S + 6_000) == 10


def test_replays_are_duplicates_in_the_open_second_and_after_it_ended() -> None:
    feed = Feed()
    a = feed.trade("a", S + 1, 10)
    assert feed.book.apply(a, S + 1) is False
    feed.book.advance(S + 2_000)
    feed.drain()
    assert feed.book.apply(a, S + 2_000) is False
    assert feed.drain() == {}
    assert feed.book.candles(ONE_M, S - S % 60_000, S)[0].trades == 1


def test_a_reused_id_is_a_duplicate_whatever_second_its_timestamp_names() -> None:
    feed = Feed()
    feed.trade("a", S + 1_500, 10)
    for ts in (S + 500, S + 1_700, S + 3_000):  # late, same second, and a later second
        other, _ = trade_pair("a", ts, 99)
        assert feed.book.apply(other, S + 1_500) is False
    assert feed.drain()[("1s", S + 1_000)][0].trades == 1
    assert feed.book.candles(ONE_S, S, S + 3_000)[0].trades == 1  # S + 500: no new candle
    assert feed.book.open_time(ONE_S) == S + 1_000


def test_ids_are_forgotten_once_their_candles_leave_the_late_window() -> None:
    rules = CandleRules(max_trade_age_ms=2_000, max_trade_ahead_ms=0, history_limit=1)
    book = CandleBook(SPEC.name, rules)
    first, _ = trade_pair("a", S, 10)
    assert book.apply(first, S)
    later, _ = trade_pair("b", S + 30_000, 10)
    assert book.apply(later, S + 30_000)
    book.advance(S + 60_000)
    again, _ = trade_pair("a", S + 60_000, 11)
    assert book.apply(again, S + 60_000) is True


def test_a_restored_book_takes_late_trades_into_its_last_second_once() -> None:
    feed = Feed()
    feed.trade("a", S + 100, 10)
    feed.trade("b", S + 1_100, 12)
    feed.trade("c", S + 1_500, 11)
    feed.drain()
    restored = CandleBook(SPEC.name, WIDE_RULES)
    for interval in INTERVALS:
        restored.restore(interval, [c for c in feed.consumer.view(interval) if c.trades])
    restored.restore_ids([(S + 100, "a"), (S + 1_100, "b"), (S + 1_500, "c")])
    replay, _ = trade_pair("b", S + 1_100, 12)
    assert restored.apply(replay, S + 1_500) is False
    late, late_ref = trade_pair("d", S + 1_900, 9)
    assert restored.apply(late, S + 1_900) is True
    assert restored.apply(late, S + 1_900) is False
    nxt, next_ref = trade_pair("e", S + 2_000, 8)
    assert restored.apply(nxt, S + 2_000) is True
    assert_matches_reference(restored, [*feed.refs, late_ref, next_ref])


@pytest.mark.parametrize(
    "kwargs",
    [{"max_trade_age_ms": -1}, {"max_trade_ahead_ms": -1}, {"history_limit": 0}],
)
def test_candle_rules_refuse_impossible_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must"):
        CandleRules(**kwargs)


def test_the_book_keeps_enough_candles_for_the_late_window() -> None:
    book = CandleBook("MEME", CandleRules(history_limit=1))
    # 305 s of late window, plus the open candle and one to carry the previous close.
    assert book.retention(ONE_S) == 307
    assert book.retention(ONE_M) == 8
    assert book.retention(ONE_H) == 3
    assert CandleBook("MEME").retention(ONE_S) == 1000


def test_close_time_is_the_last_millisecond_of_the_candle() -> None:
    assert flat(S, 1).close_time(ONE_M) == S + 59_999

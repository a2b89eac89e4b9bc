// The page's copy of one (symbol, interval) candle series. Pure state, no DOM, no I/O.
//
// Invariant: `rows` is sorted by open time `t` (epoch ms), one row per candle. Every change
// goes through `upsert`/`merge`, which replace by timestamp, so neither REST pages that
// overlap the stream nor a stream update REST already reflected can duplicate a candle.
// Candles are contiguous (docs/api.md: an interval without trades is a flat candle), so
// two neighbours more than one interval apart are a hole: `gapBefore` reports it and the
// caller fills it from REST.

/** A row: a candle from REST or the stream, and the indicator values of that candle. */
export function makeRow(candle, indicators = {}) {
  return { t: candle.timestamp, candle, ind: indicators };
}

export class CandleStore {
  constructor(intervalMs) {
    this.intervalMs = intervalMs;
    this.rows = [];
  }

  get first() {
    return this.rows[0] ?? null;
  }

  get last() {
    return this.rows[this.rows.length - 1] ?? null;
  }

  /** Index of the row opening at `t`, or -(insertion point) - 1. */
  indexOf(t) {
    let lo = 0;
    let hi = this.rows.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const at = this.rows[mid].t;
      if (at === t) return mid;
      if (at < t) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1;
  }

  /**
   * Put `row` in place of the candle with its timestamp, or add it. Answers what changed, for
   * the chart: 'last' (the newest candle changed or a newer one was appended: a cheap
   * update), 'history' (an older candle was revised, or one was inserted), or 'none'.
   * An update keeps indicator values the new row does not carry.
   */
  upsert(row) {
    const i = this.indexOf(row.t);
    if (i >= 0) {
      const old = this.rows[i];
      this.rows[i] = { ...row, ind: { ...old.ind, ...row.ind } };
      return i === this.rows.length - 1 ? 'last' : 'history';
    }
    const at = -i - 1;
    this.rows.splice(at, 0, row);
    return at === this.rows.length - 1 ? 'last' : 'history';
  }

  /** Upsert many rows (a REST page); the number that were new. */
  merge(rows) {
    const before = this.rows.length;
    for (const row of rows) this.upsert(row);
    return this.rows.length - before;
  }

  /** Forget all but the newest `keep` candles (scrolling back loads them again). */
  trimTo(keep) {
    if (this.rows.length > keep) this.rows.splice(0, this.rows.length - keep);
  }

  /** The open time of the first missing candle between the last one and `t`, or null. */
  gapBefore(t) {
    const last = this.last;
    return last && t > last.t + this.intervalMs ? last.t + this.intervalMs : null;
  }

  /** Holes and out-of-step neighbours: [] when the series is contiguous. For tests. */
  problems() {
    const found = [];
    for (let i = 1; i < this.rows.length; i += 1) {
      const step = this.rows[i].t - this.rows[i - 1].t;
      if (step !== this.intervalMs) found.push({ at: this.rows[i - 1].t, step });
    }
    return found;
  }
}

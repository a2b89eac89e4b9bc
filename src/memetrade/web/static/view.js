// One chart view: a symbol, an interval and a set of indicators, kept live.
//
// Synchronisation (docs/api.md, "/ws/klines"): open the candle stream, read REST klines
// (which answer the stream's `seq` they are current at), then apply stream updates with a
// higher `seq`, replacing candles by timestamp. The same procedure runs on every
// (re)connection, starting from the newest candle already held: the gap while
// disconnected is filled from REST, and since REST and stream both replace by timestamp,
// the chart shows neither a hole nor a duplicate.
//
// `seq` orders what arrives: an update at or below the seq already applied is stale (REST
// had it), and is dropped. A `seq` that skips is the server conflating a slow reader's
// updates, not a loss (every changed candle's latest state is delivered), so the timestamp
// is what detects a real hole: a candle more than one interval after the newest one held
// triggers the same REST fill.

import { LiveSocket, getJson, wsUrl } from './api.js';
import { CandleStore, makeRow } from './candles.js';
import { ChartView } from './chart.js';
import { attachIndicators } from './indicators.js';

export const INTERVAL_MS = { '1s': 1_000, '1m': 60_000, '5m': 300_000, '15m': 900_000, '1h': 3_600_000 };

const INITIAL_CANDLES = 300; // what the first screen needs, with room to scroll
const PAGE = 300; // older candles per scroll-back request
const MAX_GAP_PAGES = 5; // a longer outage reloads from scratch instead of paging forward
const REST_LIMIT = 1000; // the API's maximum `limit`
// A page left open on 1s candles gains 86,400 a day: past MAX_ROWS (+ slack, so the redraw
// is rare) the oldest are dropped; scrolling back reloads them from REST.
const MAX_ROWS = 20_000;
const TRIM_SLACK = 2_000;

export class CandleView {
  constructor({ container, symbol, decimals, interval, tokens, monitor }) {
    this.symbol = symbol;
    this.interval = interval;
    this.tokens = tokens;
    this.monitor = monitor;
    this.store = new CandleStore(INTERVAL_MS[interval]);
    this.seq = -1;
    this.syncing = false;
    this.buffer = [];
    this.loadingOlder = false;
    this.exhausted = false; // scrolled back to the symbol's first candle
    this.stopped = false;
    this.syncs = 0;
    this.chart = new ChartView(container, {
      decimals,
      intervalMs: INTERVAL_MS[interval],
      tokens,
      onNeedOlder: () => this.loadOlder(),
    });
    const url = wsUrl(`/ws/klines/${symbol}/${interval}`, { indicators: tokens.join(',') });
    this.socket = new LiveSocket(url, {
      onOpen: () => this.sync(),
      onMessage: (message) => this.onMessage(message),
      onState: monitor.track('candles', () => this.socket, 'syncing'),
    });
  }

  start() {
    this.socket.start();
    return this;
  }

  stop() {
    this.stopped = true;
    this.socket.stop();
    this.chart.remove();
  }

  /** Candles (and their indicators) from REST: `params` as GET /api/v1/klines takes them. */
  async fetchRows(params) {
    const answer = await getJson(`/api/v1/klines/${this.symbol}`, { interval: this.interval, ...params });
    const rows = answer.data.map((candle) => makeRow(candle));
    await attachIndicators(this.symbol, this.interval, this.tokens, rows);
    return { seq: answer.seq, rows };
  }

  /** Bring the store up to date from REST after a (re)connection; then go live. */
  async sync() {
    const attempt = ++this.syncs;
    this.syncing = true;
    this.monitor.set('candles', 'syncing');
    try {
      let seq;
      if (this.store.last === null) {
        ({ seq } = await this.reload());
      } else {
        ({ seq } = await this.fillForward());
      }
      if (this.stopped || attempt !== this.syncs) return;
      this.seq = seq;
      this.syncing = false;
      const buffered = this.buffer;
      this.buffer = [];
      for (const message of buffered) this.apply(message);
      if (this.socket.state === 'open') this.monitor.set('candles', 'live');
    } catch (error) {
      if (this.stopped || attempt !== this.syncs) return;
      // The REST read failed (server going away?): drop the connection, so the socket's
      // backoff paces the retry and the next open syncs again.
      console.warn(`candle sync failed: ${error.message}`);
      this.socket.ws?.close();
    }
  }

  async reload() {
    const { seq, rows } = await this.fetchRows({ limit: INITIAL_CANDLES });
    if (this.stopped) return { seq };
    this.store = new CandleStore(INTERVAL_MS[this.interval]);
    this.store.merge(rows);
    this.exhausted = rows.length < INITIAL_CANDLES;
    this.chart.setRows(this.store.rows);
    return { seq };
  }

  /** REST pages from the newest candle held (it may have changed since) up to the open one. */
  async fillForward() {
    let from = this.store.last.t;
    for (let page = 0; page < MAX_GAP_PAGES; page += 1) {
      const { seq, rows } = await this.fetchRows({ from, limit: REST_LIMIT });
      if (this.stopped) return { seq };
      this.store.merge(rows);
      const newest = rows[rows.length - 1];
      if (rows.length < REST_LIMIT || !newest || !newest.candle.closed) {
        this.chart.setRows(this.store.rows);
        return { seq };
      }
      from = newest.t;
    }
    return this.reload();
  }

  onMessage(message) {
    if (!message.candle) return;
    if (this.syncing) {
      this.buffer.push(message);
      return;
    }
    this.apply(message);
  }

  apply(message) {
    if (message.seq <= this.seq) return; // REST (or an earlier update) already had it
    const row = makeRow(message.candle, message.indicators ?? {});
    if (this.store.gapBefore(row.t) !== null) {
      // A hole between the newest candle held and this one: fill it from REST first.
      this.buffer.push(message);
      this.sync();
      return;
    }
    this.seq = message.seq;
    if (this.store.last !== null && row.t < this.store.first.t) return; // older than loaded
    const where = this.store.upsert(row);
    const stored = this.store.rows[this.store.indexOf(row.t)];
    this.chart.updateRow(stored, where === 'history');
    if (this.store.rows.length > MAX_ROWS + TRIM_SLACK) {
      this.store.trimTo(MAX_ROWS);
      this.exhausted = false;
      this.chart.setRows(this.store.rows);
    }
  }

  /** Scroll-back: the page of candles before the oldest one held. */
  async loadOlder() {
    if (this.loadingOlder || this.exhausted || this.syncing || this.store.first === null) return;
    this.loadingOlder = true;
    try {
      const { rows } = await this.fetchRows({ to: this.store.first.t - 1, limit: PAGE });
      if (this.stopped) return;
      if (rows.length < PAGE) this.exhausted = true;
      if (rows.length > 0) {
        this.store.merge(rows);
        this.chart.setRows(this.store.rows);
      }
    } catch (error) {
      console.warn(`loading older candles failed: ${error.message}`);
    } finally {
      this.loadingOlder = false;
    }
  }
}

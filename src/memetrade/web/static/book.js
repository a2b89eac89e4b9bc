// The order book of one symbol, kept locally from WS /ws/depth/{symbol} and drawn as the best
// levels a side around the spread.
//
// The stream opens with a snapshot (`lastUpdateId`, levels best first), then sends one
// `depthUpdate` per book change, numbered `U`..`u`: the first has `U == lastUpdateId + 1` and
// each next `U == previous u + 1` (docs/websocket.md, "The exchange's streams"). A diff sets
// each listed level to its new quantity, "0" removing it, so applying every diff in order
// keeps the local book equal to the exchange's at the same update id. Any other `U` means a
// diff was lost: the book stops taking diffs and the connection is reopened, which starts
// again from a fresh snapshot.
//
// Where the exchange does not run, the stream closes with 4404 (and GET /api/v1/depth answers
// 404): the panel hides, and the connection indicator leaves the book out rather than show
// the page as disconnected.

import { LiveSocket, wsUrl } from './api.js';
import { formatAmount, formatPrice } from './format.js';

// More levels than shown: when the inside is taken out, the levels it uncovers are already
// held (levels beyond the snapshot arrive only once they change).
const SNAPSHOT_LEVELS = 100;

export class OrderBook {
  constructor(panel, { symbol, decimals, monitor, levels = 10 }) {
    this.panel = panel;
    this.symbol = symbol;
    this.decimals = decimals;
    this.monitor = monitor;
    this.levels = levels;
    this.bids = new Map(); // price text -> quantity text, as the exchange wrote them
    this.asks = new Map();
    this.lastUpdateId = null; // null while no snapshot holds on the current connection
    this.resyncs = 0;
    this.frame = 0;
    const track = monitor.track('book', () => this.socket, 'syncing');
    this.socket = new LiveSocket(wsUrl(`/ws/depth/${symbol}`, { limit: SNAPSHOT_LEVELS }), {
      onMessage: (message) => this.onMessage(message),
      onState: (state, detail) => {
        if (state === 'failed') {
          this.unavailable();
          return;
        }
        if (state !== 'open') this.setState('syncing');
        track(state, detail);
      },
    });
  }

  start() {
    this.socket.start();
    return this;
  }

  stop() {
    this.socket.stop();
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.clear();
  }

  onMessage(message) {
    if (message.s !== this.symbol) return;
    if (message.e === 'depthSnapshot') this.load(message);
    else if (message.e === 'depthUpdate') this.apply(message);
  }

  load({ lastUpdateId, bids, asks }) {
    this.bids = new Map(bids);
    this.asks = new Map(asks);
    this.lastUpdateId = lastUpdateId;
    this.panel.hidden = false;
    this.setState('live');
    this.monitor.set('book', 'live');
    this.schedule();
  }

  apply(diff) {
    if (this.lastUpdateId === null) return; // waiting for the snapshot of a new connection
    if (diff.U !== this.lastUpdateId + 1) {
      this.resync();
      return;
    }
    for (const [side, levels] of [[this.bids, diff.b], [this.asks, diff.a]]) {
      for (const [price, quantity] of levels) {
        if (Number(quantity) === 0) side.delete(price);
        else side.set(price, quantity);
      }
    }
    this.lastUpdateId = diff.u;
    this.schedule();
  }

  resync() {
    this.lastUpdateId = null;
    this.resyncs += 1;
    this.setState('syncing');
    this.monitor.set('book', 'syncing');
    // Closing makes the socket reconnect (after its backoff), and a new connection begins
    // with a snapshot.
    this.socket.ws?.close();
  }

  unavailable() {
    this.panel.hidden = true;
    this.setState('unavailable');
    this.monitor.remove('book');
    this.clear();
  }

  setState(state) {
    this.panel.dataset.state = state;
  }

  schedule() {
    // A busy book changes hundreds of times a second: draw at most once a frame.
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  /** The best `levels` of a side, best first, each with the running total from the best. */
  best(side, descending) {
    const sorted = [...side].map(([price, quantity]) => ({ price, quantity, p: Number(price), q: Number(quantity) }));
    sorted.sort((x, y) => (descending ? y.p - x.p : x.p - y.p));
    let total = 0;
    return sorted.slice(0, this.levels).map((level) => ({ ...level, total: (total += level.q) }));
  }

  render() {
    const bids = this.best(this.bids, true);
    const asks = this.best(this.asks, false);
    const deepest = Math.max(bids.at(-1)?.total ?? 0, asks.at(-1)?.total ?? 0);
    const row = (level) => {
      const div = document.createElement('div');
      div.className = 'level';
      div.dataset.price = level.price;
      div.dataset.qty = level.quantity;
      div.style.setProperty('--depth', `${((100 * level.total) / deepest).toFixed(1)}%`);
      for (const [name, text] of [
        ['price', formatPrice(level.p, this.decimals)],
        ['qty', formatAmount(level.q)],
        ['total', formatAmount(level.total)],
      ]) {
        const span = document.createElement('span');
        span.className = name;
        span.textContent = text;
        div.append(span);
      }
      return div;
    };
    // Asks read downwards towards the spread: the lowest sits at the bottom.
    this.panel.querySelector('.book-asks').replaceChildren(...asks.map(row).reverse());
    this.panel.querySelector('.book-bids').replaceChildren(...bids.map(row));
    this.renderSpread(bids[0], asks[0]);
    this.panel.dataset.updateId = String(this.lastUpdateId ?? '');
    this.panel.dataset.symbol = this.symbol;
  }

  renderSpread(bid, ask) {
    const spread = this.panel.querySelector('.book-spread');
    if (!bid || !ask) {
      spread.querySelector('.value').textContent = '—';
      spread.querySelector('.pct').textContent = '';
      return;
    }
    const width = ask.p - bid.p;
    spread.querySelector('.value').textContent = formatPrice(width, this.decimals);
    spread.querySelector('.pct').textContent = `${((200 * width) / (ask.p + bid.p)).toFixed(2)}%`;
  }

  clear() {
    for (const part of ['.book-asks', '.book-bids']) this.panel.querySelector(part).replaceChildren();
    this.renderSpread(null, null);
    delete this.panel.dataset.updateId;
    delete this.panel.dataset.symbol;
  }
}

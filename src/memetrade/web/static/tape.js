// The live trade tape of one symbol: newest first, at most `limit` rows.
//
// History comes from GET /api/v1/history, live trades from WS /ws/{symbol}. On every
// (re)connection the tape reloads history (the gap while disconnected) and applies the
// trades that arrived meanwhile; a trade is identified by its id, so one seen in both
// appears once.

import { getJson } from './api.js';
import { formatAmount, formatClock, formatPrice } from './format.js';

export class TradeTape {
  constructor(tbody, { symbol, decimals, limit = 50 }) {
    this.tbody = tbody;
    this.symbol = symbol;
    this.decimals = decimals;
    this.limit = limit;
    this.trades = []; // newest first
    this.pending = [];
    this.syncing = true;
    this.received = 0;
    this.frame = 0;
    this.generation = 0;
  }

  /** Reload history, then apply what the stream delivered meanwhile. */
  async sync() {
    const generation = ++this.generation;
    this.syncing = true;
    const answer = await getJson(`/api/v1/history/${this.symbol}`, { limit: this.limit });
    if (generation !== this.generation) return;
    this.trades = answer.data;
    this.syncing = false;
    const pending = this.pending;
    this.pending = [];
    this.add(pending);
  }

  /** Trades from the stream, oldest first (the order they were sent in). */
  add(trades) {
    if (this.syncing) {
      this.pending.push(...trades);
      return;
    }
    const seen = new Set(this.trades.map((trade) => trade.id));
    const fresh = trades.filter((trade) => !seen.has(trade.id)).reverse();
    this.received += fresh.length;
    this.trades = fresh.concat(this.trades).slice(0, this.limit);
    this.schedule();
  }

  schedule() {
    // Trades can arrive hundreds a second: draw at most once a frame.
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const rows = this.trades.map((trade) => {
      const tr = document.createElement('tr');
      const side = trade.side.toLowerCase() === 'buy' ? 'buy' : 'sell';
      tr.className = side;
      tr.dataset.id = trade.id;
      const cells = [
        formatClock(Date.parse(trade.timestamp), true),
        side === 'buy' ? 'BUY' : 'SELL',
        formatPrice(trade.price, this.decimals),
        formatAmount(trade.amount),
      ];
      for (const text of cells) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    });
    this.tbody.replaceChildren(...rows);
  }

  clear() {
    this.generation += 1;
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.tbody.replaceChildren();
  }
}

// The symbol headers: one card per symbol (last price, 24h change, high/low/volume, BUY /
// SELL / NEUTRAL), and the selected symbol's full header above the chart.
//
// The 24h statistics come from GET /api/v1/ticker (all symbols in one answer), refreshed
// every `refreshMs`; the price and the recommendation move live with WS /ws snapshots and
// signal events, which carry price, SMA-20 and signal but not the 24h sums. Between two
// refreshes a live price also moves the change and stretches high/low, which is exact:
// the window's open only changes at a minute boundary, which the next refresh picks up.

import { getJson } from './api.js';
import { formatAmount, formatPercent, formatPrice } from './format.js';

export class Tickers {
  constructor({ cards, header, symbols, onSelect, refreshMs = 10_000 }) {
    this.cards = cards;
    this.header = header;
    this.symbols = symbols; // [{symbol, decimals}]
    this.onSelect = onSelect;
    this.refreshMs = refreshMs;
    this.state = new Map();
    this.selected = null;
    this.timer = null;
    this.build();
  }

  build() {
    const cards = this.symbols.map(({ symbol }) => {
      const card = document.createElement('button');
      card.type = 'button';
      card.className = 'card';
      card.dataset.symbol = symbol;
      for (const [cls, text] of [['sym', symbol], ['signal', ''], ['price', '—'], ['change', '—']]) {
        const span = document.createElement('span');
        span.className = cls;
        span.textContent = text;
        card.append(span);
      }
      card.addEventListener('click', () => this.onSelect(symbol));
      return card;
    });
    this.cards.replaceChildren(...cards);
  }

  select(symbol) {
    this.selected = symbol;
    for (const card of this.cards.children) card.classList.toggle('active', card.dataset.symbol === symbol);
    this.render(symbol);
  }

  /** Load every symbol's ticker now and every `refreshMs` from then on. */
  async refresh() {
    clearTimeout(this.timer);
    try {
      const answer = await getJson('/api/v1/ticker');
      for (const ticker of answer.data) {
        this.state.set(ticker.symbol, { ...this.state.get(ticker.symbol), ...ticker });
        this.render(ticker.symbol);
      }
    } catch (error) {
      // The connection indicator tells about outages; the next refresh tries again.
      console.warn('ticker refresh failed:', error.message);
    } finally {
      this.timer = setTimeout(() => this.refresh(), this.refreshMs);
    }
  }

  /** A message of WS /ws: a snapshot or a signal event. */
  onMarket(message) {
    const current = this.state.get(message.symbol);
    if (!current || message.timestamp < (current.timestamp ?? 0)) return;
    const next = { ...current, price: message.price, sma20: message.sma20, signal: message.signal, timestamp: message.timestamp };
    if (current.open && message.price !== null) {
      next.change = message.price - current.open;
      next.change_percent = (next.change / current.open) * 100;
      next.high = Math.max(current.high ?? message.price, message.price);
      next.low = Math.min(current.low ?? message.price, message.price);
    }
    this.state.set(message.symbol, next);
    this.render(message.symbol);
  }

  decimals(symbol) {
    return this.symbols.find((s) => s.symbol === symbol)?.decimals ?? 8;
  }

  render(symbol) {
    const t = this.state.get(symbol);
    if (!t) return;
    const d = this.decimals(symbol);
    const dir = t.change > 0 ? 'up' : t.change < 0 ? 'down' : 'flat';
    const signal = t.signal ?? 'NEUTRAL';
    const card = this.cards.querySelector(`[data-symbol="${symbol}"]`);
    if (card) {
      card.querySelector('.price').textContent = formatPrice(t.price, d);
      const change = card.querySelector('.change');
      change.textContent = formatPercent(t.change_percent);
      change.className = `change ${dir}`;
      const badge = card.querySelector('.signal');
      badge.textContent = signal;
      badge.className = `signal ${signal.toLowerCase()}`;
    }
    if (symbol !== this.selected) return;
    const h = this.header;
    h.querySelector('.sym').textContent = symbol;
    h.querySelector('.price').textContent = formatPrice(t.price, d);
    h.querySelector('.price').className = `price ${dir}`;
    const change = h.querySelector('.change');
    change.textContent = `${t.change > 0 ? '+' : ''}${formatPrice(t.change, d)} (${formatPercent(t.change_percent)})`;
    change.className = `change ${dir}`;
    h.querySelector('.high').textContent = formatPrice(t.high, d);
    h.querySelector('.low').textContent = formatPrice(t.low, d);
    h.querySelector('.volume').textContent = formatAmount(t.volume);
    h.querySelector('.quote-volume').textContent = formatAmount(t.quote_volume);
    h.querySelector('.sma').textContent = formatPrice(t.sma20, d + 2);
    const badge = h.querySelector('.signal');
    badge.textContent = signal;
    badge.className = `signal ${signal.toLowerCase()}`;
  }

  stop() {
    clearTimeout(this.timer);
  }
}

// The dashboard's composition root: reads the symbols, builds the page, and swaps the live
// view when the user picks a symbol, an interval or indicators. The choice lives in the
// URL fragment (#PEPE/1m/sma20,rsi14), so a view can be bookmarked and shared.

import { ConnectionMonitor, LiveSocket, getJson, wsUrl } from './api.js';
import { OrderBook } from './book.js';
import { decimalsOf } from './format.js';
import { INDICATORS } from './indicators.js';
import { TradeTape } from './tape.js';
import { Tickers } from './tickers.js';
import { CandleView, INTERVAL_MS } from './view.js';

const DEFAULT_INTERVAL = '1m';
const DEFAULT_INDICATORS = ['sma20'];

const $ = (selector) => document.querySelector(selector);

class Dashboard {
  constructor(symbols) {
    this.symbols = symbols.map((s) => ({ symbol: s.symbol, decimals: decimalsOf(s.tick_size), intervals: s.intervals }));
    this.monitor = new ConnectionMonitor($('#connection'));
    this.view = null;
    this.tape = null;
    this.book = null;
    this.tradeSocket = null;
    this.current = null;
    this.tickers = new Tickers({
      cards: $('#symbols'),
      header: $('#header'),
      symbols: this.symbols,
      onSelect: (symbol) => this.navigate({ symbol }),
    });
    this.buildControls();
    this.marketSocket = new LiveSocket(wsUrl('/ws'), {
      onOpen: () => this.tickers.refresh(),
      onMessage: (message) => this.tickers.onMarket(message),
      onState: this.monitor.track('market', () => this.marketSocket),
    });
  }

  buildControls() {
    const intervals = Object.keys(INTERVAL_MS).map((interval) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = interval;
      button.dataset.interval = interval;
      button.addEventListener('click', () => this.navigate({ interval }));
      return button;
    });
    $('#intervals').replaceChildren(...intervals);
    const toggles = INDICATORS.map((def) => {
      const label = document.createElement('label');
      label.className = 'toggle';
      label.dataset.indicator = def.token;
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.value = def.token;
      box.addEventListener('change', () => {
        const tokens = [...$('#indicators').querySelectorAll('input:checked')].map((input) => input.value);
        this.navigate({ tokens });
      });
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = def.lines.find((line) => line.color)?.color ?? '#aab2c0';
      label.append(box, swatch, document.createTextNode(def.label));
      return label;
    });
    $('#indicators').replaceChildren(...toggles);
  }

  /** The view in the URL fragment, with defaults for what is missing or unknown. */
  fromHash() {
    const [symbol, interval, tokens] = decodeURIComponent(window.location.hash.slice(1)).split('/');
    const known = this.symbols.find((s) => s.symbol === symbol?.toUpperCase());
    return {
      symbol: known ? known.symbol : this.symbols[0].symbol,
      interval: interval in INTERVAL_MS ? interval : DEFAULT_INTERVAL,
      tokens: tokens === undefined
        ? DEFAULT_INDICATORS
        : tokens.split(',').filter((token) => INDICATORS.some((def) => def.token === token)),
    };
  }

  navigate(change) {
    const next = { ...this.current, ...change };
    const hash = `#${next.symbol}/${next.interval}/${next.tokens.join(',')}`;
    if (window.location.hash !== hash) window.location.hash = hash; // -> hashchange -> show
  }

  start() {
    window.addEventListener('hashchange', () => this.show(this.fromHash()));
    this.marketSocket.start();
    this.show(this.fromHash());
  }

  show(next) {
    const cur = this.current;
    const symbolChanged = !cur || cur.symbol !== next.symbol;
    const viewChanged = symbolChanged || cur.interval !== next.interval || cur.tokens.join() !== next.tokens.join();
    if (!viewChanged) return;
    this.current = next;
    const { decimals } = this.symbols.find((s) => s.symbol === next.symbol);
    document.title = `${next.symbol} · ${next.interval} · memetrade`;
    this.tickers.select(next.symbol);
    for (const button of $('#intervals').children) button.classList.toggle('active', button.dataset.interval === next.interval);
    for (const input of $('#indicators').querySelectorAll('input')) input.checked = next.tokens.includes(input.value);

    this.view?.stop();
    this.view = new CandleView({
      container: $('#chart'),
      symbol: next.symbol,
      decimals,
      interval: next.interval,
      tokens: next.tokens,
      monitor: this.monitor,
    }).start();

    if (symbolChanged) {
      this.tradeSocket?.stop();
      this.tape?.clear();
      $('#tape-symbol').textContent = next.symbol;
      const tape = new TradeTape($('#tape tbody'), { symbol: next.symbol, decimals });
      this.tape = tape;
      this.tradeSocket = new LiveSocket(wsUrl(`/ws/${next.symbol}`), {
        onOpen: () => tape.sync().catch((error) => console.warn(`trade history failed: ${error.message}`)),
        onMessage: (trade) => tape.add([trade]),
        onState: this.monitor.track('trades', () => this.tradeSocket),
      });
      this.tradeSocket.start();

      this.book?.stop();
      $('#book-symbol').textContent = next.symbol;
      this.book = new OrderBook($('#book'), { symbol: next.symbol, decimals, monitor: this.monitor }).start();
    }
  }

  /** What the page shows, for tests and for curious users in the console. Read-only. */
  snapshot() {
    const view = this.view;
    const sockets = [this.marketSocket, this.tradeSocket, view?.socket, this.book?.socket].filter(Boolean);
    return {
      symbol: this.current?.symbol,
      interval: this.current?.interval,
      indicators: this.current?.tokens,
      connection: this.monitor.overall,
      reconnects: sockets.reduce((sum, socket) => sum + socket.reconnects, 0),
      seq: view?.seq,
      syncing: view?.syncing,
      candles: view ? view.store.rows.map((row) => row.t) : [],
      drawn: view ? view.chart.drawnTimes() : [],
      problems: view ? view.store.problems() : [],
      last: view?.store.last ? structuredClone(view.store.last) : null,
      exhausted: view?.exhausted,
      trades: this.tape ? this.tape.trades.map((trade) => trade.id) : [],
      tradesReceived: this.tape?.received ?? 0,
      bookResyncs: this.book?.resyncs ?? 0,
    };
  }
}

async function main() {
  let answer;
  try {
    answer = await getJson('/api/v1/symbols');
  } catch (error) {
    $('#connection').dataset.state = 'failed';
    $('#connection .label').textContent = `server unreachable: ${error.message}`;
    setTimeout(main, 3000);
    return;
  }
  const dashboard = new Dashboard(answer.symbols);
  Object.defineProperty(window, 'memetrade', {
    value: Object.freeze({ get state() { return dashboard.snapshot(); } }),
  });
  dashboard.start();
}

main();

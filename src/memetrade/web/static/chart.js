// The chart of one view: candles, volume, indicator overlays and panes, a crosshair legend.
// A thin layer over lightweight-charts v5 (vendor/README.md); it draws what CandleStore holds.

import {
  CandlestickSeries,
  CrosshairMode,
  HistogramSeries,
  LineSeries,
  LineStyle,
  createChart,
} from './vendor/lightweight-charts.standalone.production.mjs';
import { decimalsOf, formatAmount, formatDateTime, formatPercent, formatPrice } from './format.js';
import { BY_TOKEN, lineValue } from './indicators.js';

const UP = '#26a69a';
const DOWN = '#ef5350';
const UP_VOLUME = 'rgba(38, 166, 154, 0.45)';
const DOWN_VOLUME = 'rgba(239, 83, 80, 0.45)';

// Lightweight-charts takes UTC seconds; labels are drawn in the viewer's local time.
const toTime = (ms) => ms / 1000;
const pad = (n) => String(n).padStart(2, '0');

function tickMark(time, type) {
  const d = new Date(time * 1000);
  switch (type) {
    case 0: return String(d.getFullYear());
    case 1: return d.toLocaleString('en-US', { month: 'short' });
    case 2: return `${d.getDate()} ${d.toLocaleString('en-US', { month: 'short' })}`;
    case 4: return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    default: return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
}

/**
 * The price format of a symbol whose tick has `decimals` decimals: our own plain-notation
 * formatter (format.js), not the library's, whose arithmetic (minMove * 10 ** precision)
 * is not exactly 1 for some precisions (10 ** -11 * 10 ** 11 = 0.9999999999999999, and the
 * SHIB axis read "0..9999999998"). `base` = 1/minMove is given as the exact integer.
 * Axis tick marks drop the trailing zeros they all share: 0.00000125, not 0.000001250000.
 */
function tickFormat(decimals) {
  return {
    type: 'custom',
    minMove: 10 ** -decimals,
    base: 10 ** decimals,
    formatter: (price) => formatPrice(price, decimals),
    tickmarksFormatter: (prices) => {
      const needed = Math.max(0, ...prices.map((p) => decimalsOf(formatPrice(p, decimals))));
      // Figure spaces (digit-wide, invisible) keep the full width, which the library sizes
      // the axis by: the last-price label, at full precision, must fit in it too.
      const pad = '\u2007'.repeat(decimals - needed);
      return prices.map((p) => formatPrice(p, needed) + pad);
    },
  };
}

export class ChartView {
  /**
   * `decimals`: the symbol's tick decimals (price precision and the axis' minimum move);
   * `tokens`: the indicators to draw; `onNeedOlder`: called when the user scrolls near the
   * oldest loaded candle.
   */
  constructor(container, { decimals, intervalMs, tokens, onNeedOlder }) {
    this.container = container;
    this.decimals = decimals;
    this.tokens = tokens;
    this.legend = container.querySelector('.legend');
    this.chart = createChart(container.querySelector('.chart-canvas'), {
      autoSize: true,
      layout: {
        background: { color: '#10131a' },
        textColor: '#aab2c0',
        fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        panes: { separatorColor: '#272c38', separatorHoverColor: '#3a4150' },
        attributionLogo: true,
      },
      grid: { vertLines: { color: '#1a1e27' }, horzLines: { color: '#1a1e27' } },
      crosshair: { mode: CrosshairMode.Normal },
      rightPriceScale: { borderColor: '#272c38' },
      timeScale: {
        borderColor: '#272c38',
        timeVisible: true,
        secondsVisible: intervalMs < 60_000,
        rightOffset: 4,
        tickMarkFormatter: tickMark,
      },
      localization: { timeFormatter: (time) => formatDateTime(time * 1000) },
    });
    const priceFormat = tickFormat(decimals);
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN, priceFormat,
    });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.24 } });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceFormat: { type: 'volume' }, priceScaleId: 'volume', lastValueVisible: false, priceLineVisible: false,
    });
    this.chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.lines = []; // {def, line, series}
    this.addIndicatorSeries(tokens);

    this.last = null;
    this.chart.subscribeCrosshairMove((param) => this.showLegend(param));
    this.chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      // Within a screenful of the oldest candle: load older ones before the user gets there.
      if (range && range.from < 30) onNeedOlder();
    });
  }

  addIndicatorSeries(tokens) {
    const panes = {};
    let nextPane = 1;
    for (const token of tokens) {
      const def = BY_TOKEN.get(token);
      if (!def) continue;
      let pane = 0;
      if (def.pane !== 'price') {
        panes[def.pane] ??= nextPane++;
        pane = panes[def.pane];
      }
      const format = tickFormat(def.decimals ?? this.decimals + (def.extraDecimals ?? 0));
      for (const line of def.lines) {
        const common = { priceFormat: format, lastValueVisible: false, priceLineVisible: false, title: '' };
        const series = line.kind === 'histogram'
          ? this.chart.addSeries(HistogramSeries, common, pane)
          : this.chart.addSeries(LineSeries, {
            ...common,
            color: line.color,
            lineWidth: line.width,
            lineStyle: line.dashed ? LineStyle.Dashed : LineStyle.Solid,
            crosshairMarkerVisible: false,
          }, pane);
        this.lines.push({ def, line, series });
      }
    }
    // Indicator panes get a third of the height between them, the candles the rest.
    const paneCount = this.chart.panes().length;
    if (paneCount > 1) {
      this.chart.panes()[0].setStretchFactor(paneCount === 2 ? 2.5 : 2);
      for (const pane of this.chart.panes().slice(1)) pane.setStretchFactor(0.5);
    }
  }

  bar(row) {
    const { open, high, low, close } = row.candle;
    return { time: toTime(row.t), open, high, low, close };
  }

  volumeBar(row) {
    const { open, close, volume } = row.candle;
    return { time: toTime(row.t), value: volume, color: close >= open ? UP_VOLUME : DOWN_VOLUME };
  }

  linePoint(entry, row) {
    const value = lineValue(entry.def, entry.line, row.ind[entry.def.token]);
    if (value === null) return { time: toTime(row.t) }; // whitespace while warming up
    if (entry.line.kind === 'histogram') return { time: toTime(row.t), value, color: value >= 0 ? UP_VOLUME : DOWN_VOLUME };
    return { time: toTime(row.t), value };
  }

  /** Draw `rows` (ascending, contiguous), replacing everything drawn before. */
  setRows(rows) {
    this.candles.setData(rows.map((row) => this.bar(row)));
    this.volume.setData(rows.map((row) => this.volumeBar(row)));
    for (const entry of this.lines) entry.series.setData(rows.map((row) => this.linePoint(entry, row)));
    this.last = rows[rows.length - 1] ?? null;
    if (!this.hovering) this.renderLegend(this.last);
  }

  /** Redraw one row: the newest candle (`historical` false), or a revised older one. */
  updateRow(row, historical) {
    this.candles.update(this.bar(row), historical);
    this.volume.update(this.volumeBar(row), historical);
    for (const entry of this.lines) entry.series.update(this.linePoint(entry, row), historical);
    if (!historical) {
      this.last = row;
      if (!this.hovering) this.renderLegend(row);
    }
  }

  /** The candle times drawn, in order (epoch ms): what the tests compare with the store. */
  drawnTimes() {
    return this.candles.data().map((bar) => bar.time * 1000);
  }

  showLegend(param) {
    const bar = param.time !== undefined ? param.seriesData.get(this.candles) : undefined;
    this.hovering = bar !== undefined;
    if (!bar) {
      this.renderLegend(this.last);
      return;
    }
    const volume = param.seriesData.get(this.volume);
    const ind = {};
    for (const entry of this.lines) {
      const point = param.seriesData.get(entry.series);
      if (point && point.value !== undefined) {
        ind[entry.def.token] ??= entry.line.field === 'value' ? point.value : {};
        if (entry.line.field !== 'value') ind[entry.def.token][entry.line.field] = point.value;
      }
    }
    this.renderLegend({ t: bar.time * 1000, candle: { ...bar, volume: volume?.value }, ind });
  }

  renderLegend(row) {
    if (!this.legend) return;
    if (!row) {
      this.legend.textContent = '';
      return;
    }
    const { open, high, low, close, volume } = row.candle;
    const d = this.decimals;
    const change = open ? ((close - open) / open) * 100 : 0;
    const dir = close >= open ? 'up' : 'down';
    const item = (label, value, cls = '') => `<span class="item"><b>${label}</b> <span class="${cls}">${value}</span></span>`;
    const parts = [
      `<span class="item when"><span class="date">${formatDateTime(row.t).slice(0, 11)}</span>${formatDateTime(row.t).slice(11)}</span>`,
      item('O', formatPrice(open, d), dir),
      item('H', formatPrice(high, d), dir),
      item('L', formatPrice(low, d), dir),
      item('C', formatPrice(close, d), dir),
      item('V', formatAmount(volume)),
      `<span class="item ${dir}">${formatPercent(change)}</span>`,
    ];
    const indicators = [];
    for (const token of this.tokens) {
      const def = BY_TOKEN.get(token);
      const value = row.ind?.[token];
      const decimals = def.decimals ?? d + (def.extraDecimals ?? 0);
      const shown = def.lines
        .map((line) => formatPrice(lineValue(def, line, value), decimals))
        .join(' / ');
      const color = def.lines.find((line) => line.color)?.color ?? '#aab2c0';
      indicators.push(`<span class="item"><b style="color:${color}">${def.label}</b> ${shown}</span>`);
    }
    this.legend.innerHTML = `<div class="ohlc">${parts.join('')}</div><div class="ind">${indicators.join('')}</div>`;
  }

  remove() {
    this.chart.remove();
  }
}

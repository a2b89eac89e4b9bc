// The indicators the chart offers, keyed by their stream token (docs/api.md: `sma20`,
// `bollinger20`, `macd`, ...). History comes from GET /api/v1/indicators, live values from the
// candle stream's `?indicators=` list; both are normalised here to one shape per candle:
// a number (single-line indicators) or an object of fields (bands, MACD), or null while
// the indicator warms up.

import { getJson } from './api.js';

export const INDICATORS = [
  {
    token: 'sma20', label: 'SMA 20', query: { name: 'sma', period: 20 }, pane: 'price',
    lines: [{ field: 'value', color: '#f0b90b', width: 2 }],
  },
  {
    token: 'ema50', label: 'EMA 50', query: { name: 'ema', period: 50 }, pane: 'price',
    lines: [{ field: 'value', color: '#4fc3f7', width: 2 }],
  },
  {
    token: 'bollinger20', label: 'BB 20·2', query: { name: 'bollinger', period: 20, k: 2 }, pane: 'price',
    lines: [
      { field: 'upper', color: 'rgba(186, 104, 200, 0.9)', width: 1 },
      { field: 'middle', color: 'rgba(186, 104, 200, 0.5)', width: 1, dashed: true },
      { field: 'lower', color: 'rgba(186, 104, 200, 0.9)', width: 1 },
    ],
  },
  {
    token: 'vwap', label: 'VWAP', query: { name: 'vwap' }, pane: 'price',
    lines: [{ field: 'value', color: '#ff8a65', width: 2, dashed: true }],
  },
  {
    token: 'rsi14', label: 'RSI 14', query: { name: 'rsi', period: 14 }, pane: 'rsi', decimals: 2,
    lines: [{ field: 'value', color: '#ab47bc', width: 2 }],
  },
  {
    token: 'macd', label: 'MACD', query: { name: 'macd' }, pane: 'macd', extraDecimals: 4,
    lines: [
      { field: 'histogram', kind: 'histogram' },
      { field: 'macd', color: '#42a5f5', width: 2 },
      { field: 'signal', color: '#ff7043', width: 1 },
    ],
  },
];

export const BY_TOKEN = new Map(INDICATORS.map((def) => [def.token, def]));

/** The value of one line of `def` in a normalised indicator value (null while warming up). */
export function lineValue(def, line, value) {
  if (value === null || value === undefined) return null;
  if (line.field === 'value') return typeof value === 'number' ? value : null;
  const field = value[line.field];
  return typeof field === 'number' ? field : null;
}

function normalise(def, point) {
  if (def.lines.length === 1 && def.lines[0].field === 'value') return point.value ?? null;
  const out = {};
  for (const line of def.lines) out[line.field] = point[line.field] ?? null;
  return Object.values(out).every((v) => v === null) ? null : out;
}

/**
 * Indicator values for the candles `rows` (a contiguous, ascending REST page), fetched with the
 * same `from`/`to`/`limit` so the route answers exactly one point per candle. Adds them to
 * each row's `ind`, in place.
 */
export async function attachIndicators(symbol, interval, tokens, rows) {
  if (rows.length === 0 || tokens.length === 0) return;
  const range = { from: rows[0].t, to: rows[rows.length - 1].t, limit: rows.length };
  const answers = await Promise.all(
    tokens.map((token) => {
      const def = BY_TOKEN.get(token);
      return getJson(`/api/v1/indicators/${symbol}`, { ...def.query, interval, ...range });
    }),
  );
  const byTime = new Map(rows.map((row) => [row.t, row]));
  answers.forEach((answer, i) => {
    const def = BY_TOKEN.get(tokens[i]);
    for (const point of answer.data) {
      const row = byTime.get(point.timestamp);
      if (row) row.ind[def.token] = normalise(def, point);
    }
  });
}

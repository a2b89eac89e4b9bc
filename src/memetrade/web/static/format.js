// Number and time formatting for meme-scale prices. Pure functions, no DOM.
//
// Prices are shown in plain notation at the symbol's tick precision (a PEPE tick is
// 0.000000000001, so 12 decimals): 0.000001234000, never 1.234e-6. `Number#toFixed` never
// uses exponent notation below 1e21, and the API's numbers already sit on the tick grid, so
// rounding to the tick's decimals shows them exactly.

/** Decimals of a step such as a tick size: "0.000000000001" -> 12, "0.01" -> 2, "1" -> 0. */
export function decimalsOf(step) {
  const text = String(step).toLowerCase();
  const exp = text.match(/e-(\d+)$/);
  if (exp) {
    const mantissa = text.slice(0, exp.index);
    return Number(exp[1]) + decimalsOf(mantissa);
  }
  const dot = text.indexOf('.');
  return dot < 0 ? 0 : text.slice(dot + 1).replace(/0+$/, '').length;
}

/** `value` at `decimals` places in plain notation; an em dash for a missing value. */
export function formatPrice(value, decimals) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return value.toFixed(Math.min(Math.max(decimals, 0), 20));
}

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 2 });
const plain = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

/** Amounts and volumes: 13.26M, 318.79, 1.83T. */
export function formatAmount(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return Math.abs(value) < 10_000 ? plain.format(value) : compact.format(value);
}

/** A signed percentage with two decimals: +10.38%, -2.05%. */
export function formatPercent(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return `${value > 0 ? '+' : ''}${value.toFixed(2)}%`;
}

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** Local wall-clock time of epoch milliseconds: 14:03:07 (with .123 when `millis`). */
export function formatClock(ms, millis = false) {
  const d = new Date(ms);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? `${hms}.${pad(d.getMilliseconds(), 3)}` : hms;
}

/** Local date and time of epoch milliseconds: 2026-12-01 14:03:07. */
export function formatDateTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${formatClock(ms)}`;
}

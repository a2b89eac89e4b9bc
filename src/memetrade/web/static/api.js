// The public API as the page uses it: JSON over REST, and WebSockets that reconnect.

/** An error answer of the REST API ({"error": {"code", "message"}}), or a network failure. */
export class ApiError extends Error {
  constructor(message, status = 0, code = 'network') {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** GET `path` with query `params` (undefined/null values left out); the parsed JSON body. */
export async function getJson(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
  }
  let response;
  try {
    response = await fetch(url, { headers: { Accept: 'application/json' } });
  } catch (error) {
    throw new ApiError(`${url.pathname}: ${error.message}`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = body?.error ?? {};
    throw new ApiError(error.message ?? `HTTP ${response.status}`, response.status, error.code);
  }
  return body;
}

/** The ws:// (or wss://) URL of `path` on this server. */
export function wsUrl(path, params = {}) {
  const url = new URL(path, window.location.origin);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  return url.toString();
}

// Close codes after which retrying cannot help (docs/api.md): unknown symbol, bad query.
const PERMANENT_CLOSE_CODES = new Set([4400, 4404]);

/**
 * A WebSocket that reconnects with exponential backoff and jitter until `stop()`.
 *
 * States: 'connecting' -> 'open' -> (dropped) 'waiting' -> 'connecting' -> ... ; 'failed'
 * after a permanent close code; 'stopped'. `onOpen` runs on every (re)connection: that is
 * where a stream's user resubscribes its view and fills the gap from REST.
 *
 * The backoff resets only once a connection has proven healthy (a message arrived, or it
 * stayed open for `healthyAfterMs`), so a server that accepts and at once closes (at
 * capacity: 1013) is not hammered at the initial delay.
 */
export class LiveSocket {
  constructor(url, { onOpen, onMessage, onState, initialMs = 500, maxMs = 15_000, healthyAfterMs = 3_000 } = {}) {
    this.url = url;
    this.onOpen = onOpen ?? (() => {});
    this.onMessage = onMessage ?? (() => {});
    this.onState = onState ?? (() => {});
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.healthyAfterMs = healthyAfterMs;
    this.attempt = 0;
    this.reconnects = 0;
    this.state = 'idle';
    this.retryAt = 0;
    this.ws = null;
    this.timer = null;
    this.healthyTimer = null;
  }

  start() {
    this.connect();
    return this;
  }

  stop() {
    this.setState('stopped');
    clearTimeout(this.timer);
    clearTimeout(this.healthyTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000);
    }
  }

  connect() {
    if (this.state === 'stopped') return;
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.setState('open');
      this.healthyTimer = setTimeout(() => this.healthy(), this.healthyAfterMs);
      this.onOpen();
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.healthy();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // Not ours to interpret; the API only sends JSON.
      }
      this.onMessage(message);
    };
    // An error is always followed by a close: reconnecting is the close handler's job.
    ws.onerror = () => {};
    ws.onclose = (event) => {
      if (this.ws !== ws || this.state === 'stopped') return;
      clearTimeout(this.healthyTimer);
      this.ws = null;
      if (PERMANENT_CLOSE_CODES.has(event.code)) {
        this.setState('failed', event.reason || `closed (${event.code})`);
        return;
      }
      this.scheduleRetry();
    };
  }

  healthy() {
    this.attempt = 0;
    clearTimeout(this.healthyTimer);
  }

  scheduleRetry() {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.reconnects += 1;
    this.retryAt = Date.now() + delay;
    this.setState('waiting');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setState(state, detail = '') {
    if (this.state === 'stopped') return;
    this.state = state;
    this.onState(state, detail);
  }
}

const SEVERITY = { live: 0, syncing: 1, connecting: 2, reconnecting: 3, failed: 4 };

/**
 * The page's one connection indicator: every stream reports its own state under a name;
 * the indicator shows the worst. `live` only when every stream is open and caught up.
 */
export class ConnectionMonitor {
  constructor(element) {
    this.element = element;
    this.sources = new Map();
    this.ticker = null;
  }

  set(name, state, detail = '') {
    this.sources.set(name, { state, detail });
    this.render();
  }

  remove(name) {
    this.sources.delete(name);
    this.render();
  }

  /** Map a LiveSocket's state to the indicator's vocabulary under `name`. */
  track(name, socket, stateWhenOpen = 'live') {
    return (state, detail) => {
      const shown = { open: stateWhenOpen, waiting: 'reconnecting', idle: 'connecting' }[state] ?? state;
      if (state === 'stopped') this.remove(name);
      else this.set(name, shown, state === 'waiting' ? { retryAt: socket().retryAt } : detail);
    };
  }

  get overall() {
    let worst = 'live';
    for (const { state } of this.sources.values()) {
      if ((SEVERITY[state] ?? 0) > SEVERITY[worst]) worst = state;
    }
    return this.sources.size === 0 ? 'connecting' : worst;
  }

  render() {
    const state = this.overall;
    const label = this.element.querySelector('.label');
    this.element.dataset.state = state;
    clearInterval(this.ticker);
    const text = () => {
      if (state !== 'reconnecting') return { live: 'live', syncing: 'syncing…', connecting: 'connecting…', failed: 'disconnected' }[state];
      const retryAt = Math.max(...[...this.sources.values()].map((s) => s.detail?.retryAt ?? 0));
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      return seconds > 0 ? `reconnecting in ${seconds}s` : 'reconnecting…';
    };
    label.textContent = text();
    if (state === 'reconnecting') this.ticker = setInterval(() => (label.textContent = text()), 500);
    const failed = [...this.sources.entries()].filter(([, s]) => s.state === 'failed');
    this.element.title = failed.map(([name, s]) => `${name}: ${s.detail}`).join('\n') || `connection: ${state}`;
  }
}

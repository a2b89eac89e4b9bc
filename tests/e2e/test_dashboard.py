"""The web dashboard in a real browser: Debian's Chromium, driven by Playwright, against a real
server process running the mock market.

The page exposes a read-only ``window.memetrade.state`` (what it holds and draws); the tests
read it, the DOM and the chart's own data, and wait on conditions, never on fixed sleeps.
A dropped network is simulated by an init script that wraps ``WebSocket``: it closes the
page's sockets and refuses new ones until the test lets them through again.

``UPDATE_SCREENSHOTS=1`` (``make screenshot``) also writes ``docs/dashboard.png`` and
``docs/dashboard-phone.png``.
"""

import os
import re
import shutil
import time
from collections.abc import Iterator
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import Server
from http_helpers import assert_error, make_client, running
from playwright.sync_api import Browser, Page, Playwright, WebSocketRoute, sync_playwright

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "src" / "memetrade" / "web" / "static" / "vendor"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000

# Replaces WebSocket with a tracked one; `__net.drop()` closes every open socket and makes new
# ones fail (as an unplugged cable would) until `__net.restore()`.
NETWORK_SWITCH = """
(() => {
  const Real = window.WebSocket;
  const net = { blocked: false, sockets: [], refused: 0 };
  class Refused extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.readyState = 0;
      net.refused += 1;
      setTimeout(() => {
        this.readyState = 3;
        this.onerror?.(new Event('error'));
        this.onclose?.(new CloseEvent('close', { code: 1006 }));
      }, 20);
    }
    send() {}
    close() {}
  }
  function Tracked(url, protocols) {
    if (net.blocked) return new Refused(url);
    const ws = new Real(url, protocols);
    net.sockets.push(ws);
    return ws;
  }
  Object.assign(Tracked, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  net.drop = () => {
    net.blocked = true;
    net.refused = 0;
    for (const ws of net.sockets.splice(0)) ws.close();
  };
  net.restore = () => { net.blocked = false; };
  window.WebSocket = Tracked;
  window.__net = net;
})();
"""

LIVE = "window.memetrade?.state.connection === 'live' && window.memetrade.state.candles.length > 0"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A fast mock market through the exchange's order books; on its empty database it
    # backfills history for every interval.
    with running(
        tmp_path_factory.mktemp("dashboard"),
        MOCK_DATA="1",
        MOCK_MODE="book",
        MOCK_DATA_INTERVAL="50",
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (make test installs it: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    playwright: Playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
    finally:
        playwright.stop()


class Console:
    """Errors the page logged or threw."""

    def __init__(self) -> None:
        self.errors: list[str] = []


def _open(browser: Browser, viewport: dict[str, int]) -> tuple[Page, Console]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(NETWORK_SWITCH)
    page = context.new_page()
    console = Console()
    page.on(
        "console",
        lambda m: console.errors.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: console.errors.append(f"page error: {e}"))
    return page, console


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page, console = _open(browser, DESKTOP)
    yield page
    page.context.close()
    assert console.errors == []


def state(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("window.memetrade.state")
    return result


def show(page: Page, server: Server, view: str) -> dict[str, Any]:
    """Open the dashboard at ``#view`` (SYMBOL/interval/indicators) and wait until it is live."""
    page.goto(f"{server.base_url}/#{view}")
    page.wait_for_function(LIVE)
    return state(page)


def assert_contiguous(s: dict[str, Any], step_ms: int) -> None:
    """The chart draws exactly the candles held, one per interval: no hole, no duplicate."""
    candles = s["candles"]
    assert s["problems"] == []
    assert all(b - a == step_ms for a, b in pairwise(candles))
    assert s["drawn"] == candles


# -- serving -------------------------------------------------------------------------------


def test_dashboard_is_served_at_root_with_its_assets_and_the_docs_stay(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/static/app.js">' in page.text
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            assert client.get(asset).status_code == 200, asset
        script = client.get("/static/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["cache-control"] == "no-cache"
        assert client.head("/").status_code == 200
        assert client.get("/docs").status_code == 200
        missing = client.get("/static/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"


def test_vendored_chart_library_is_the_pinned_version() -> None:
    pinned = re.search(r"^LWC_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert pinned is not None
    library = (VENDOR / "lightweight-charts.standalone.production.mjs").read_text()
    assert f"Lightweight Charts™ v{pinned[1]}" in library[:300]
    assert (VENDOR / "VERSION").read_text().startswith(f"lightweight-charts {pinned[1]}\n")
    assert f"**{pinned[1]}**" in (VENDOR / "README.md").read_text()
    assert "Apache License" in (VENDOR / "LICENSE").read_text()


# -- in the browser ------------------------------------------------------------------------


def test_page_formats_meme_prices_and_merges_candles_by_timestamp(
    page: Page, server: Server
) -> None:
    show(page, server, "PEPE/1m/sma20")
    result = page.evaluate(
        """async () => {
          const f = await import('/static/format.js');
          const { CandleStore, makeRow } = await import('/static/candles.js');
          const store = new CandleStore(1000);
          const row = (t, close) => makeRow({ timestamp: t, close });
          store.merge([row(1000, 1), row(2000, 2), row(3000, 3)]);
          const changes = [store.upsert(row(3000, 4)), store.upsert(row(2000, 5)),
                           store.upsert(row(4000, 6))];
          return {
            prices: [f.formatPrice(0.000001234, 12), f.formatPrice(1.234e-6, 9),
                     f.formatPrice(0.122962, 6), f.formatPrice(null, 6)],
            decimals: [f.decimalsOf('0.000000000001'), f.decimalsOf('0.00000000001'),
                       f.decimalsOf('0.01'), f.decimalsOf('1'), f.decimalsOf('1e-8')],
            changes,
            times: store.rows.map((r) => r.t),
            closes: store.rows.map((r) => r.candle.close),
            gap: store.gapBefore(6000), noGap: store.gapBefore(5000), problems: store.problems(),
          };
        }"""
    )
    assert result["prices"] == ["0.000001234000", "0.000001234", "0.122962", "—"]
    assert result["decimals"] == [12, 11, 2, 0, 8]
    assert result["changes"] == ["last", "history", "last"]
    assert result["times"] == [1000, 2000, 3000, 4000]
    assert result["closes"] == [1, 5, 4, 6]
    assert (result["gap"], result["noGap"], result["problems"]) == (5000, None, [])


def test_page_draws_history_and_moves_live(page: Page, server: Server) -> None:
    s = show(page, server, "PEPE/1s/sma20")
    assert len(s["candles"]) >= 100
    assert_contiguous(s, 1000)
    assert isinstance(s["last"]["ind"]["sma20"], float)

    # The open candle moves (or a new one opens) with the WebSocket stream, on the chart too.
    page.wait_for_function(
        """([t, trades]) => {
          const s = window.memetrade.state;
          return (s.last.t > t || s.last.candle.trades > trades) && s.drawn.at(-1) === s.last.t;
        }""",
        arg=[s["last"]["t"], s["last"]["candle"]["trades"]],
    )
    # The trade tape fills from history and grows with the stream, bounded, newest first.
    received = state(page)["tradesReceived"]
    page.wait_for_function(f"window.memetrade.state.tradesReceived >= {received + 10}")
    rows = page.locator("#tape tbody tr")
    assert 0 < rows.count() <= 50
    assert page.locator("#tape tbody tr.buy, #tape tbody tr.sell").count() == rows.count()
    times = page.locator("#tape tbody tr td:first-child").all_inner_texts()
    assert times == sorted(times, reverse=True)
    buy = page.locator("#tape tr.buy td:nth-child(2)").first.evaluate(
        "e => getComputedStyle(e).color"
    )
    sell = page.locator("#tape tr.sell td:nth-child(2)").first.evaluate(
        "e => getComputedStyle(e).color"
    )
    assert buy != sell

    # Headers: plain-notation meme prices, a coloured 24h change, and a recommendation.
    assert page.locator("#symbols .card").all_inner_texts()[0].startswith("PEPE")
    assert [c.get_attribute("data-symbol") for c in page.locator("#symbols .card").all()] == [
        "PEPE", "DOGE", "SHIB", "FLOKI",
    ]  # fmt: skip
    page.wait_for_function("document.querySelector('#header .price').textContent !== '—'")
    price = page.locator("#header .price").inner_text()
    assert re.fullmatch(r"0\.\d{12}", price), price
    assert page.locator("#header .signal").inner_text() in {"BUY", "SELL", "NEUTRAL"}
    assert "e-" not in page.locator("body").inner_text()

    # The crosshair legend shows the OHLCV of the candle under the pointer.
    newest = page.locator("#chart .legend .when").inner_text()
    box = page.locator("#chart .chart-canvas").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.wait_for_function(
        "t => document.querySelector('#chart .legend .when').textContent !== t", arg=newest
    )
    legend = page.locator("#chart .legend").inner_text()
    assert all(f"{label} 0.0000" in legend for label in "OHLC"), legend
    assert re.search(r"V \d", legend)
    assert "SMA 20" in legend


def test_switching_symbol_interval_and_indicators_redraws(page: Page, server: Server) -> None:
    pepe = show(page, server, "PEPE/1m/sma20")
    assert pepe["last"]["candle"]["close"] < 0.001

    page.locator('#symbols .card[data-symbol="DOGE"]').click()
    page.wait_for_function(f"{LIVE} && window.memetrade.state.symbol === 'DOGE'")
    doge = state(page)
    assert doge["last"]["candle"]["close"] > 0.01  # DOGE's candles, not PEPE's
    assert_contiguous(doge, 60_000)
    assert page.locator("#tape-symbol").inner_text() == "DOGE"
    page.wait_for_function("document.querySelector('#tape tbody tr') !== null")
    tape_price = page.locator("#tape tbody tr td:nth-child(3)").first.inner_text()
    assert re.fullmatch(r"\d+\.\d{6}", tape_price), tape_price  # DOGE's tick: 0.000001

    page.locator('#intervals button[data-interval="5m"]').click()
    page.wait_for_function(f"{LIVE} && window.memetrade.state.interval === '5m'")
    five = state(page)
    assert_contiguous(five, 300_000)
    assert five["drawn"] != doge["drawn"]
    assert page.url.endswith("#DOGE/5m/sma20")

    page.locator('#indicators [data-indicator="rsi14"]').click()
    page.wait_for_function(f"{LIVE} && typeof window.memetrade.state.last.ind.rsi14 === 'number'")
    assert state(page)["indicators"] == ["sma20", "rsi14"]
    assert "RSI 14" in page.locator("#chart .legend").inner_text()


def test_scrolling_back_loads_older_candles_from_rest(page: Page, server: Server) -> None:
    s = show(page, server, "PEPE/1m/sma20")
    first = s["candles"][0]
    box = page.locator("#chart .chart-canvas").bounding_box()
    assert box is not None
    # Drag the chart to the right, towards older candles, until it asks for more.
    y = box["y"] + box["height"] * 0.4
    for _ in range(3):
        page.mouse.move(box["x"] + 100, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 150, y, steps=8)
        page.mouse.up()
    page.wait_for_function(f"window.memetrade.state.candles[0] < {first}")
    older = state(page)
    assert len(older["candles"]) > len(s["candles"])
    assert_contiguous(older, 60_000)


def test_dropped_connection_reconnects_and_fills_the_gap(page: Page, server: Server) -> None:
    show(page, server, "PEPE/1s/sma20")
    page.evaluate("window.__dropAt = Date.now(); window.__net.drop()")
    page.wait_for_function("window.memetrade.state.connection === 'reconnecting'")
    assert page.locator("#connection").get_attribute("data-state") == "reconnecting"
    # Down long enough to miss 1s candles, and at least one reconnect attempt was refused.
    page.wait_for_function("window.__net.refused >= 1 && Date.now() - window.__dropAt > 2500")
    down = state(page)

    page.evaluate("window.__net.restore()")
    page.wait_for_function(LIVE)
    back = state(page)
    assert down["reconnects"] >= 3  # the market, trade and candle streams each retried
    assert page.locator("#connection").get_attribute("data-state") == "live"
    # The candles of the outage came from REST, and the stream carries on from there.
    page.wait_for_function(
        f"window.memetrade.state.last.t >= {back['last']['t'] + 2000} && "
        "!window.memetrade.state.syncing"
    )
    after = state(page)
    assert_contiguous(after, 1000)
    assert {down["last"]["t"] + 1000, down["last"]["t"] + 2000} <= set(after["candles"])
    assert len(after["trades"]) == len(set(after["trades"]))


# -- order book ----------------------------------------------------------------------------

# The panel as drawn, read in one go (a render replaces all of it at once): its update id and
# levels, best first, as the exchange wrote them.
READ_BOOK = """() => {
  const panel = document.querySelector('#book');
  const depth = (row) => parseFloat(row.style.getPropertyValue('--depth'));
  const levels = (part) => [...panel.querySelectorAll(`${part} .level`)].map(
    (row) => [row.dataset.price, row.dataset.qty, depth(row)]);
  return {
    hidden: panel.hidden,
    state: panel.dataset.state,
    symbol: panel.dataset.symbol ?? null,
    updateId: panel.dataset.updateId ? Number(panel.dataset.updateId) : null,
    asks: levels('.book-asks').reverse(),
    bids: levels('.book-bids'),
    spread: panel.querySelector('.book-spread .value').textContent,
  };
}"""
BOOK_LIVE = (
    "s => { const p = document.querySelector('#book'); return !p.hidden && p.dataset.symbol === s"
    " && p.querySelectorAll('.book-asks .level').length > 0"
    " && p.querySelectorAll('.book-bids .level').length > 0; }"
)


def read_book(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(READ_BOOK)
    return result


def assert_book_is_the_exchanges(page: Page, client: httpx.Client, symbol: str) -> None:
    """The panel's best ten levels a side equal ``GET /api/v1/depth`` at the same update id.

    The book changes every market step; the test reads the panel, the REST book, then the
    panel again, until the REST book's id is one the panel showed."""
    page.wait_for_function(BOOK_LIVE, arg=symbol)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        before = read_book(page)
        response = client.get(f"/api/v1/depth/{symbol}", params={"limit": 10})
        assert response.status_code == 200, response.text
        rest = response.json()
        after = read_book(page)
        for shown in (before, after):
            if shown["symbol"] == symbol and shown["updateId"] == rest["lastUpdateId"]:
                assert [level[:2] for level in shown["asks"]] == rest["asks"]
                assert [level[:2] for level in shown["bids"]] == rest["bids"]
                return
    raise AssertionError(f"the {symbol} panel never showed the REST book's update id")


def test_order_book_panel_mirrors_the_exchange_and_follows_the_symbol(
    page: Page, server: Server
) -> None:
    show(page, server, "DOGE/1m/sma20")
    page.wait_for_function(BOOK_LIVE, arg="DOGE")
    book = read_book(page)
    assert book["state"] == "live"
    assert 5 <= len(book["asks"]) <= 10
    assert 5 <= len(book["bids"]) <= 10
    asks = [Decimal(price) for price, _, _ in book["asks"]]
    bids = [Decimal(price) for price, _, _ in book["bids"]]
    # Read bottom-up, the asks rise: the lowest is drawn at the bottom, next to the spread.
    assert asks == sorted(asks)
    assert bids == sorted(bids, reverse=True)
    assert asks[0] > bids[0]
    assert Decimal(book["spread"]) == asks[0] - bids[0]
    # The depth bars are cumulative: they grow away from the spread, up to the fuller side.
    for side in (book["asks"], book["bids"]):
        depths = [depth for _, _, depth in side]
        assert depths == sorted(depths)
    assert max(book["asks"][-1][2], book["bids"][-1][2]) == 100

    with make_client(server) as client:
        assert_book_is_the_exchanges(page, client, "DOGE")
        page.locator('#symbols .card[data-symbol="PEPE"]').click()
        assert_book_is_the_exchanges(page, client, "PEPE")
    assert page.locator("#book-symbol").inner_text() == "PEPE"
    assert all(Decimal(price) < Decimal("0.001") for price, _, _ in read_book(page)["bids"])
    assert state(page)["bookResyncs"] == 0


def test_order_book_reloads_from_a_fresh_snapshot_after_a_lost_diff(
    page: Page, server: Server
) -> None:
    lost: list[str | bytes] = []

    def lose_the_first_diff(route: WebSocketRoute) -> None:
        upstream = route.connect_to_server()

        def relay(message: str | bytes) -> None:
            if not lost and "depthUpdate" in str(message):
                lost.append(message)
            else:
                route.send(message)

        upstream.on_message(relay)

    page.route_web_socket(re.compile(r"/ws/depth/"), lose_the_first_diff)
    show(page, server, "DOGE/1m/sma20")
    page.wait_for_function("window.memetrade.state.bookResyncs === 1")
    with make_client(server) as client:
        assert_book_is_the_exchanges(page, client, "DOGE")
    assert len(lost) == 1
    assert state(page)["bookResyncs"] == 1


def test_order_book_panel_hides_where_the_exchange_does_not_run(page: Page, tmp_path: Path) -> None:
    with running(tmp_path, EXCHANGE="0") as srv, make_client(srv) as client:
        assert_error(client.get("/api/v1/depth/DOGE", params={"limit": 10}), 404)
        page.goto(f"{srv.base_url}/#DOGE/1m/sma20")
        page.wait_for_function(
            "document.querySelector('#book').hidden"
            " && window.memetrade?.state.connection === 'live'"
        )
        assert read_book(page)["state"] == "unavailable"
        assert page.locator("#book").is_hidden()
        assert page.locator("#tape").is_visible()


def test_phone_width_layout_and_screenshots(
    browser: Browser, server: Server, tmp_path: Path
) -> None:
    shots: list[Path] = []
    for name, viewport in (("dashboard.png", DESKTOP), ("dashboard-phone.png", PHONE)):
        page, console = _open(browser, viewport)
        try:
            show(page, server, "PEPE/1m/sma20")
            page.wait_for_function("document.querySelectorAll('#tape tbody tr').length >= 20")
            # Nothing wider than the screen; the chart fills the width.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"]
            chart = page.locator("#chart").bounding_box()
            assert chart is not None
            assert chart["width"] >= viewport["width"] - 40 or viewport is DESKTOP
            assert chart["height"] >= 300
            page.mouse.move(0, 0)
            shot = tmp_path / name
            page.screenshot(path=str(shot))
            shots.append(shot)
        finally:
            page.context.close()
        assert console.errors == []
    assert all(shot.stat().st_size > 20_000 for shot in shots)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        for shot in shots:
            shutil.copy(shot, ROOT / "docs" / shot.name)

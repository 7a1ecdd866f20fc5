"""Benchmark of the app in a real browser: page load and interaction latency, p50 / p95.

    python -m bench.app --size 1000 --big-links 16000000     # the issue's sizes (a quiet machine)
    python -m bench.app --size 20 --big-links 200000 --runs 3  # a quick look

On a generated corpus of ``--size`` graphs plus one large unpruned graph of ``--big-links``
links, the app is served by ``streamlit run`` and driven by Playwright (Debian's
/usr/bin/chromium). Every time is read by the page's own clock (``PAGE_CLOCK``: from the tab's
navigation start, or from the click or key press, to the frame that shows the page drawn):

- *open*: from the navigation to an address to the page drawn (the app's run finished, no loading
  placeholder left, the page's main element visible), for the addresses of ``addresses()``: the
  overview, graphs, search, one graph, compare (two and many), across, languages and labels (the
  feature page is timed in the walk below; the ingest page, a form, is not timed), each as a first
  visit (a fresh browser, nothing cached) and in a new tab of a browser that has visited the app;
- *in the app*: with the app open in a tab, from a click on a page's entry of the sidebar, or on
  a link of a researcher's walk (a search hit -> its feature page -> one of its graphs -> compare
  with another), to that page drawn. Streamlit changes page inside the tab (no reload), as a
  researcher moves around;
- *interactions* on the graph page: select a node with a click (which also expands its
  neighbourhood), and move the edge threshold one step; from the input to the updated view.

Each measure runs ``--runs`` times; the first run of an address is cold (the app's caches are
empty), the others warm. The *kb* column times the page's main ``kb`` call alone in this process (uncached): the part of a cold open that is the query; the rest is
Streamlit, the transfer and the drawing; each opening is also cut into its phases (:class:`Opened`).
Writes ``bench/results/app.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import statistics
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

from bench.report import ms

log = logging.getLogger("bench.app")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "app.md"
CHROMIUM = "/usr/bin/chromium"
TIMEOUT = 300_000  # ms
VIEWPORT = {"width": 1500, "height": 1000}


def _synth() -> Any:
    """The synthetic-corpus generator (imported when a corpus is made, not at start)."""
    import synth

    return synth


# --- the knowledge base ----------------------------------------------------------------------------


def build_kb(work: Path, size: int, big_links: int) -> tuple[Path, str | None]:
    """The home of a KB holding the corpus of ``size`` graphs and the large graph; built once."""
    from kb.api import KB
    from kb.config import Config

    home = work / f"kb-app-{size}-{big_links}"
    done = home / "bench-ready.json"
    if done.exists():
        return home, json.loads(done.read_text())["big"]
    synth = _synth()
    corpus = work / f"corpus-{size}"
    if not (corpus / "manifest.csv").exists():
        log.info("generating %d graphs in %s", size, corpus)
        synth.generate_corpus(corpus, size, seed=0, workers=os.cpu_count() or 1)
    big_slug = None
    paths: list[Path] = [corpus]
    if big_links:
        big = work / f"large-{big_links}.json"
        if not big.exists():
            log.info("writing a graph of %d links", big_links)
            synth.write_large_graph(big, big_links, n_nodes=min(14_000, max(2_000, big_links // 1000)))
        paths.append(big)
    with KB.open(Config.load(home=home, env={})) as kb:
        report = kb.ingest([corpus], manifest=corpus / "manifest.csv")
        if big_links:
            big_report = kb.ingest([paths[1]])
            big_slug = (big_report.ingested or big_report.skipped)[0]["slug"]
        log.info("ingested %d graphs (%d failed)", len(report.ingested), len(report.failed))
    done.write_text(json.dumps({"big": big_slug}))
    return home, big_slug


# --- the app -----------------------------------------------------------------------------------------


@contextmanager
def serve(home: Path) -> Iterator[str]:
    """``streamlit run app/main.py`` on ``home``, on a free loopback port; yields its address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from kb.cli.app import streamlit_command
    from kb.config import Config

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITKB_")}
    command, env = streamlit_command(Config.load(home=home, env={}), port, "127.0.0.1", base_env)
    command.extend(["--server.fileWatcherType", "none"])  # as `circuitkb app` runs it, without watching files
    with open(home / "streamlit.log", "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                        break
                except OSError:
                    if time.time() > deadline or process.poll() is not None:
                        raise RuntimeError(f"the app did not start; see {home / 'streamlit.log'}") from None
                    time.sleep(0.3)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


# what the page shows while the app runs or loads an element, and the page's headings
BUSY = "[data-testid=stStatusWidget], [data-testid=stSkeleton], [data-testid=stElementContainer][data-stale=true]"
HEADINGS = "[data-testid=stMain] h1, [data-testid=stMain] h2"

# The page's own clock (performance.now(), from the tab's navigation start). The driver is slow
# to notice a page drawn: its first query on a new tab compiles Playwright's injected script,
# 0.2-0.4 s on this machine, so the times are read in the page itself. Installed in every
# document of a context, it notes the time stamp of each click and key press; each websocket
# message and the frame that shows it; and the frame on which the page last became drawn as
# ``want`` describes it (its heading, its main element, nothing loading). A page is drawn at
# the later of the two frames: the last message (the run's end) shown, and the page complete.
PAGE_CLOCK = """
(() => {
  const clock = window.__ckb = {messages: [], input: null, drawnAt: null, want: null};
  // a frame has been shown once the next one begins
  const shown = done => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));
  const Socket = window.WebSocket;
  window.WebSocket = class extends Socket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => {
        const message = {at: performance.now(), shown: null};
        clock.messages.push(message);
        shown(t => { message.shown = t; });
      });
    }
  };
  for (const kind of ['click', 'keydown']) {
    document.addEventListener(kind, e => { if (e.isTrusted) clock.input = e.timeStamp; }, true);
  }
  // the app's drawing lives in a component's shadow root: note every root, to look and watch in it too
  const roots = [document];
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (...args) {
    const root = attach.apply(this, args);
    roots.push(root);
    observer.observe(root, WATCH);
    return root;
  };
  const BUSY = __BUSY__;
  const ready = () => {
    const want = clock.want || window.__ckbWant;
    if (!want || !roots.some(r => r.querySelector(want.selector)) || document.querySelector(BUSY)) return false;
    if (!want.title) return true;
    return [...document.querySelectorAll(__HEADINGS__)].some(h => h.innerText.trim() === want.title);
  };
  let was = false;
  clock.check = () => {
    const now = ready();
    if (now && !was) shown(t => { if (was) clock.drawnAt = t; });
    if (!now) clock.drawnAt = null;
    was = now;
  };
  // once the page is drawn: when it began (navigation or input), loaded, got its last message, was shown
  clock.times = since => {
    const last = clock.messages[clock.messages.length - 1];
    if (clock.drawnAt === null || (last && last.shown === null)) return null;
    const start = since ? clock.input : 0;
    const load = since ? start : performance.getEntriesByType('navigation')[0].loadEventEnd;
    const message = last && last.at > load ? last : null;
    return {start, load, last: message ? message.at : load, drawn: Math.max(clock.drawnAt, message ? message.shown : 0)};
  };
  const WATCH = {subtree: true, childList: true, attributes: true, characterData: true};
  const observer = new MutationObserver(clock.check);
  observer.observe(document, WATCH);
})();
""".replace("__BUSY__", json.dumps(BUSY)).replace("__HEADINGS__", json.dumps(HEADINGS))


def want(page: Any, selector: str, title: str | None = None) -> None:
    """Tell the page clock what the next page drawn looks like, and forget the last one."""
    page.evaluate("w => { window.__ckb.want = w; window.__ckb.drawnAt = null; window.__ckb.check(); }", {"selector": selector, "title": title})


def page_times(page: Any, since_input: bool) -> tuple[float, float, float, float]:
    """(total, scripts, run, drawing), in seconds by the page's clock, of the page just drawn
    (call after ``drawn``). ``since_input``: from the last click or key press, else from the
    tab's navigation start; *scripts* is then nought."""
    t = page.wait_for_function("since => window.__ckb.times(since)", arg=since_input, timeout=30_000, polling=20).json_value()
    if t["start"] is None or t["drawn"] < t["start"]:
        raise RuntimeError(f"{page.url}: the page clock saw no input before the page was drawn")
    return tuple((b - a) / 1000 for a, b in ((t["start"], t["drawn"]), (t["start"], t["load"]), (t["load"], t["last"]), (t["last"], t["drawn"])))  # type: ignore[return-value]


def drawn(page: Any, selector: str) -> None:
    """Wait until the app's run is over, nothing is loading and ``selector`` is visible."""
    page.wait_for_selector(selector, timeout=TIMEOUT)
    page.wait_for_function(f"() => document.querySelectorAll({json.dumps(BUSY)}).length === 0", timeout=TIMEOUT, polling=50)
    if page.locator("[data-testid=stException], [data-testid=stAlertContentError]").count():
        raise RuntimeError(f"{page.url} shows an error: {page.locator('[data-testid=stMain]').inner_text()[:500]}")


def arrived(page: Any, title: str, selector: str) -> None:
    """Wait until the page titled ``title`` (its heading) is drawn in the tab, its run over."""
    page.wait_for_function(
        f"t => [...document.querySelectorAll({json.dumps(HEADINGS)})].some(h => h.innerText.trim() === t)",
        arg=title, timeout=TIMEOUT, polling=20,
    )  # fmt: skip
    drawn(page, selector)


# --- measures ------------------------------------------------------------------------------------------

# the app's drawing (app/plot.js): one SVG per scene, its nodes markers, the matrix's pairs cells
DRAWING = ".ckb-plot svg.ckb-svg"
NODES = f"{DRAWING} path.ckb-marker"
CELLS = f"{DRAWING} rect.ckb-cell"

# (address, heading, selector of the drawn page) of each page reached from the sidebar
SIDEBAR = (
    ("graphs", "Graphs", "[data-testid=stDataFrame]"),
    ("search", "Search features", "[data-testid=stTextInput]"),
    ("graph", "Graph", NODES),
    ("compare", "Compare graphs", NODES),
    ("across", "Across prompts", "[data-testid=stDataFrame]"),
    ("languages", "Languages", f"[data-testid=stMain] [data-testid=stAlert], {DRAWING}"),
    ("labels", "Labels", "[data-testid=stAlert], [data-testid=stDataFrame]"),
    ("", "circuitkb", "[data-testid=stMetric]"),
)


def time_in_app(browser: Any, base: str, runs: int) -> dict[str, list[float]]:
    """Pages reached inside one open tab: from the sidebar, and along a researcher's walk."""
    out: dict[str, list[float]] = {}
    context = clocked_context(browser)
    page = context.new_page()
    page.goto(base + "/")
    drawn(page, "[data-testid=stMetric]")
    for _ in range(runs):
        for address, title, selector in SIDEBAR:
            want(page, selector, title)
            page.locator(f"[data-testid=stSidebarNav] a[href='{base}/{address}']").click()
            arrived(page, title, selector)
            out.setdefault(f"sidebar -> {address or 'overview'}", []).append(page_times(page, since_input=True)[0])
        page.goto(base + "/search?q=opposite")
        drawn(page, "[data-testid=stPageLink]")
        walk = (
            ("a search hit -> its feature page", "[data-testid=stMain] [data-testid=stPageLink] a[href*='feature?f=']", "Feature", "[data-testid=stDataFrame]"),
            ("feature -> one of its graphs", "[data-testid=stMain] a[href*='graph?g=']", "Graph", NODES),
            ("graph -> compare with another", "[data-testid=stMain] a[href*='compare?a=']", "Compare graphs", NODES),
        )
        for step, link, title, selector in walk:
            want(page, selector, title)
            page.locator(link).first.click()
            arrived(page, title, selector)
            out.setdefault(step, []).append(page_times(page, since_input=True)[0])
    context.close()
    return out



def addresses(home: Path, big: str | None) -> list[tuple[str, str, str, Callable[[Any], Any] | None]]:
    """(name, address, selector of the drawn page, the page's main kb call) for every page."""
    from kb.analysis.compare import compare_graphs, graph_similarity
    from kb.analysis.graphview import graph_view
    from kb.analysis.languages import language_overlap
    from kb.analysis.shared import shared_features
    from kb.search import search
    from kb.selection import Selection

    graphs = _graphs(home)
    first, second = graphs[0], next(g for g in graphs[1:] if g.family == graphs[0].family) if graphs[0].family else graphs[1]
    family = next((g.family for g in graphs if g.family and g.language and g.language != "en"), first.family)
    plot = NODES
    rows: list[tuple[str, str, str, Callable[[Any], Any] | None]] = [
        ("overview", "/", "[data-testid=stMetric]", lambda kb: kb.stats()),
        ("graphs", "/graphs", "[data-testid=stDataFrame]", lambda kb: kb.select()),
        ("search", "/search?q=opposite", "[data-testid=stPageLink]", lambda kb: search(kb, "opposite", k=20)),
        ("graph", f"/graph?g={quote(first.slug)}", plot, lambda kb: graph_view(kb, first.slug, top=120, edge_threshold=0.02)),
        ("compare two", f"/compare?a={quote(first.slug)}&b={quote(second.slug)}", plot, lambda kb: compare_graphs(kb, first.slug, second.slug)),
        ("compare many", f"/compare?family={quote(family or '')}", CELLS, lambda kb: graph_similarity(kb, Selection(family=family))),
        ("across", f"/across?family={quote(family or '')}", "[data-testid=stDataFrame]", lambda kb: shared_features(kb, Selection(family=family), 2)),
        ("languages", f"/languages?family={quote(family or '')}", DRAWING, lambda kb: language_overlap(kb, Selection(family=family))),
        ("labels", "/labels", "[data-testid=stAlert], [data-testid=stDataFrame]", None),
    ]
    if big:
        rows.append(("graph, large", f"/graph?g={quote(big)}", plot, lambda kb: graph_view(kb, big, top=120, edge_threshold=0.02)))
    return rows


def _graphs(home: Path) -> list[Any]:
    from kb.api import KB
    from kb.config import Config

    with KB.open(Config.load(home=home, env={})) as kb:
        return kb.select()


def time_kb(home: Path, call: Callable[[Any], Any] | None, runs: int) -> list[float]:
    if call is None:
        return []
    from kb.api import KB
    from kb.config import Config

    times = []
    with KB.open(Config.load(home=home, env={})) as kb:
        for _ in range(runs):
            started = time.perf_counter()
            call(kb)
            times.append(time.perf_counter() - started)
    return times


@dataclass(frozen=True)
class Opened:
    """One opening of an address, in seconds by the page's clock: in all, and its phases in turn.

    *scripts*: to the tab's load event (the page and Streamlit's JavaScript loaded and run);
    *run*: from there to the last message of the app's websocket (the connection, the server
    running the page with its kb calls, the transfer); *drawing*: from the last message to the
    page drawn (the browser making and drawing the elements, and loading the code of those it
    had not drawn yet in this tab). *driver*: the same opening as Playwright saw it, from
    ``page.goto`` to its wait for the page drawn returning.
    """

    total: float
    scripts: float
    run: float
    drawing: float
    driver: float


def clocked_context(browser: Any) -> Any:
    """A fresh browser context (nothing cached) whose every tab runs the page clock."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(PAGE_CLOCK)
    return context


def time_open(browser: Any, base: str, address: str, selector: str, runs: int) -> dict[str, list[Opened]]:
    """From navigation to ``address`` to the page drawn: in a fresh browser each time (a first
    visit: no JavaScript cached), and in a new tab of a browser that has been to the app
    (Streamlit's scripts are served as immutable, so a browser keeps them)."""
    out: dict[str, list[Opened]] = {"first visit (fresh browser)": [], "open in a new tab": []}
    for _ in range(runs):
        context = clocked_context(browser)
        out["first visit (fresh browser)"].append(open_once(context, base + address, selector))
        context.close()
    context = clocked_context(browser)
    open_once(context, base + address, selector)  # the browser's first visit, not counted
    for _ in range(runs):
        out["open in a new tab"].append(open_once(context, base + address, selector))
    context.close()
    return out


def open_once(context: Any, address: str, selector: str) -> Opened:
    """Open ``address`` in a new tab of ``context`` (a :func:`clocked_context`) and time it to
    the page drawn, whose main element is ``selector``."""
    page = context.new_page()
    page.add_init_script(f"window.__ckbWant = {json.dumps({'selector': selector, 'title': None})};")
    started = time.perf_counter()
    page.goto(address)
    drawn(page, selector)
    driver = time.perf_counter() - started
    times = page_times(page, since_input=False)
    page.close()
    return Opened(*times, driver)


def time_interactions(browser: Any, base: str, address: str, runs: int) -> dict[str, list[float]]:
    """Select a node by a click, and move the edge threshold one step, on the graph at ``address``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    plot = NODES
    out: dict[str, list[float]] = {"select a node (and expand it)": [], "edge threshold one step": []}
    context = clocked_context(browser)
    page = context.new_page()
    page.goto(base + address)
    drawn(page, plot)
    for run in range(runs):
        points = page.locator(NODES)
        selected = False
        for attempt in range(5):  # a click on the node already selected, or under another, changes nothing: try the next
            target = points.nth((run * 7 + 3 + attempt * 11) % points.count())
            box = target.bounding_box()
            before = page.url
            want(page, plot)
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            try:
                page.wait_for_function(f"() => location.href !== {json.dumps(before)}", timeout=30_000, polling=20)
                selected = True
                break
            except PlaywrightTimeout:
                continue
        if not selected:
            log.warning("no click selected a node; sample skipped")
            continue
        drawn(page, plot)
        out["select a node (and expand it)"].append(page_times(page, since_input=True)[0])

        slider = page.get_by_role("slider").nth(1)
        before = page.url
        want(page, plot)
        slider.press("ArrowRight" if run % 2 == 0 else "ArrowLeft")
        page.wait_for_function(f"() => location.href !== {json.dumps(before)}", timeout=TIMEOUT, polling=20)
        drawn(page, plot)
        out["edge threshold one step"].append(page_times(page, since_input=True)[0])
    context.close()
    return out


def _p(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def run(work: Path, size: int, big_links: int, runs: int) -> list[str]:
    from playwright.sync_api import sync_playwright

    home, big = build_kb(work, size, big_links)
    rows: list[dict[str, Any]] = []
    with serve(home) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for name, address, selector, call in addresses(home, big):
                log.info("opening %s", address)
                kb_times = time_kb(home, call, max(1, runs - 1))
                for measure, opened in time_open(browser, base, address, selector, runs).items():
                    rows.append({"page": name, "measure": measure, "times": [o.total for o in opened], "kb": kb_times, "opened": opened})
            log.info("moving around inside the app")
            for measure, times in time_in_app(browser, base, runs).items():
                rows.append({"page": "in the app", "measure": measure, "times": times, "kb": []})
            for name, address in (("graph", f"/graph?g={quote(_graphs(home)[0].slug)}"), *([("graph, large", f"/graph?g={quote(big)}")] if big else [])):
                for measure, times in time_interactions(browser, base, address, runs).items():
                    rows.append({"page": name, "measure": measure, "times": times, "kb": []})
        finally:
            browser.close()
    return report(size, big_links, runs, rows)


def report(size: int, big_links: int, runs: int, rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "# App: page and interaction latency in a real browser",
        "",
        f"Corpus: {size} generated graphs" + (f" and one large graph of {big_links:,} links" if big_links else "") + f"; {runs} runs each; "
        f"chromium {CHROMIUM}, headless, on this machine ({os.cpu_count()} cores). Produced by `python -m bench.app --size {size} --big-links {big_links} --runs {runs}`.",
        "",
        "*first*: the cold run (empty caches); p50 / p95 over all runs (nearest rank); *kb p50*: the page's main kb call alone, uncached.",
        "A *first visit* starts a fresh browser context, so it includes loading Streamlit's JavaScript without a browser cache; "
        "*open in a new tab* opens the address in a new tab of a browser that has visited the app before (its scripts cached, as Streamlit serves them immutable); "
        "*in the app* rows change page inside one open tab, as a researcher moves around. "
        "The kb column is the query's part, the rest is Streamlit, the transfer and the drawing. "
        "Other processes running on the machine inflate every figure: compare runs made on a quiet machine only.",
        "",
        "*scripts / run / drawing p50*, for the rows that open an address: the medians of its phases, "
        "to the tab's load event (Streamlit's JavaScript loaded and run), from there to the app's last websocket message "
        "(the server's run of the page with its kb calls, and the transfer), and from that message to the page drawn.",
        "",
        "*driver p50*: the same openings as the test driver saw them, from `page.goto` to its wait for the page drawn returning: "
        "later by the time Playwright takes to notice, 0.2-0.4 s in a new tab, where it first compiles its injected script.",
        "",
        "| page | measure | first | p50 | p95 | kb p50 | scripts / run / drawing p50 | driver p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["times"]
        opened = r.get("opened")
        phases = " / ".join(ms(statistics.median(getattr(o, part) for o in opened)) for part in ("scripts", "run", "drawing")) if opened else "-"
        driver = ms(statistics.median(o.driver for o in opened)) if opened else "-"
        kb = ms(statistics.median(r["kb"]) if r["kb"] else None)
        lines.append(f"| {r['page']} | {r['measure']} | {ms(t[0] if t else None)} | {ms(_p(t, 0.5))} | {ms(_p(t, 0.95))} | {kb} | {phases} | {driver} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="generated graphs")
    parser.add_argument("--big-links", type=int, default=16_000_000, help="links of the large graph (0: none)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/circuitkb-bench-app"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    lines = run(args.work, args.size, args.big_links, args.runs)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()

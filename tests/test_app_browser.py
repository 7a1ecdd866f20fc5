"""The app in a real browser (Playwright driving Debian's chromium) on the real graphs.

The walk a researcher takes: search "capital" -> a hit's feature page -> one of its graphs with
that node selected -> compare it with another graph -> the languages of the EN/FR pair. Then
every address from a fresh browser context, an upload on the ingest page, and a hostile label
that must stay text. Screenshots go to $CIRCUITKB_TEST_ARTEFACTS (default: pytest's temporary
folder, printed at the end); they are not committed.

Needs ../shared/data (skipped without it, fails under CI=true) and /usr/bin/chromium
(scripts/test.sh installs it when missing).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from ingest.records import FeatureKey
from kb.api import KB
from kb.config import Config
from kb.featuremeta import add_label
from tests.conftest import GRAPHS, need_real_data, real_graph

# a Streamlit server and Chromium: about two minutes in all
pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<img src=x onerror=alert(1)>"
DRAWING = ".ckb-plot svg.ckb-svg"  # app/plot.js draws each scene as one SVG (Playwright's CSS reaches into its shadow root)
NODES = f"{DRAWING} path.ckb-marker"
LINKS = f"{DRAWING} line.ckb-link"
CELLS = f"{DRAWING} rect.ckb-cell"
FAMILY = "opposite"
LOAD = 180_000  # ms: the first page of a cold server loads the embedding model
FRAMES = 0.5  # s: how late the frame that shows a change may come after the document has it (more than a few frames only on a loaded machine)


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium; scripts/test.sh does it)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1500, "height": 1000}}


def slug_of(prefix: str) -> str:
    return json.loads(real_graph(prefix).read_text())["metadata"]["slug"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app on a KB of the real graphs (02 en and 03 fr one family), served on a free port."""
    need_real_data()
    home = tmp_path_factory.mktemp("browser-home")
    manifest = home / "manifest.csv"
    manifest.write_text(f"slug,family,language\n{slug_of('02')},{FAMILY},en\n{slug_of('03')},{FAMILY},fr\n", encoding="utf-8")
    with KB.open(Config.load(home=home, env={})) as kb:
        report = kb.ingest([GRAPHS], manifest=manifest)
        assert not report.failed, report.failed
        from kb.analysis.graphview import graph_view

        nodes = graph_view(kb, slug_of("02"), top=20).nodes
        row = nodes[nodes["kind"] == "feature"].sort_values("influence").iloc[0]
        tset, layer, index = row["feature"].rsplit("/", 2)
        key = FeatureKey(tset, int(layer.lstrip("L")), int(index))
        add_label(kb, key, HOSTILE, "mallory")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITKB_")} | {"CIRCUITKB_HOME": str(home)}
    log = open(home / "streamlit.log", "w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
            "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise AssertionError(f"the app did not start; see {home / 'streamlit.log'}") from None
                time.sleep(0.5)
        yield {"base": base, "feature": key, "node": row["node_id"], "log": home / "streamlit.log"}
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CIRCUITKB_TEST_ARTEFACTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


@pytest.fixture
def dialogs(page: Page) -> list[str]:
    """Every dialog (alert, confirm) the page opens; none should."""
    opened: list[str] = []

    def on_dialog(dialog: Any) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return opened


def settle(page: Page) -> None:
    """Wait until the app has finished running the page and drawing it (quiet for a second)."""
    page.wait_for_selector("[data-testid=stMain]", timeout=LOAD)
    # elements of the previous run stay on the page, marked stale, until the new run ends
    busy = "[data-testid=stStatusWidget], [data-testid=stSkeleton], [data-testid=stElementContainer][data-stale=true]"
    deadline = time.time() + LOAD / 1000
    quiet = 0
    while quiet < 3:
        assert time.time() < deadline, "the page did not finish drawing"
        page.wait_for_timeout(350)
        quiet = quiet + 1 if page.locator(busy).count() == 0 else 0
    assert page.locator("[data-testid=stException]").count() == 0, page.locator("[data-testid=stException]").first.inner_text()
    errors = page.locator("[data-testid=stAlertContentError]")
    assert errors.count() == 0, errors.first.inner_text()
    assert "Traceback" not in page.locator("[data-testid=stMain]").inner_text()


def shoot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def reachable(page: Page, selector: str, skip: str = "") -> Any:
    """The first item of ``selector`` (other than the node ``skip``) that a click at its centre
    reaches: nodes of a crowded cell overlap, and a person clicks what is on top."""
    page.locator(selector).first.scroll_into_view_if_needed()
    found = page.locator(selector).evaluate_all(
        """(items, skip) => items.findIndex((el) => {
            if (el.dataset.name === skip) return false;
            const box = el.getBoundingClientRect();
            return el.getRootNode().elementFromPoint(box.x + box.width / 2, box.y + box.height / 2) === el;
        })""",
        skip,
    )  # fmt: skip
    assert found >= 0, f"no item of {selector} can be clicked"
    return page.locator(selector).nth(found)


def params(page: Page) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlparse

    return dict(parse_qsl(urlparse(page.url).query))


def path_of(page: Page) -> str:
    from urllib.parse import urlparse

    return urlparse(page.url).path


def test_the_researchers_walk(server: dict[str, Any], page: Page, shots: Path, dialogs: list[str]) -> None:
    page.goto(f"{server['base']}/search")
    settle(page)
    box = page.get_by_label("Concept, words, or a feature id")
    box.fill("capital")
    box.press("Enter")
    settle(page)
    expect(page.get_by_text("features", exact=False).first).to_be_visible()
    shoot(page, shots, "1-search")
    hits = page.locator("[data-testid=stPageLink] a[href*='feature']")
    assert hits.count() >= 5
    assert params(page) == {"q": "capital"}
    hits.first.click()
    settle(page)
    assert path_of(page) == "/feature" and "f" in params(page)
    expect(page.get_by_text("Graphs that contain it")).to_be_visible()
    shoot(page, shots, "2-feature")

    graphs = page.locator("[data-testid=stPageLink] a[href*='graph']")
    assert graphs.count() >= 1
    graphs.first.click()
    settle(page)
    page.wait_for_selector(NODES, timeout=LOAD)
    chosen = params(page)
    assert path_of(page) == "/graph" and chosen.get("g") and chosen.get("node")
    expect(page.get_by_text("Strongest inputs", exact=False)).to_be_visible()
    shoot(page, shots, "3-graph-selected")

    # a click on another node selects it: the address and the panel follow
    assert page.locator(NODES).count() > 20 and page.locator(LINKS).count() > 20
    reachable(page, NODES, skip=chosen["node"]).click()
    page.wait_for_function(f"() => !location.search.includes({json.dumps('node=' + quote(chosen['node']))})", timeout=LOAD)
    settle(page)
    assert params(page).get("node") and params(page)["node"] != chosen["node"]
    clicked = params(page)["node"]
    shoot(page, shots, "4-graph-clicked")

    # the wheel zooms in around the pointer and a double click shows the whole drawing again
    marker, other = page.locator(NODES).nth(page.locator(NODES).count() // 2), page.locator(NODES).first
    before = marker.bounding_box()
    assert before is not None
    wide = _gap(marker, other)
    assert wide > 10, "two distinct nodes to measure the zoom by"
    page.mouse.move(before["x"] + before["width"] / 2, before["y"] + before["height"] / 2)
    page.mouse.wheel(0, -400)
    _until(lambda: _gap(marker, other) > 1.2 * wide, "the wheel zooms in: nodes move apart")
    after = marker.bounding_box()
    assert after is not None and abs(after["x"] - before["x"]) < 3  # the point under the pointer stays put
    frame = page.locator(DRAWING).first.bounding_box()
    assert frame is not None
    page.mouse.dblclick(frame["x"] + 30, frame["y"] + 40)  # in the margin of the layer ticks: nothing to pick there
    _until(lambda: abs(_gap(marker, other) - wide) < 1, "a double click shows the whole drawing again")
    back = marker.bounding_box()
    assert back is not None and abs(back["x"] - before["x"]) < 1 and abs(back["y"] - before["y"]) < 1
    assert "link=" not in page.url and params(page)["node"] == clicked  # neither the wheel nor the double click selected anything

    # a click on a link selects it: its ends and its share of the target's input beside the drawing
    reachable(page, LINKS).click()
    page.wait_for_function("() => location.search.includes('link=')", timeout=LOAD)
    settle(page)
    expect(page.get_by_text("Selected link")).to_be_visible()
    expect(page.get_by_text("of the target's input", exact=False).or_(page.get_by_text("total input", exact=False)).first).to_be_visible()
    shoot(page, shots, "4b-graph-link")

    page.locator("[data-testid=stPageLink] a[href*='compare']").first.click()
    settle(page)
    assert path_of(page) == "/compare" and params(page).get("a") == chosen["g"] and params(page).get("b")
    assert page.locator(DRAWING).count() == 2
    # the side-by-side drawings show tips but take no clicks (a click would only rerun the page)
    assert page.locator(NODES).count() > 20 and page.locator(f"{DRAWING} .ckb-pick").count() == 0
    expect(page.get_by_text("only in A", exact=False).first).to_be_visible()
    shoot(page, shots, "5-compare")

    page.goto(f"{server['base']}/languages?family={FAMILY}")
    settle(page)
    page.wait_for_selector(f"{DRAWING} path", timeout=LOAD)
    expect(page.get_by_text("Shared and language-specific features")).to_be_visible()
    shoot(page, shots, "6-languages")
    assert dialogs == []


def addresses(server: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, address, a text the view shows) for every address of docs/app.md."""
    key = server["feature"]
    feature = f"{key.transcoder_set}/{key.layer}/{key.index}"
    a, b = slug_of("02"), slug_of("03")
    return [
        ("search", "/search?q=capital", "features"),
        ("search-like", f"/search?like={quote(feature, safe='/')}", "Described like"),
        ("feature", f"/feature?f={quote(feature, safe='/')}", "Graphs that contain it"),
        ("graph", f"/graph?g={a}&node={quote(server['node'])}&top=80", "Strongest inputs"),
        ("compare-two", f"/compare?a={a}&b={b}", "only in A"),
        ("compare-many", f"/compare?family={FAMILY}", "clustering order"),
        ("across", f"/across?family={FAMILY}", "graphs chosen"),
        ("languages", f"/languages?family={FAMILY}", "Shared and language-specific features"),
        ("graphs", "/graphs?language=fr", "1 of 9 graphs"),
        ("labels", "/labels", "latest labels"),
        ("ingest", "/ingest", "Graph files"),
    ]


def _gap(one: Any, two: Any) -> float:
    """The distance between the centres of two elements on the screen."""
    a, b = one.bounding_box(), two.bounding_box()
    assert a is not None and b is not None
    return float(((a["x"] + a["width"] / 2 - b["x"] - b["width"] / 2) ** 2 + (a["y"] + a["height"] / 2 - b["y"] - b["height"] / 2) ** 2) ** 0.5)


def _until(done: Any, what: str, timeout: float = 10.0) -> None:
    """Wait until ``done()`` holds (the drawing animates its changes); fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"not seen within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def test_every_address_reopens_its_view_in_a_fresh_browser(server: dict[str, Any], browser: Browser, shots: Path) -> None:
    from urllib.parse import parse_qsl, urlparse

    for name, address, shown in addresses(server):
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        page.goto(server["base"] + address)
        settle(page)
        expect(page.get_by_text(shown, exact=False).first).to_be_visible()
        wanted = dict(parse_qsl(urlparse(address).query))
        assert {k: v for k, v in params(page).items() if k in wanted} == wanted, (name, page.url)
        shoot(page, shots, f"link-{name}")
        context.close()


def test_features_like_this_opens_the_search_by_example(server: dict[str, Any], page: Page, shots: Path) -> None:
    key = server["feature"]
    feature = f"{key.transcoder_set}/{key.layer}/{key.index}"
    page.goto(f"{server['base']}/feature?f={quote(feature, safe='/')}")
    settle(page)
    page.locator("[data-testid=stPageLink] a", has_text="Features like this").click()
    settle(page)
    assert path_of(page) == "/search" and params(page) == {"like": feature}
    expect(page.get_by_text("Described like")).to_be_visible()
    assert page.locator("[data-testid=stPageLink] a[href*='feature']").count() >= 3  # the example and its hits
    shoot(page, shots, "search-like")


def test_a_hostile_label_is_shown_as_text(server: dict[str, Any], page: Page, shots: Path, dialogs: list[str]) -> None:
    key = server["feature"]
    page.goto(f"{server['base']}/feature?f={quote(f'{key.transcoder_set}/{key.layer}/{key.index}', safe='/')}")
    settle(page)
    expect(page.locator("[data-testid=stText]").filter(has_text=HOSTILE).first).to_be_visible()
    assert page.locator("[data-testid=stMain] img[src='x']").count() == 0
    shoot(page, shots, "label-feature")
    page.goto(f"{server['base']}/graph?g={slug_of('02')}&node={quote(server['node'])}")
    settle(page)
    page.wait_for_selector(NODES, timeout=LOAD)
    expect(page.locator("[data-testid=stText]").filter(has_text=HOSTILE).first).to_be_visible()
    # hovering the labelled (selected) node shows the label in the drawing's tip, as text
    page.locator(f"{NODES}[data-name={json.dumps(server['node'])}]").hover(force=True)
    tip = page.locator(".ckb-tip")
    expect(tip).to_be_visible()
    assert HOSTILE in (tip.text_content() or ""), tip.text_content()
    assert page.locator(".ckb-tip img").count() == 0
    assert page.locator("img[src='x']").count() == 0
    shoot(page, shots, "label-graph")
    assert dialogs == []


def test_an_address_written_as_markdown_links_nowhere(server: dict[str, Any], page: Page, shots: Path) -> None:
    crafted = "[Sign in again](http://example.invalid/p) www.example.invalid me@example.invalid"
    page.goto(f"{server['base']}/feature?f={quote(crafted + '/3/999', safe='')}")
    settle(page)
    warning = page.locator("[data-testid=stAlert]").filter(has_text="knows nothing about feature")
    expect(warning).to_be_visible()
    # the text reads as written (bar the invisible spaces that keep autolinks from forming) ...
    assert "[Sign in again](http://example.invalid/p)" in (warning.text_content() or "").replace("\u200b", "")
    # ... and nothing in it is a link or an image
    assert warning.locator("a").count() == 0 and warning.locator("img").count() == 0
    shoot(page, shots, "crafted-feature-address")


def test_uploading_graph_files_reports_each_file(server: dict[str, Any], page: Page, shots: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    doc = json.loads(real_graph("04").read_text())
    doc["metadata"]["slug"] = "broken-upload"
    doc["links"][3]["target"] = "no-such-node"
    broken.write_text(json.dumps(doc))
    page.goto(f"{server['base']}/ingest")
    settle(page)
    page.locator("[data-testid=stFileUploaderDropzoneInput]").first.set_input_files([str(real_graph("04")), str(broken)])
    # both files uploaded (each a chip in the uploader, named in full in its title) before the form is sent
    for name in (real_graph("04").name, broken.name):
        expect(page.locator(f"[data-testid=stFileChipName][title={json.dumps(name)}]")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Ingest").click()
    settle(page)
    metrics = page.locator("[data-testid=stMetric]")
    expect(metrics.filter(has_text="skipped")).to_contain_text("1")
    expect(metrics.filter(has_text="failed")).to_contain_text("1")
    shoot(page, shots, "ingest-report")
    assert re.search(r"broken\.json: links\[3\]\.target", page.locator("[data-testid=stMain]").inner_text())


def test_a_cell_of_the_similarity_matrix_opens_that_pair(server: dict[str, Any], page: Page, shots: Path) -> None:
    page.goto(f"{server['base']}/compare?family={FAMILY}")
    settle(page)
    page.wait_for_selector(CELLS, timeout=LOAD)
    cells = page.locator(CELLS)
    assert cells.count() == 4  # two graphs: a 2 x 2 matrix
    cells.nth(1).click()  # off the diagonal: the two different graphs
    page.wait_for_function("() => location.search.includes('a=')", timeout=LOAD)
    settle(page)
    assert {params(page).get("a"), params(page).get("b")} == {slug_of("02"), slug_of("03")}
    assert page.locator(DRAWING).count() == 2
    shoot(page, shots, "compare-cell-clicked")


def test_the_app_benchmark_times_pages_by_the_page_clock(server: dict[str, Any], browser: Browser) -> None:
    """bench.app reads its times in the page: an opening and a click on the sidebar, each from
    its start to the frame that shows the page drawn, no later than the driver sees it."""
    from bench.app import arrived, clocked_context, drawn, open_once, page_times, want

    context = clocked_context(browser)
    opened = open_once(context, server["base"] + "/graphs", "[data-testid=stDataFrame]")
    # the page's time ends at the frame that shows it drawn, which may come a frame or two after
    # the driver's query has seen the elements in the document
    assert 0 < opened.scripts < opened.total <= opened.driver + FRAMES, opened
    assert opened.run > 0 and opened.drawing > 0, opened
    assert opened.scripts + opened.run + opened.drawing == pytest.approx(opened.total)

    page = context.new_page()
    page.goto(server["base"] + "/")
    drawn(page, "[data-testid=stMetric]")
    want(page, "[data-testid=stTextInput]", "Search features")
    started = time.perf_counter()
    page.locator(f"[data-testid=stSidebarNav] a[href='{server['base']}/search']").click()
    arrived(page, "Search features", "[data-testid=stTextInput]")
    seen = time.perf_counter() - started
    total = page_times(page, since_input=True)[0]
    assert 0 < total <= seen + FRAMES
    context.close()

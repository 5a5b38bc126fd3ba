"""Lecture mode (``make lecture``): the explorers one per page at projector size, served by Voila.

- ``on_projector`` draws an explorer's figure at the projector's dpi (1.5 times the workbook's pixels), marks it
  for the page's style sheet, and leaves the workbook's own sizes alone once switched back;
- every page of lecture/ runs in a kernel and shows its explorer, without an error;
- in headless Chromium, the lecture's index links every lecture page, and on the temperature page (offline:
  every host name but 127.0.0.1 is unresolvable) the equations render and the arrow keys on the tau slider
  change the figure's PNG, with no error or traceback on the page. Screenshots are kept in the test's tmp folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import time
from pathlib import Path

import matplotlib as mpl
import nbformat
import pytest

from simclr_core.teaching import plotting
import torch

from simclr_core.teaching.explorers import augmentation_explorer, batch_size_explorer, temperature_explorer
from simclr_core.teaching.explorers.temperature import TAU_LOG_STEP
from simclr_core.teaching.lecture import CONTROL_ZOOM, PROJECTOR_CSS, lecture_page_config, lecture_pages, on_projector

from .browser_helpers import OFFLINE, chromium, require_browser, voila_server

REPO = Path(__file__).resolve().parent.parent
LECTURE = REPO / "lecture"
PAGES = sorted(LECTURE.glob("*.ipynb"))
ERROR_TEXT = re.compile(r"Traceback|\bError\b|Exception|There was an error")
FIGSIZE_WIDTH_IN = 9.4  # the temperature explorer's figure width (inches)
MIN_FIGURE_TEXT_PX = 26  # a projector figure's smallest text at its own size: >= 24 px shown at >= 92 % of its width
ROOM_PX = 24  # the smallest text legible from the back of a room on a 1920 x 1080 projector


@pytest.fixture
def projector():
    try:
        yield
    finally:
        plotting.use_projector_style(False)


def test_on_projector_draws_at_the_projector_dpi_and_switches_back(projector):
    explorer = on_projector(temperature_explorer, tau=0.2)
    assert "simclr-lecture" in explorer._dom_classes and "simclr-temperature-explorer" in explorer._dom_classes
    assert explorer.state["tau"] == pytest.approx(0.2, rel=0.03)  # the slider's log grid
    scale = plotting.PROJECTOR_SCALE
    assert mpl.rcParams["figure.dpi"] == 100 * scale
    from PIL import Image

    png = Image.open(io.BytesIO(bytes(explorer.plot.widget.value)))
    assert png.width == round(FIGSIZE_WIDTH_IN * 100 * scale)
    assert f"zoom: {CONTROL_ZOOM:g}" in PROJECTOR_CSS
    plotting.use_projector_style(False)
    assert mpl.rcParams["figure.dpi"] == 100 and mpl.rcParams["xtick.labelsize"] == plotting.STYLE["xtick.labelsize"]
    assert Image.open(io.BytesIO(bytes(temperature_explorer().plot.widget.value))).width == round(FIGSIZE_WIDTH_IN * 100)


def _texts_px(figure) -> list[tuple[float, str]]:
    """(size in px at the figure's own dpi, text) of every visible, non-empty text the figure draws."""
    figure.canvas.draw()
    return sorted((t.get_fontsize() * figure.dpi / 72, t.get_text()) for t in figure.findobj(mpl.text.Text)
                  if t.get_visible() and t.get_text().strip() and t.get_window_extent().width > 0)


@pytest.mark.parametrize("make", [lambda: temperature_explorer(), lambda: batch_size_explorer(N=4, D=16),
                                  lambda: augmentation_explorer(images=torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))],
                         ids=["temperature", "batch_size", "augmentation"])
def test_every_text_of_a_projector_figure_is_large_enough_for_the_back_of_a_room(make, projector):
    """At its own size every text of an explorer's projector figure is >= MIN_FIGURE_TEXT_PX, so it stays >= 24 px on
    the page as long as the page shows the figure at >= 24 / MIN_FIGURE_TEXT_PX of its width (the browser test)."""
    plotting.use_projector_style()
    small = [(round(px, 1), t) for px, t in _texts_px(make().plot.figure) if px < MIN_FIGURE_TEXT_PX]
    assert not small, f"texts under {MIN_FIGURE_TEXT_PX} px on the projector: {small[:5]}"
    plotting.use_projector_style(False)
    assert min(px for px, _ in _texts_px(make().plot.figure)) < MIN_FIGURE_TEXT_PX  # the notebooks keep their sizes


def test_the_index_lists_every_page_with_the_titles_of_its_first_heading(tmp_path):
    pages = lecture_pages(LECTURE)
    assert [p.path for p in pages] == [p.name for p in PAGES]
    for page in pages:
        title = nbformat.read(LECTURE / page.path, as_version=4).cells[0].source.splitlines()[0]
        assert title == f"# {page.english} · {page.chinese}"
    # Voila's hook: the folder's pages on its index, nothing added to a notebook's page
    settings = {"contents_manager": type("CM", (), {"root_dir": str(LECTURE)})()}
    assert lecture_page_config({}, settings=settings, notebook_path="")["simclrLecturePages"][0]["chinese"] == pages[0].chinese
    assert lecture_page_config({"x": 1}, settings=settings, notebook_path=pages[0].path) == {"x": 1}
    # a page without a heading, or not JSON, is listed by its file name; a missing folder is an error naming it
    (tmp_path / "b.ipynb").write_text('{"cells": [{"cell_type": "markdown", "source": "no heading"}]}')
    (tmp_path / "a.ipynb").write_text("not json")
    assert [(p.english, p.chinese) for p in lecture_pages(tmp_path)] == [("a", None), ("b", None)]
    with pytest.raises(ValueError, match="missing"):
        lecture_pages(tmp_path / "missing")


def test_there_are_lecture_pages_with_bilingual_titles():
    assert [p.name for p in PAGES] == ["01_temperature.ipynb", "02_batch_size.ipynb", "03_augmentations.ipynb"]
    for path in PAGES:
        nb = nbformat.read(path, as_version=4)
        title = nb.cells[0].source.splitlines()[0]
        assert title.startswith("# ") and " · " in title and re.search(r"[\u4e00-\u9fff]", title), f"{path.name}: {title!r}"
        assert "on_projector(" in nb.cells[-1].source, f"{path.name}: the last cell does not show an explorer on_projector"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", PAGES, ids=[p.name for p in PAGES])
def test_lecture_page_runs_and_shows_its_explorer(path, monkeypatch):
    from nbclient import NotebookClient

    # the kernel (which inherits this environment) imports simclr_core from this checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(LECTURE)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"], outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), f"{path.name}: no widget shown"
    assert any("simclr-lecture-style" in o.get("data", {}).get("text/html", "") for o in outputs), f"{path.name}: no style sheet"


def _png_of(driver, img) -> bytes:
    """The bytes behind an <img> (a blob: URL of the Image widget), read in the page."""
    data_url = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0].src).then(r => r.blob()).then(b => { const f = new FileReader();"
        " f.onload = () => done(f.result); f.readAsDataURL(b); }).catch(e => done('error:' + e));", img)
    assert data_url.startswith("data:"), data_url
    return base64.b64decode(data_url.split(",", 1)[1])


def _wait(condition, timeout: float, what: str, driver, shot: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # not rendered yet, or stale after a re-render
            value = None
        if value:
            return value
        time.sleep(0.25)
    driver.save_screenshot(str(shot))
    body = driver.find_element("css selector", "body").text[-1500:]
    pytest.fail(f"timed out after {timeout} s waiting for {what}; screenshot {shot}; page text:\n{body}")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_voila_temperature_page_slider_changes_the_figure(tmp_path):
    require_browser()
    try:
        import voila  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: the lecture test needs voila (pip install -e '.[lecture]')")
        pytest.skip("voila is not installed (pip install -e '.[lecture]')")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    t0 = time.monotonic()
    with voila_server(LECTURE, tmp_path) as base, chromium(tmp_path, (OFFLINE, "--window-size=1920,1080")) as driver:
        driver.set_script_timeout(20)
        # the landing page: one link per lecture page
        driver.get(f"{base}/")
        names = [p.name for p in PAGES]
        _wait(lambda: [a.get_attribute("href").rsplit("/", 1)[-1] for a in driver.find_elements(By.CSS_SELECTOR, "ol.simclr-lecture-pages a")] == names,
              30, "the landing page to link every lecture page", driver, tmp_path / "landing.png")

        driver.get(f"{base}/voila/render/01_temperature.ipynb")
        root_css = ".simclr-lecture.simclr-temperature-explorer"
        img = _wait(lambda: driver.find_element(By.CSS_SELECTOR, f"{root_css} img.widget-image[src^='blob:']"), 120,
                    "the temperature explorer's figure", driver, tmp_path / "temperature_timeout.png")
        print(f"Voila page with the explorer after {time.monotonic() - t0:.1f} s")
        root = driver.find_element(By.CSS_SELECTOR, root_css)
        tau_of = lambda: float(root.find_element(By.CSS_SELECTOR, ".simclr-tau").get_attribute("data-value"))  # noqa: E731
        assert tau_of() == pytest.approx(0.1)
        # the equations of the page's text, typeset by the MathJax that Voila ships (no CDN can be reached)
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-RenderedMarkdown mjx-container"), 20,
              "the equations to be typeset", driver, tmp_path / "math_timeout.png")
        before_src, before = img.get_attribute("src"), _png_of(driver, img)
        from PIL import Image

        assert Image.open(io.BytesIO(before)).width == round(FIGSIZE_WIDTH_IN * 100 * plotting.PROJECTOR_SCALE)  # projector size
        driver.save_screenshot(str(tmp_path / "lecture_temperature_before.png"))

        # the keyboard on the slider handle, as a lecturer with a clicker or arrow keys would
        handle = root.find_element(By.CSS_SELECTOR, ".noUi-handle")
        driver.execute_script("arguments[0].focus()", handle)
        ActionChains(driver).send_keys(Keys.ARROW_RIGHT * 14).perform()  # 0.1 -> 0.5 (TAU_LOG_STEP)
        _wait(lambda: tau_of() > 0.15, 30, "the kernel to receive a larger tau", driver, tmp_path / "slider_timeout.png")
        new = _wait(lambda: (lambda i: i if i.get_attribute("src") != before_src else None)(
            driver.find_element(By.CSS_SELECTOR, f"{root_css} img.widget-image")), 30, "a new figure", driver, tmp_path / "figure_timeout.png")
        time.sleep(1.0)  # the last coalesced update
        new = driver.find_element(By.CSS_SELECTOR, f"{root_css} img.widget-image")
        after = _png_of(driver, new)
        assert hashlib.sha256(after).digest() != hashlib.sha256(before).digest(), "the figure's PNG did not change"
        assert tau_of() == pytest.approx(10 ** (-1 + 14 * TAU_LOG_STEP), rel=1e-9)  # 14 steps in log10(tau): 0.501

        text = driver.find_element(By.CSS_SELECTOR, "body").text
        assert not ERROR_TEXT.search(text), f"error text on the page: {ERROR_TEXT.search(text).group(0)!r} in\n{text[-1500:]}"
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr'], .jp-OutputArea-output.error")
        shot = tmp_path / "lecture_temperature_after.png"
        driver.save_screenshot(str(shot))
        print(f"tau 0.1 -> {tau_of():.4g}: the figure changed; screenshots in {tmp_path}; {time.monotonic() - t0:.1f} s in all")


# Per page, measured in the browser: how far down the explorer reaches, the figure's shown and own widths, the
# smallest text of the explorer's HTML (font size times the zoom of every ancestor; sub- and superscripts aside, as in
# p_i), and the temperature readout's
# phrases that wrap inside (more than one line box).
MEASURE_JS = """
const root = document.querySelector('.simclr-lecture');
const img = root.querySelector('img.widget-image');
const zoomed = el => { let z = 1; for (let e = el; e; e = e.parentElement) z *= parseFloat(getComputedStyle(e).zoom || 1) || 1;
                       return parseFloat(getComputedStyle(el).fontSize) * z; };
let smallest = [1e9, ''];
for (const el of root.querySelectorAll('*')) {
  const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  const box = el.getBoundingClientRect();
  if (!own || el.closest('sub, sup') || box.width === 0 || box.height === 0 || getComputedStyle(el).display === 'none') continue;
  const px = zoomed(el);
  if (px < smallest[0]) smallest = [px, el.textContent.trim().slice(0, 40)];
}
return {bottom: root.getBoundingClientRect().bottom, right: root.getBoundingClientRect().right,
        shown: img.getBoundingClientRect().width, own: img.naturalWidth, smallest: smallest,
        wrapped: [...root.querySelectorAll('.simclr-phrase')].filter(e => { const r = [...e.getClientRects()].map(r => r.top);
                                                                         return Math.max(...r) - Math.min(...r) > 10; }).map(e => e.textContent),
        viewport: [window.innerWidth, window.innerHeight]};
"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_lecture_page_fits_a_1920x1080_screen_legibly_and_leaving_it_shuts_its_kernel(tmp_path):
    """The index lists the pages by their bilingual titles in large text; each page, opened from it on a 1920 x 1080
    screen (F11: the whole screen is the page), shows its whole explorer without scrolling, the figure at a width
    that keeps its smallest text >= 24 px, every other text of the explorer >= 24 px, and no readout phrase broken
    in two; going back to the index shuts the page's kernel down."""
    require_browser()
    pytest.importorskip("voila")
    from selenium.webdriver.common.by import By

    figure_px = min(plotting.PROJECTOR_STYLE[k] for k in ("xtick.labelsize", "legend.fontsize")) * plotting.PROJECTOR_STYLE["figure.dpi"] / 72
    pages = lecture_pages(LECTURE)
    with voila_server(LECTURE, tmp_path) as base, chromium(tmp_path, (OFFLINE,)) as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
        for k, page in enumerate(pages):
            driver.get(f"{base}/")
            links = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "ol.simclr-lecture-pages a"), 30, "the index", driver, tmp_path / "index.png")
            assert len(links) == len(pages)
            english, chinese = (links[k].find_element(By.CSS_SELECTOR, f".simclr-{lang}") for lang in ("english", "chinese"))
            assert (english.text, chinese.text) == (page.english, page.chinese)
            sizes = [float(e.value_of_css_property("font-size").rstrip("px")) for e in (english, chinese)]
            assert min(sizes) >= ROOM_PX, f"index titles at {sizes} px"
            if k == 0:
                driver.save_screenshot(str(tmp_path / "lecture_index.png"))
            links[k].click()
            _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".simclr-lecture img.widget-image[src^='blob:']"), 120,
                  f"{page.path}'s figure", driver, tmp_path / f"{page.path}_timeout.png")
            time.sleep(1.5)  # the figure's last frame and the page's fonts
            m = driver.execute_script(MEASURE_JS)
            driver.save_screenshot(str(tmp_path / f"lecture_{Path(page.path).stem}.png"))
            shown_px = figure_px * m["shown"] / m["own"]
            print(f"{page.path}: explorer bottom {m['bottom']:.0f} px, right {m['right']:.0f} px; figure {m['shown']:.0f} of "
                  f"{m['own']} px, smallest figure text {shown_px:.1f} px; smallest other text {m['smallest'][0]:.1f} px "
                  f"({m['smallest'][1]!r})")
            assert m["viewport"] == [1920, 1080]
            assert m["bottom"] <= 1080 and m["right"] <= 1920, f"{page.path}: the explorer runs off the screen: {m}"
            assert shown_px >= ROOM_PX, f"{page.path}: the figure is shown at {m['shown']:.0f} of {m['own']} px: text {shown_px:.1f} px"
            assert m["smallest"][0] >= ROOM_PX - 0.5, f"{page.path}: text at {m['smallest'][0]:.1f} px: {m['smallest'][1]!r}"
            assert not m["wrapped"], f"{page.path}: readout phrases broken across lines: {m['wrapped']}"
        driver.get(f"{base}/")
        log = tmp_path / "voila.log"
        _wait(lambda: len(re.findall(r"Kernel shutdown: ", log.read_text())) == len(pages), 30,
              "every page's kernel to shut down once its page was left", driver, tmp_path / "shutdown_timeout.png")
        assert len(re.findall(r"Kernel started: ", log.read_text())) == len(pages)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_kernel_no_page_is_connected_to_is_culled(tmp_path):
    """A page whose browser went away without saying so (no beforeunload: the laptop slept, the browser was killed)
    leaves a kernel no websocket is connected to; the lecture's Voila settings cull it once idle. Fetched without a
    browser, the page's kernel is never connected: with the idle timeout shortened here it goes within seconds."""
    pytest.importorskip("voila")
    import urllib.request

    args = ("--MappingKernelManager.cull_idle_timeout=3", "--MappingKernelManager.cull_interval=1")
    with voila_server(LECTURE, tmp_path, extra_args=args) as base:
        with urllib.request.urlopen(f"{base}/voila/render/{PAGES[0].name}", timeout=120) as r:
            r.read()  # the whole page: the notebook ran in its kernel
        log = tmp_path / "voila.log"
        assert "Culling kernels with idle durations > 3 seconds" in log.read_text()
        deadline = time.monotonic() + 60
        while not re.search(r"Culling '\w+' kernel", log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.5)
        started = re.findall(r"Kernel started: (\S+)", log.read_text())
        assert len(started) == 1 and re.search(r"Culling '\w+' kernel", log.read_text()), log.read_text()[-2000:]
    # without the shortened timeout the lecture's settings cull after 5 minutes idle, and never a page still open
    config = (LECTURE / "config" / "voila.py").read_text()
    assert "c.MappingKernelManager.cull_idle_timeout = 300" in config and "c.MappingKernelManager.cull_connected = False" in config

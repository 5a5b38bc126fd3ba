"""The rendered workbook site: built in smoke mode, then every page opened in headless Chromium.

One smoke build (``scripts/build_site.py --smoke``: every notebook executed on tiny data, two at a time, about 1.5
minutes on 2 cores) is shared by the tests below and by the notebook tests of 05-09 (``conftest.smoke_site``;
``SIMCLR_SITE_BUILD=build/site`` checks a full build instead). The browser test serves the HTML over a localhost HTTP server and opens
every page listed in ``build_info.json``; on each it checks that

- the page rendered (a title and body text; Chinese headings present where the notebook has them),
- every figure the executed notebook holds is an image that loaded (naturalWidth > 0), and a notebook that
  draws anything shows at least one,
- no cell output is a traceback or an error on stderr, and no displayed Markdown table is left as raw text,
- every equation was typeset by MathJax (an ``mjx-container``, no TeX error), although no host but 127.0.0.1
  can be reached: the pages load MathJax from the site itself (``sphinx-mathjax-offline``), never from a CDN,
- a screenshot is not blank (enough non-background pixels, more than a few colours).

The landing page must link to every notebook and problem set, and the explorers must appear as snapshots
with their figure and the "how to run it live" line. Screenshots are kept in the test's tmp folder (printed).
"""

from __future__ import annotations

import functools
from collections import Counter
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from .browser_helpers import OFFLINE, chromium, free_port, require_browser

REPO = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u4e00-\u9fff]")
DRAWS = re.compile(r"\bplt\.|\.imshow\(|_explorer\(|\.savefig\(|subplots\(")
ERROR_WORDS = re.compile(r"Traceback \(most recent call last\)|\bError\b|Exception")
REMOTE_MATHJAX = re.compile(r"""(?:https?:)?//[^"'\s>]*mathjax""", re.IGNORECASE)
RAW_TABLE = re.compile(r"\|\s*:?(?:-{3,}|[\u2013\u2014]+):?\s*\|")  # a table's delimiter row, | --- |, after smart dashes
SCRIPT_SRC = re.compile(r"""<script\b[^>]*\bsrc=["']([^"']+)["']""", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(smoke_site) -> Path:
    """The session's smoke build of the site (``conftest.smoke_site``): html/, jupyter_execute/, src/."""
    return smoke_site


def figure_outputs(executed: Path) -> int:
    """How many images the executed notebook's outputs hold (matplotlib figures and explorer snapshots)."""
    nb = nbformat.read(executed, as_version=4)
    count = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data or "image/svg+xml" in data:
                count += 1
            elif "simclr-explorer-snapshot" in data.get("text/html", ""):
                count += data["text/html"].count("<img")
    return count


@pytest.mark.slow
def test_site_builds_every_notebook_and_problem_set(site):
    info = json.loads((site / "html" / "build_info.json").read_text())
    assert info["mode"] == "smoke" or os.environ.get("SIMCLR_SITE_BUILD"), info["mode"]
    expected = {f"notebooks/{p.stem}.html" for p in (REPO / "notebooks").glob("*.ipynb")}
    expected |= {f"exercises/{p.parent.name}/{p.stem}.html" for p in (REPO / "exercises").glob("*/*.ipynb")}
    assert expected <= set(info["pages"]), f"pages missing from the build: {sorted(expected - set(info['pages']))}"
    for page in info["pages"]:
        assert (site / "html" / page).is_file(), f"{page} was not written"
    # the problem sets are the student versions: no solution or hidden test made it into the site
    for p in (REPO / "exercises").glob("*/*.ipynb"):
        text = (site / "html" / "exercises" / p.parent.name / f"{p.stem}.html").read_text()
        assert "NotImplementedError" in text, f"{p.name}: the page does not show the unanswered student version"
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, f"{p.name}: solution markers on the page"
    for p in (REPO / "notebooks").glob("*.ipynb"):
        executed = site / "jupyter_execute" / "notebooks" / p.name
        assert executed.is_file(), f"{p.name} was not executed"
        if DRAWS.search(p.read_text()):
            assert figure_outputs(executed) > 0, f"{p.name} draws figures, but its executed copy holds none (inline backend off?)"


@pytest.mark.slow
def test_pages_load_mathjax_from_the_site_itself(site):
    html = site / "html"
    with_math = 0
    for page in sorted(html.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        remote = REMOTE_MATHJAX.findall(text)
        assert not remote, f"{page.relative_to(html)} references MathJax on another host: {remote[:3]}"
        mathjax = [src for src in SCRIPT_SRC.findall(text) if "mathjax" in src.lower()]
        if 'class="math notranslate' in text:
            with_math += 1
            assert mathjax, f"{page.relative_to(html)} has equations but loads no MathJax"
        for src in mathjax:
            assert (page.parent / src.split("?")[0]).resolve().is_file(), f"{page.relative_to(html)}: {src} is not in the site"
    assert with_math > 0, "no page of the site has an equation: the check above checked nothing"
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir(), "MathJax's fonts were not copied"


def typeset_problems(driver) -> list[str]:
    """Wait for MathJax to finish, then list the page's equations that it did not typeset, or typeset with an error."""
    done = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;"
        "const t0 = Date.now(); (function wait() {"
        "  if (ready()) { MathJax.startup.promise.then(() => done('ok'), e => done('error: ' + e)); }"
        "  else if (Date.now() - t0 > 15000) { done('MathJax did not load'); } else { setTimeout(wait, 100); } })();")
    if done != "ok":
        return [done]
    problems = driver.execute_script(
        "return Array.from(document.querySelectorAll('span.math, div.math'))"
        ".filter(e => !e.querySelector('mjx-container') || e.querySelector('mjx-merror'))"
        ".map(e => e.textContent.slice(0, 80));")
    return [f"not typeset: {p!r}" for p in problems]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test prints its own summary
        pass


def serve(directory: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(_QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def blank_reason(png: Path) -> str | None:
    """Why a screenshot counts as blank, or None: under 2 % of pixels away from the background, or <= 8 colours."""
    from PIL import Image

    img = Image.open(png).convert("RGB").resize((350, 275))
    counts = Counter({colour: n for n, colour in img.getcolors(maxcolors=img.width * img.height)})
    background = counts.most_common(1)[0][0]
    off = sum(n for p, n in counts.items() if sum(abs(a - b) for a, b in zip(p, background)) > 60) / img.width / img.height
    colours = len(counts)
    if off < 0.02 or colours <= 8:
        return f"{off:.1%} of the pixels differ from the background, {colours} colours"
    return None


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_page_shows_its_figures_and_no_error(site, tmp_path):
    require_browser()
    from selenium.webdriver.common.by import By

    html = site / "html"
    info = json.loads((html / "build_info.json").read_text())
    shots = tmp_path / "screenshots"
    shots.mkdir()
    server = serve(html)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    problems: list[str] = []
    try:
        # offline: no host but 127.0.0.1 resolves, so anything the pages still fetch from elsewhere fails to load
        with chromium(tmp_path, (OFFLINE,)) as driver:
            driver.set_script_timeout(30)
            typeset = 0
            for page in info["pages"]:
                t0 = time.monotonic()
                driver.get(f"{base}/{page}")
                driver.execute_script("return document.fonts.ready")
                title = driver.title
                body = driver.find_element(By.CSS_SELECTOR, "article, main, body").text
                if not title or "404" in title or len(body) < 200:
                    problems.append(f"{page}: not rendered (title {title!r}, {len(body)} characters of text)")
                    continue
                source = (site / "src" / page).with_suffix(".ipynb")
                if source.exists() and CJK.search(source.read_text()) and not CJK.search(body):
                    problems.append(f"{page}: the notebook has Chinese text, the page shows none")

                # figures: every image the executed notebook holds, loaded
                imgs = driver.find_elements(By.CSS_SELECTOR, ".cell_output img")
                broken = [i.get_attribute("src")[:80] for i in imgs if not driver.execute_script(
                    "return arguments[0].complete && arguments[0].naturalWidth > 0", i)]
                if broken:
                    problems.append(f"{page}: {len(broken)} images did not load: {broken[:3]}")
                executed = site / "jupyter_execute" / Path(page).with_suffix(".ipynb")
                if page.startswith("notebooks/") and executed.exists():
                    want = figure_outputs(executed)
                    if len(imgs) != want:
                        problems.append(f"{page}: {len(imgs)} figures on the page, the executed notebook has {want}")

                # no error output
                for out in driver.find_elements(By.CSS_SELECTOR, ".cell_output .traceback, .cell_output .stderr, .cell_output .output.error"):
                    if "traceback" in (out.get_attribute("class") or "") or ERROR_WORDS.search(out.text):
                        problems.append(f"{page}: error output on the page: {out.text[:300]!r}")
                for out in driver.find_elements(By.CSS_SELECTOR, ".cell_output"):
                    if "Traceback (most recent call last)" in out.text:
                        problems.append(f"{page}: a traceback in a cell output: {out.text[:300]!r}")
                    if RAW_TABLE.search(out.text):  # a displayed Markdown table left as text
                        problems.append(f"{page}: a table shown as raw Markdown: {out.text[:200]!r}")

                # equations: typeset by the site's own MathJax
                if driver.find_elements(By.CSS_SELECTOR, "span.math, div.math"):
                    problems.extend(f"{page}: equation {p}" for p in typeset_problems(driver))
                    typeset += 1

                shot = shots / (page.replace("/", "__").removesuffix(".html") + ".png")
                driver.save_screenshot(str(shot))
                if reason := blank_reason(shot):
                    problems.append(f"{page}: the screenshot looks blank ({reason}): {shot}")
                print(f"{page}: {len(imgs)} figures, {time.monotonic() - t0:.1f} s")

            if not typeset:
                problems.append("no page showed an equation to typeset")

            # the landing page links to every notebook and problem set
            driver.get(f"{base}/index.html")
            hrefs = {a.get_attribute("href").split("#")[0].removeprefix(base + "/") for a in driver.find_elements(By.CSS_SELECTOR, "article a[href]")}
            missing = [p for p in info["pages"] if p.startswith(("notebooks/", "exercises/")) and p not in hrefs]
            if missing:
                problems.append(f"index.html: the workbook map does not link to {missing}")

            # the explorers: a snapshot with its figure and the line on how to run it live
            for page in ("notebooks/02_temperature.html", "notebooks/03_batch_size.html", "notebooks/04_augmentations.html"):
                if page not in info["pages"]:
                    continue
                driver.get(f"{base}/{page}")
                snaps = driver.find_elements(By.CSS_SELECTOR, ".simclr-explorer-snapshot")
                if not snaps:
                    problems.append(f"{page}: no explorer snapshot")
                    continue
                driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", snaps[0])
                time.sleep(0.3)
                snaps[0].screenshot(str(shots / (Path(page).stem + "__explorer.png")))
                if "make lab" not in snaps[0].text or not snaps[0].find_elements(By.CSS_SELECTOR, "img.simclr-snapshot-figure"):
                    problems.append(f"{page}: the snapshot lacks its figure or the line on running it live")
    finally:
        server.shutdown()
    print(f"screenshots: {shots}")
    assert not problems, "\n".join(problems)

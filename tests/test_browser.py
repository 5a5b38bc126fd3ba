"""The temperature explorer in a real browser: JupyterLab 4 + headless Chromium (selenium).

Starts JupyterLab on a free localhost port with a temporary token and a temporary copy of notebooks/,
opens 02_temperature.ipynb (falls back to a one-cell notebook when that notebook does not call the
explorer), runs all cells from the Run menu, then moves the temperature slider twice, once through the
slider's text box (typing 0.5) and once with the arrow keys on the slider handle, and checks that
the loss shown in the page is the one ``simclr_core.loss.info_nce_from_similarity`` gives for the
tau the kernel received (and that this tau is where the slider's log grid puts it). A screenshot of the widget is saved and its path printed.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from simclr_core.loss import info_nce_from_similarity
from simclr_core.seed import SEED_POSITIVES, SEED_S

from .browser_helpers import chromium, jupyterlab_server, require_browser

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = "02_temperature.ipynb"
FALLBACK = "explorer_check.ipynb"


def expected_loss(tau: float) -> float:
    return float(info_nce_from_similarity(SEED_S, SEED_POSITIVES, tau).mean())


def notebook_under_test(nb_dir: Path) -> str:
    """02_temperature.ipynb if it shows the explorer, else a minimal notebook written into nb_dir."""
    real = nb_dir / NOTEBOOK
    if real.exists() and "temperature_explorer(" in real.read_text():
        return NOTEBOOK
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from simclr_core.explorers import temperature_explorer\n\ntemperature_explorer()")]
    nbformat.write(nb, nb_dir / FALLBACK)
    return FALLBACK


def wait_for(condition, timeout: float, what: str, driver=None, poll: float = 0.25):
    """Poll ``condition()`` until it returns something truthy; fail with ``what`` (and page errors) otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # element not there yet, stale after a re-render, ...
            value = None
        if value:
            return value
        time.sleep(poll)
    errors = ""
    if driver is not None:
        errors = "\n".join(e.text[:500] for e in driver.find_elements("css selector", '[data-mime-type="application/vnd.jupyter.stderr"]'))
    pytest.fail(f"timed out after {timeout} s waiting for {what}" + (f"\nerrors in the notebook:\n{errors}" if errors else ""))


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_temperature_slider_updates_loss_in_jupyterlab(tmp_path):
    require_browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    nb_dir = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", nb_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    name = notebook_under_test(nb_dir)
    print(f"notebook under test: {name}")
    t0 = time.monotonic()
    with jupyterlab_server(nb_dir, tmp_path) as (base, token), chromium(tmp_path) as driver:
        driver.get(f"{base}/lab/tree/{name}?token={token}")
        wait_for(lambda: driver.find_elements(By.XPATH, "//*[contains(@class,'jp-StatusBar')]//*[contains(text(),'Idle')]"),
                 60, "the kernel to start (status bar 'Idle')")
        print(f"JupyterLab + kernel ready after {time.monotonic() - t0:.1f} s")

        # Run > Run All Cells, from the menu bar like a student would
        driver.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
        wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "li[data-command='runmenu:run-all']"), 10, "the Run menu").click()

        explorer = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".simclr-temperature-explorer"), 90,
                            "the temperature explorer to render", driver)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", explorer)

        def shown_loss() -> str:
            return explorer.find_element(By.CSS_SELECTOR, ".simclr-batch-loss").text

        def shown_tau() -> float:
            return float(explorer.find_element(By.CSS_SELECTOR, ".simclr-tau").get_attribute("data-value"))

        assert float(wait_for(shown_loss, 10, "the loss")) == pytest.approx(expected_loss(0.1), abs=5e-5)

        # 1. type a temperature into the slider's text box; the log slider snaps it to its grid of
        #    exponents (step 0.01: 0.5 -> 10**-0.30 = 0.5012), so the expected loss is taken at the tau
        #    the kernel received, which the widget reports in data-value
        readout = explorer.find_element(By.CSS_SELECTOR, ".widget-readout")
        readout.click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys("0.5" + Keys.ENTER).perform()
        tau = wait_for(lambda: shown_tau() != 0.1 and shown_tau(), 20, "the kernel to receive the typed tau", driver)
        assert tau == pytest.approx(10**-0.3, rel=1e-9)
        target = f"{expected_loss(tau):.4f}"
        wait_for(lambda: shown_loss() == target, 20, f"the shown loss to become {target} (tau = {tau})", driver)
        print(f"typed 0.5, kernel got tau = {tau!r}; shown loss {shown_loss()} = library loss {expected_loss(tau):.6f}")

        # 2. the keyboard on the slider handle: three steps up the log scale
        handle = explorer.find_element(By.CSS_SELECTOR, ".noUi-handle")
        driver.execute_script("arguments[0].focus()", handle)
        ActionChains(driver).send_keys(Keys.ARROW_RIGHT * 3).perform()
        wait_for(lambda: shown_tau() > 0.52, 20, "tau to grow after the arrow keys", driver)
        time.sleep(1.0)  # let the last coalesced update arrive
        tau = shown_tau()
        target = f"{expected_loss(tau):.4f}"
        wait_for(lambda: shown_loss() == target, 20, f"the shown loss to become {target} (tau = {tau})", driver)
        assert tau == pytest.approx(10**-0.27, rel=1e-9)  # three steps of 0.01 in log10(tau)
        assert math.isclose(float(readout.text), tau, rel_tol=5e-3)  # the readout shows 3 significant digits
        print(f"arrow keys moved tau to {tau:.5g}; shown loss {shown_loss()} = library loss {expected_loss(tau):.6f}")

        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", explorer)
        time.sleep(0.5)
        shot = tmp_path / "temperature_explorer_jupyterlab.png"
        explorer.screenshot(str(shot))
        page = tmp_path / "jupyterlab_page.png"
        driver.save_screenshot(str(page))
        print(f"screenshots: {shot} and {page}; browser part took {time.monotonic() - t0:.1f} s")

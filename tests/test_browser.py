"""The temperature explorer in a real browser: JupyterLab 4 and Notebook 7 in headless Chromium (selenium).

Starts JupyterLab on a free localhost port with a temporary token and a temporary copy of notebooks/,
opens 02_temperature.ipynb (falls back to a one-cell notebook when that notebook does not call the
explorer), runs all cells from the Run menu, then moves the temperature slider twice, once through the
slider's text box (typing 0.5) and once with the arrow keys on the slider handle, and checks that
the loss shown in the page is the one ``simclr_core.nn.loss.info_nce_from_similarity`` gives for the
tau the kernel received (and that this tau is where the slider's log grid puts it). Then the same
notebook in Notebook 7 (same server, new tab): run all, type a tau, check the loss. The browser is offline (no host
but 127.0.0.1 resolves), and the notebook's equations must be typeset all the same, by the MathJax that JupyterLab
ships. Screenshots of the widget are saved and their paths printed.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from simclr_core.nn.loss import info_nce_from_similarity
from simclr_core.teaching.sheet import SEED_POSITIVES, SEED_S

from .browser_helpers import OFFLINE, chromium, jupyterlab_server, require_browser

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
    nb.cells = [nbformat.v4.new_code_cell("from simclr_core.teaching.explorers import temperature_explorer\n\ntemperature_explorer()")]
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
        shot = Path(tempfile.gettempdir()) / f"simclr_browser_failure_{int(time.time())}.png"
        driver.save_screenshot(str(shot))
        errors += f"\nscreenshot of the page: {shot}"
    pytest.fail(f"timed out after {timeout} s waiting for {what}" + (f"\n{errors}" if errors else ""))


def kernel_idle(driver) -> bool:
    """The page shows a started, idle kernel: JupyterLab's status bar says 'Idle' (its execution indicator
    can read idle before a kernel is attached); Notebook 7, which has no status bar, has the notebook
    toolbar's execution indicator at idle."""
    from selenium.webdriver.common.by import By

    if driver.find_elements(By.CSS_SELECTOR, "#jp-main-statusbar, .jp-StatusBar-Widget"):
        return bool(driver.find_elements(By.XPATH, "//*[contains(@class,'jp-StatusBar')]//*[contains(text(),'| Idle')]"))
    return bool(driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"))


def open_dialog_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return " | ".join(d.text for d in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog") if d.is_displayed())


def run_all_cells(driver, attempts: int = 4, wait: float = 90) -> None:
    """Run > Run All Cells from the menu bar, like a student would (JupyterLab 4 and Notebook 7 share it),
    and wait for the explorer. A click that lands before the page has wired the notebook to its kernel
    queues nothing (every prompt stays "[ ]:"); then the click is repeated after a few seconds."""
    from selenium.webdriver.common.by import By

    def prompts() -> list[str]:
        return [p.text.strip() for p in driver.find_elements(By.CSS_SELECTOR, ".jp-InputPrompt")]

    for attempt in range(attempts):
        wait_for(lambda: kernel_idle(driver), 60, "the kernel to be idle", driver)
        before = prompts()
        wait_for(lambda: driver.find_element(By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']"), 30,
                 "the menu bar", driver).click()
        wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "li[data-command='runmenu:run-all']"), 10, "the Run menu", driver).click()
        start = time.monotonic()
        while time.monotonic() - start < wait:
            if driver.find_elements(By.CSS_SELECTOR, ".simclr-temperature-explorer"):
                return
            if open_dialog_text(driver):
                pytest.fail(f"a dialog opened after Run All: {open_dialog_text(driver)!r}")
            if time.monotonic() - start > 5 and prompts() == before:
                break  # nothing was queued: click again
            time.sleep(0.5)
        print(f"Run All attempt {attempt + 1}: nothing ran (prompts {prompts()}), clicking again")
    pytest.fail(f"Run All did not produce the explorer after {attempts} attempts")


class ExplorerPage:
    """The temperature explorer as rendered in the page: what it shows, and its slider."""

    def __init__(self, driver, timeout: float = 90):
        from selenium.webdriver.common.by import By

        self.driver, self.By = driver, By
        self.root = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".simclr-temperature-explorer"), timeout,
                             "the temperature explorer to render", driver)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", self.root)
        self.readout = self.root.find_element(By.CSS_SELECTOR, ".widget-readout")

    def image_src(self) -> str:  # the figure's blob URL: a new one for every re-rendered PNG
        return self.root.find_element(self.By.CSS_SELECTOR, "img").get_attribute("src")

    def loss(self) -> str:
        return self.root.find_element(self.By.CSS_SELECTOR, ".simclr-batch-loss").text

    def tau(self) -> float:  # the exact tau the kernel computed with
        return float(self.root.find_element(self.By.CSS_SELECTOR, ".simclr-tau").get_attribute("data-value"))

    def type_tau(self, text: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        self.readout.click()
        ActionChains(self.driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(text + Keys.ENTER).perform()

    def press_on_handle(self, keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        self.driver.execute_script("arguments[0].focus()", self.root.find_element(self.By.CSS_SELECTOR, ".noUi-handle"))
        ActionChains(self.driver).send_keys(keys).perform()

    def expect_loss_at_kernel_tau(self) -> float:
        """Wait until the shown loss is the library's loss at the tau the kernel reports; return that tau."""
        tau = self.tau()
        target = f"{expected_loss(tau):.4f}"
        wait_for(lambda: self.loss() == target, 20, f"the shown loss to become {target} (tau = {tau})", self.driver)
        return tau


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_temperature_slider_updates_loss_in_jupyterlab_and_notebook7(tmp_path):
    require_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    nb_dir = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", nb_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    name = notebook_under_test(nb_dir)
    print(f"notebook under test: {name}")
    t0 = time.monotonic()
    # offline: JupyterLab, its widgets and its MathJax come from the local server alone
    with jupyterlab_server(nb_dir, tmp_path) as (base, token), chromium(tmp_path, (OFFLINE,)) as driver:
        # ---- JupyterLab 4
        driver.get(f"{base}/lab/tree/{name}?token={token}")
        wait_for(lambda: kernel_idle(driver), 60, "the kernel to start", driver)
        print(f"JupyterLab + kernel ready after {time.monotonic() - t0:.1f} s")
        run_all_cells(driver)
        page = ExplorerPage(driver)
        assert float(wait_for(page.loss, 10, "the loss")) == pytest.approx(expected_loss(0.1), abs=5e-5)
        if name == NOTEBOOK:  # its text has equations: typeset by the MathJax that JupyterLab ships
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-RenderedMarkdown mjx-container"), 20,
                     "the notebook's equations to be typeset", driver)
        first_image = page.image_src()

        # 1. type a temperature into the slider's text box; the log slider snaps it to its grid of
        #    exponents (step 0.05: 0.5 -> 10**-0.30 = 0.5012), so the expected loss is taken at the tau
        #    the kernel received, which the widget reports in data-value
        page.type_tau("0.5")
        wait_for(lambda: page.tau() != 0.1, 20, "the kernel to receive the typed tau", driver)
        tau = page.expect_loss_at_kernel_tau()
        assert tau == pytest.approx(10**-0.3, rel=1e-9)
        assert page.image_src() != first_image  # the figure was redrawn too (it is sent before the numbers)
        print(f"typed 0.5, kernel got tau = {tau!r}; shown loss {page.loss()} = library loss {expected_loss(tau):.6f}")

        # 2. the keyboard on the slider handle: three steps up the log scale
        page.press_on_handle(Keys.ARROW_RIGHT * 3)
        wait_for(lambda: page.tau() > 0.52, 20, "tau to grow after the arrow keys", driver)
        time.sleep(1.0)  # let the last coalesced update arrive
        tau = page.expect_loss_at_kernel_tau()
        assert tau == pytest.approx(10**-0.15, rel=1e-9)  # three steps of 0.05 in log10(tau)
        assert math.isclose(float(page.readout.text), tau, rel_tol=5e-3)  # the readout shows 3 significant digits
        print(f"arrow keys moved tau to {tau:.5g}; shown loss {page.loss()} = library loss {expected_loss(tau):.6f}")

        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", page.root)
        time.sleep(0.5)
        shot = tmp_path / "temperature_explorer_jupyterlab.png"
        page.root.screenshot(str(shot))
        full = tmp_path / "jupyterlab_page.png"
        driver.save_screenshot(str(full))
        print(f"screenshots: {shot} and {full}; JupyterLab part took {time.monotonic() - t0:.1f} s")

        # ---- Notebook 7, same server and kernel, in a new tab
        t1 = time.monotonic()
        driver.switch_to.new_window("tab")
        driver.get(f"{base}/notebooks/{name}?token={token}")
        run_all_cells(driver)
        page = ExplorerPage(driver)
        first_image = page.image_src()
        page.type_tau("2")
        wait_for(lambda: page.tau() > 1.9, 20, "the kernel to receive tau = 2 (Notebook 7)", driver)
        tau = page.expect_loss_at_kernel_tau()
        assert tau == pytest.approx(10**0.3, rel=1e-9)
        assert page.image_src() != first_image
        shot7 = tmp_path / "temperature_explorer_notebook7.png"
        page.root.screenshot(str(shot7))
        print(f"Notebook 7: typed 2, kernel got tau = {tau!r}, shown loss {page.loss()}; screenshot {shot7}; "
              f"took {time.monotonic() - t1:.1f} s")

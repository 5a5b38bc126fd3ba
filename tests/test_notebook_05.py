"""Notebook 05 runs top to bottom in smoke mode (SIMCLR_SMOKE=1: a tiny CIFAR-format folder, seconds), and its\nreadable training loop is the library's Trainer."""

from pathlib import Path

import nbformat
import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks" / "05_cifar10_pretrain_probe.ipynb"


@pytest.mark.slow
def test_notebook_05_smoke(smoke_executed):
    nb = smoke_executed(NB.stem)  # executed by the session's smoke build of the site (conftest.smoke_site)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "smoke mode: True" in text
    assert "epoch 2: loss" in text
    for name in ("SimCLR", "random init", "raw pixels"):
        assert name in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # views, curves, bar chart


def _notebook_namespace() -> dict:
    """The names notebook 05 defines in its setup cell and its training-loop cell (run in this process)."""
    nb = nbformat.read(NB, as_version=4)
    setup = nb.cells[1].source
    loop = next(c.source for c in nb.cells if c.cell_type == "code" and "def train_simclr(" in c.source)
    ns: dict = {}
    exec(compile(setup, "notebook-05-setup", "exec"), ns)  # noqa: S102 -- the notebook's own code, under test
    exec(compile(loop, "notebook-05-loop", "exec"), ns)  # noqa: S102
    return ns


def test_notebook_loop_equals_the_library_trainer(cifar_root):
    """The readable loop of notebook 05 and the library's Trainer, same recipe and seed, on the CPU: identical
    weights (bit for bit) after a few steps, a partial last epoch included."""
    from simclr_core.data.datasets import load_dataset
    from simclr_core.train.config import RunOptions, preset
    from simclr_core.train.runs import pretrain, run_precision
    from tests.trainer_helpers import assert_same_weights

    ns = _notebook_namespace()
    recipe = preset("cpu", "cifar10", widths=(8, 16), proj_dim=16, epochs=2, batch_size=50, warmup_epochs=0.5,
                    max_steps=6, minutes=None, monitor_train=100, monitor_test=60, knn_k=20, seed=3)
    train, test = load_dataset("cifar10", cifar_root, train=True), load_dataset("cifar10", cifar_root, train=False)
    precision = run_precision(recipe, "cpu")
    model_nb, hist_nb = ns["train_simclr"](recipe, train, test, precision, progress=False)
    lib = pretrain(recipe, RunOptions(device="cpu", progress=False), train, test)
    assert [h["epoch"] for h in hist_nb] == [h["epoch"] for h in lib.history] == [0, 1]
    assert_same_weights(model_nb, lib.model, " (notebook loop vs Trainer)")
    assert [h["loss"] for h in hist_nb] == pytest.approx([h["loss"] for h in lib.history], rel=1e-6)

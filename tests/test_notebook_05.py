"""Notebook 05 runs top to bottom in smoke mode (SIMCLR_SMOKE=1: a tiny CIFAR-format folder, seconds)."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB = Path(__file__).resolve().parents[1] / "notebooks" / "05_cifar10_pretrain_probe.ipynb"


@pytest.mark.slow
def test_notebook_05_smoke(monkeypatch):
    monkeypatch.setenv("SIMCLR_SMOKE", "1")
    nb = nbformat.read(NB, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NB.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "smoke mode: True" in text
    assert "epoch 2: loss" in text
    for name in ("SimCLR", "random init", "raw pixels"):
        assert name in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # views, curves, bar chart

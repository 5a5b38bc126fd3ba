"""Committed notebooks stay clean: no outputs, and exactly the metadata a kernel writes on start.

One test per notebook (notebooks/*.ipynb and the lecture pages, lecture/*.ipynb), so a notebook that still needs
``python scripts/normalize_notebooks.py`` is named in the failure; and one that asks a real kernel what it
writes, so the script's stored values cannot drift from ipykernel's.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb")) + sorted((REPO / "lecture").glob("*.ipynb"))

spec = importlib.util.spec_from_file_location("normalize_notebooks", REPO / "scripts" / "normalize_notebooks.py")
normalize_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(normalize_notebooks)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_is_output_free_with_kernel_metadata(path):
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    with_outputs = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not with_outputs, f"{path.name}: code cells {with_outputs} hold outputs or execution counts"
    assert nb["metadata"].get("kernelspec") == normalize_notebooks.KERNELSPEC, f"{path.name}: kernelspec {nb['metadata'].get('kernelspec')}"
    assert nb["metadata"].get("language_info") == normalize_notebooks.LANGUAGE_INFO, f"{path.name}: language_info {nb['metadata'].get('language_info')}"
    assert text == normalize_notebooks.dumps(normalize_notebooks.normalize(json.loads(text))), (
        f"{path.name} is not normalised: python scripts/normalize_notebooks.py {path.relative_to(REPO)}")


def test_normalize_strips_outputs_and_sets_metadata():
    nb = {"cells": [{"cell_type": "code", "source": "1", "metadata": {"execution": {}}, "execution_count": 3,
                     "outputs": [{"output_type": "execute_result", "data": {"text/plain": "1"}, "metadata": {}, "execution_count": 3}]}],
          "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    out = normalize_notebooks.normalize(nb)
    assert out["cells"][0]["outputs"] == [] and out["cells"][0]["execution_count"] is None and out["cells"][0]["metadata"] == {}
    assert out["metadata"]["language_info"] == normalize_notebooks.LANGUAGE_INFO


@pytest.mark.slow
def test_stored_metadata_is_what_the_kernel_writes():
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert {"display_name": spec.display_name, "language": spec.language, "name": "python3"} == normalize_notebooks.KERNELSPEC
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        info = kc.kernel_info(reply=True, timeout=60)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    if info.get("version") != normalize_notebooks.LANGUAGE_INFO["version"]:
        pytest.skip(f"this kernel runs Python {platform.python_version()}, the notebooks record "
                    f"{normalize_notebooks.LANGUAGE_INFO['version']} (the reference environment's)")
    assert info == normalize_notebooks.LANGUAGE_INFO

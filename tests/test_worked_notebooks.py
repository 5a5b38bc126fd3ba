"""The worked-problem notebooks 01-03 run top to bottom and print the numbers of the library / the closed forms.

Each notebook is executed with nbclient on a copy; one extra cell at the end dumps kernel variables as JSON, and the
printed lines are parsed, so both what the student reads and what the kernel holds are checked against values
computed here independently (plain-Python formulas or simclr_core).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from simclr_core.nn.loss import info_nce_from_similarity
from simclr_core.teaching.sheet import SEED_POSITIVES, SEED_S

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
ROWS = [[None, 0.95, 0.10, 0.05, 0.02, 0.00], [0.95, None, 0.12, 0.07, 0.03, 0.01], [0.10, 0.12, None, 0.90, 0.06, 0.04],
        [0.05, 0.07, 0.90, None, 0.08, 0.02], [0.02, 0.03, 0.06, 0.08, None, 0.93], [0.00, 0.01, 0.04, 0.02, 0.93, None]]


def closed_form(i: int, j: int, tau: float) -> float:
    """-log(exp(s_ij/tau) / sum_{k != i} exp(s_ik/tau)) written out from the exercise sheet's matrix."""
    den = sum(math.exp(ROWS[i][k] / tau) for k in range(6) if k != i)
    return -math.log(math.exp(ROWS[i][j] / tau) / den)


def run(name: str, dump: str, tmp_path: Path, monkeypatch):
    """Execute notebooks/<name> (a copy) plus a final cell printing json.dumps(<dump>); return (nb, dumped dict)."""
    nb = nbformat.read(NB_DIR / name, as_version=4)
    for c in nb.cells:  # committed clean
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{name} is committed with outputs"
    nb.cells.append(nbformat.v4.new_code_cell(f"import json as _json\nprint('__DUMP__' + _json.dumps({dump}))"))
    monkeypatch.setenv("SIMCLR_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}).execute()
    text = stream_text(nb.cells[-1])
    return nb, json.loads(text.split("__DUMP__", 1)[1])


def stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def all_text(nb) -> str:
    return "\n".join(stream_text(c) for c in nb.cells if c.cell_type == "code")


def has_image(nb) -> bool:
    return any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def widget_cell(nb, call: str):
    cells = [c for c in nb.cells if c.cell_type == "code" and call in c.source]
    assert len(cells) == 1, f"expected one cell calling {call}"
    data = [o.data for o in cells[0].outputs if o.output_type == "execute_result"]
    assert data and "application/vnd.jupyter.widget-view+json" in data[0], f"{call} did not display a widget"


def test_01_similarity_matrix(tmp_path, monkeypatch):
    nb, v = run("01_similarity_matrix.ipynb",
                "dict(L_12=L_12, L_34=L_34, num=numerator_12, den=denominator_12, by_hand=by_hand, "
                "per_anchor=per_anchor.tolist(), from_embeddings=from_embeddings[order].tolist(), L_batch=L_batch)",
                tmp_path, monkeypatch)
    # the sheet's answers, from the closed form written out here
    assert math.isclose(v["num"], math.exp(9.5), rel_tol=1e-12)
    assert math.isclose(v["den"], math.exp(9.5) + math.exp(1.0) + math.exp(0.5) + math.exp(0.2) + 1.0, rel_tol=1e-12)
    assert math.isclose(v["L_12"], closed_form(0, 1, 0.1), rel_tol=1e-9)
    assert math.isclose(v["L_34"], closed_form(2, 3, 0.1), rel_tol=1e-9)
    assert f"{v['L_12']:.3e}" == "4.930e-04" and f"{v['L_34']:.3e}" == "1.154e-03"
    # what the student reads: the printed lines hold the same numbers
    out = all_text(nb)
    assert re.search(r"L\(1,2\) = -log\(13359\.7268 / 13366\.3152\) = 4\.930e-04", out), out
    assert re.search(r"L\(3,4\) = -log\(8103\.0839 / 8112\.4363\) = 1\.154e-03", out), out
    # hand loop == library on S == nt_xent on exact embeddings, for all 2N anchors
    lib = info_nce_from_similarity(SEED_S, SEED_POSITIVES, 0.1).tolist()
    want = [closed_form(i, i ^ 1, 0.1) for i in range(6)]
    for got in (v["by_hand"], v["per_anchor"], v["from_embeddings"]):
        assert all(math.isclose(g, w, rel_tol=1e-8) for g, w in zip(got, want)), got
    assert all(math.isclose(g, w, rel_tol=1e-12) for g, w in zip(lib, want))
    assert math.isclose(v["L_batch"], sum(want) / 6, rel_tol=1e-9)
    assert f"batch loss L (mean over 2N = 6 anchors) = {sum(want) / 6:.4e}" in out
    assert has_image(nb)


def test_02_temperature(tmp_path, monkeypatch):
    nb, v = run("02_temperature.ipynb", "dict(loss_01=loss_01, loss_05=loss_05, batch=batch, taus=taus)",
                tmp_path, monkeypatch)
    for tau, key in ((0.1, "loss_01"), (0.5, "loss_05")):
        want = sum(closed_form(i, i ^ 1, tau) for i in range(6)) / 6
        assert math.isclose(v[key], want, rel_tol=1e-9)
        assert f"batch loss L = {want:.4f}" in all_text(nb)
    assert "L(1,2) = 0.5027" in all_text(nb) and math.isclose(closed_form(0, 1, 0.5), 0.5027, abs_tol=5e-5)
    # the sweep: increasing in tau and bounded by log(2N - 1) = log 5
    b = v["batch"]
    assert all(x <= y for x, y in zip(b, b[1:])) and b[0] < 1e-6 and b[-1] < math.log(5) and b[-1] > 0.95 * math.log(5)
    assert has_image(nb)
    widget_cell(nb, "temperature_explorer(")


@pytest.mark.slow
def test_03_batch_size(tmp_path, monkeypatch):
    nb, v = run("03_batch_size.ipynb",
                "dict(loss_N1=loss_N1.item(), g1=z1.grad.norm().item(), rows=rows.tolist())", tmp_path, monkeypatch)
    out = all_text(nb)
    assert "N = 1: loss = 0.0, |dL/dz1| = 0.0, |dL/dz2| = 0.0" in out
    assert "nt_xent        : weights moved by 0.0000" in out  # N = 1 training: the encoder never changes
    collapse = re.search(r"numerator_only : weights moved by [\d.]+; mean cosine between DIFFERENT images "
                         r"([+-][\d.]+) -> ([+-][\d.]+)", out)
    assert collapse and float(collapse.group(2)) > float(collapse.group(1)) + 0.3, out  # collapse without negatives
    rows = torch.tensor(v["rows"])  # N, L(random), L(aligned), grad size
    N = rows[:, 0]
    assert rows[0, 1] == 0 and rows[0, 2] == 0 and rows[0, 3] == 0  # N = 1
    # random embeddings: loss ~ log(2N - 1); aligned: lower, and the MI bound log(2N-1) - L grows with N
    assert torch.allclose(rows[1:, 1], torch.log(2 * N[1:] - 1), rtol=0.1)
    assert (rows[1:, 2] < rows[1:, 1]).all()
    bound = torch.log(2 * N - 1) - rows[:, 2]
    assert (bound[1:] >= bound[:-1] - 1e-6).all()
    assert has_image(nb)
    widget_cell(nb, "batch_size_explorer(")

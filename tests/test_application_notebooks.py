"""Notebooks 06-09 run top to bottom; the experiment helpers behind them do what they claim.

Each notebook is executed in smoke mode (SIMCLR_SMOKE=1: tiny data, seconds) by the session's smoke build of the
site (``conftest.smoke_site``, from notebooks/ as a student runs them), and, when cached results are committed,
once more here with nbclient reading them (no training: only loading and plotting), so a cached file that no longer
matches the plotting code fails here.
"""

import os
from unittest import mock
from pathlib import Path

import nbformat
import pytest
import torch

from simclr_core import experiments as ex
from simclr_core.nn.queue import nt_xent_with_queue

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["06_augmentation_ablation", "07_small_batches", "08_visualizing_representations", "09_simclr_vs_supervised"]
CACHE = {"06_augmentation_ablation": "fig5", "07_small_batches": "small_batch",
         "08_visualizing_representations": "visualize", "09_simclr_vs_supervised": "vs_supervised"}


def _fashion_mnist_available() -> bool:
    from simclr_core.data.datasets import DatasetUnavailable, load_dataset

    try:
        load_dataset("fashion-mnist", train=False)
        return True
    except DatasetUnavailable:
        return False


needs_data = pytest.mark.skipif(not _fashion_mnist_available(), reason="Fashion-MNIST is not installed")


def _execute_reading_cache(name: str, timeout: int = 300):
    """Run notebooks/<name> outside smoke mode: it reads its cached result (the smoke run is the site build's)."""
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    # figures become image/png outputs; the whole environment is restored on exit
    env = {"SIMCLR_SMOKE": "0", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    with mock.patch.dict(os.environ, env):
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # make test runs two test files side by side on 2 cores
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    return nb


def _outputs_text(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") if o.get("output_type") == "stream" else str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean(name):
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.cells[1].cell_type == "code" and "SIMCLR_SMOKE" in nb.cells[1].source, "setup cell comes first"
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, "commit notebooks without outputs"
            assert c.source.count("\n") < 60, "code cells stay short"


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_smoke_mode(name, smoke_executed):
    nb = smoke_executed(name)
    out = _outputs_text(nb)
    assert "preset=smoke" in out
    assert "cached result" not in out  # smoke mode computes, never reads the cache
    images = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images >= 1, "every notebook draws its visual check"


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_reads_committed_cache(name):
    cached = ex.load_result(CACHE[name], ROOT / "notebooks" / "results")
    if cached is None:
        pytest.skip(f"no cached notebooks/results/{CACHE[name]}.json")
    assert cached["command"].startswith("python -m simclr_core.experiments ")
    nb = _execute_reading_cache(name)
    assert "cached result" in _outputs_text(nb)


# ---------------------------------------------------------------- the helpers behind the notebooks

def test_fig5_ops_keep_shape_and_range_and_are_per_image():
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8).expand(8, 3, 16, 16).contiguous()
    for name in ex.FIG5_OPS:
        v = ex.compose([name])(x, torch.Generator().manual_seed(0))
        assert v.shape == (8, 3, 16, 16) and v.dtype == torch.float32, name
        assert 0 <= float(v.min()) and float(v.max()) <= 1, name
        if name != "sobel":  # Sobel is deterministic; every other op draws per-image parameters
            assert len({tuple(im.flatten().tolist()) for im in v}) > 1, name


def test_fig5_ops_closed_forms():
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, :, 4:] = 1.0  # a vertical edge between columns 3 and 4
    edges = ex.FIG5_OPS["sobel"](x)
    assert edges[0, 0, 4, 3] == 1 and edges[0, 0, 4, 4] == 1 and edges[0, 0, 4, 0] == 0 and edges[0, 0, 4, 7] == 0
    ones = torch.ones(16, 1, 8, 8)
    cut = ex.FIG5_OPS["cutout"](ones, torch.Generator().manual_seed(0))
    holes = (cut == 0).flatten(1).sum(1)  # erased pixels per image
    assert (holes > 0).all() and (holes <= 16).all()  # side <= 0.5 * 8 = 4 px: at most a 4 x 4 square
    a = torch.arange(16.0).view(1, 1, 4, 4).repeat(32, 1, 1, 1) / 16
    rot = ex.FIG5_OPS["rotate"](a, torch.Generator().manual_seed(0))
    allowed = [torch.rot90(a[0], k, dims=(1, 2)) for k in range(4)]
    assert all(any(torch.equal(r, m) for m in allowed) for r in rot)
    assert len({tuple(r.flatten().tolist()) for r in rot}) == 4


def test_compose_rejects_unknown_op():
    with pytest.raises(ValueError, match="unknown augmentation 'sharpen'"):
        ex.compose(["crop", "sharpen"])


def test_short_run_validates():
    with pytest.raises(ValueError, match="queue_size"):
        ex.ShortRun(queue_size=-1)
    with pytest.raises(ValueError, match="steps"):
        ex.ShortRun(steps=0)


def _dataset(n, side, seed=0):
    from simclr_core.data.datasets import ImageDataset

    g = torch.Generator().manual_seed(seed)
    return ImageDataset(torch.randint(0, 256, (n, 1, side, side), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (n,), generator=g), tuple(str(c) for c in range(10)), "fashion-mnist")


def test_pretrain_short_queue_and_momentum_step_matches_manual_step():
    """pretrain_short with a queue + momentum encoder (through the library's Trainer) does exactly the MoCo step
    notebook 07 writes out: queries from the network, keys from its EMA copy, keys enqueued after the step."""
    from simclr_core.nn.queue import MomentumEncoder, NegativeQueue
    from simclr_core.train.loop import epoch_generator, epoch_order
    from simclr_core.train.runs import run_precision
    from simclr_core.train.schedule import build_optimizer, lr_at, scaled_lr, set_lr
    from simclr_core.train.step import project

    train = _dataset(64, 12)
    run = ex.ShortRun(steps=3, batch_size=4, widths=(4, 8), head_dim=8, queue_size=16, momentum=0.9)

    def views(x, g):  # deterministic views so both computations see the same inputs
        return x.float() / 255

    model, hist = ex.pretrain_short(train, views, run, progress=False)
    recipe = run.recipe("fashion-mnist", len(train))
    p = run_precision(recipe, "cpu")
    ref = p.prepare(ex.build_model(1, run))
    keys_from, queue = MomentumEncoder(ref, 0.9), NegativeQueue(8, 16)
    peak = scaled_lr(recipe.lr, recipe.batch_size)
    opt = build_optimizer("sgd", ref, peak, recipe.momentum, recipe.weight_decay)
    order, g = epoch_order(64, recipe.seed, 0, 0, 1, 4), epoch_generator(recipe.seed, 0)
    losses = []
    for t in range(run.steps):
        set_lr(opt, lr_at(t, run.steps, round(recipe.warmup_epochs * 16), peak))
        x = train.images[order[t]]
        z1 = project(ref, views(x, g), p)
        with torch.no_grad():
            z2 = project(keys_from.target, views(x, g), p)
        loss = nt_xent_with_queue(z1, z2, queue, run.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        keys_from.update(ref)
        queue.enqueue(z2)
        losses.append(loss.item())
    assert hist["loss"] == pytest.approx(losses, rel=1e-5)
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)


def test_no_negatives_run_collapses_and_simclr_does_not():
    """The deliberately collapsing ablation of notebook 08 really collapses (uniformity -> 0)."""
    from simclr_core.eval.diagnostics import uniformity

    train = _dataset(128, 12)
    views = ex.compose(["crop", "noise"])
    common = dict(steps=80, batch_size=32, widths=(8, 16), head_dim=16)
    collapsed, _ = ex.pretrain_short(train, views, ex.ShortRun(negatives=False, **common), progress=False)
    healthy, _ = ex.pretrain_short(train, views, ex.ShortRun(**common), progress=False)
    x = train.images.float() / 255
    with torch.no_grad():
        zc, zh = collapsed.eval()(x)[1], healthy.eval()(x)[1]
    assert uniformity(zc) > -0.05  # all points (nearly) coincide
    assert uniformity(zh) < -0.3  # NT-Xent spreads them (the random init is at about -0.001 here)


def test_save_and_load_result_roundtrip(tmp_path):
    res = {"experiment": "fig5", "command": "python -m simclr_core.experiments fig5", "knn": [[0.5]]}
    path = ex.save_result(res, tmp_path)
    assert path.name == "fig5.json" and not list(tmp_path.glob("*.tmp"))
    assert ex.load_result("fig5", tmp_path) == res
    assert ex.load_result("small_batch", tmp_path) is None
    with pytest.raises(ValueError, match="unknown experiment"):
        ex.load_result("nope", tmp_path)


def test_pretrain_short_cache_returns_the_trained_run_and_keys_every_field(tmp_path):
    """A cached run comes back with the very weights and losses it was trained to; a run that differs in any field
    (here only the seed) or in its views is trained afresh, and a view function without a stable description
    (a lambda) is never cached."""
    train = _dataset(64, 12)
    run = ex.ShortRun(steps=2, batch_size=8, widths=(4, 8), head_dim=8)
    views = ex.compose(["crop"], size=8)
    a, ha = ex.pretrain_short(train, views, run, progress=False, cache=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    b, hb = ex.pretrain_short(train, views, run, progress=False, cache=tmp_path)
    assert hb == ha
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)
    ex.pretrain_short(train, views, ex.ShortRun(steps=2, batch_size=8, widths=(4, 8), head_dim=8, seed=1),
                      progress=False, cache=tmp_path)
    ex.pretrain_short(train, ex.compose(["color"], size=8), run, progress=False, cache=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 3
    ex.pretrain_short(train, lambda x, g: x.float() / 255, run, progress=False, cache=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_compose_resizes_views_and_rejects_a_bad_size():
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    v = ex.compose(["crop", "color"], size=16)(x, torch.Generator().manual_seed(0))
    assert v.shape == (4, 1, 16, 16) and 0 <= float(v.min()) and float(v.max()) <= 1
    assert repr(ex.compose(["crop"], size=16)) == "compose(['crop'], size=16)"
    with pytest.raises(ValueError, match="size must be an integer >= 4"):
        ex.compose(["crop"], size=2)


def test_mean_sd_matches_statistics_and_differs_calls_noise_noise():
    import statistics

    from simclr_core.experiments.stats import differs, fmt, mean_sd, over_seeds

    v = [0.81, 0.84, 0.79]
    ms = mean_sd(v)
    assert ms["mean"] == pytest.approx(statistics.mean(v)) and ms["sd"] == pytest.approx(statistics.stdev(v))
    assert fmt(ms) == "81.3 ± 2.5" and fmt(mean_sd([0.805])) == "80.5"
    assert over_seeds([{"knn": 0.5, "lin": 0.7}, {"knn": 0.7, "lin": 0.7}])["knn"]["mean"] == pytest.approx(0.6)
    a, b = mean_sd([0.86, 0.87, 0.88]), mean_sd([0.85, 0.86, 0.87])  # 1 point apart, sd 1 point: noise
    assert differs(a, b) == 0
    assert differs(mean_sd([0.90, 0.91, 0.90]), b) == 1 and differs(b, mean_sd([0.90, 0.91, 0.90])) == -1
    with pytest.raises(ValueError, match="at least one value"):
        mean_sd([])


def test_a_refreshed_bank_is_its_own_run_and_needs_a_bank():
    """bank_refresh = 0 leaves a run's cache key as it was before the option existed; any other value keys a new
    run; a refresh without a bank is a clear error."""
    plain = ex.ShortRun(bank_negatives=8)
    assert "bank_refresh" not in plain.key() and ex.ShortRun(bank_negatives=8, bank_refresh=50).key()["bank_refresh"] == 50
    with pytest.raises(ValueError, match=r"bank_refresh=5 re-encodes a memory bank: set bank_negatives > 0"):
        ex.ShortRun(bank_refresh=5)

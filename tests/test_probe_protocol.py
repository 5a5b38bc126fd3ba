"""One evaluation protocol (``simclr_core.eval.probe``): the same encoder on the same images gets the same kNN and
linear-probe numbers through ``simclr probe`` (the CLI), the experiments (``probe_of``, and the features-first path
of notebook 09's experiment) and the Fashion-MNIST benchmark; no other place calls the primitives itself; the
linear probe runs to its stated tolerance and says whether it got there."""

import ast
import importlib.util
import json
import pickle
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from simclr_core.cli import main
from simclr_core.data.datasets import load_dataset
from simclr_core.data.synthetic import write_fake_cifar10
from simclr_core.eval.metrics import fit_linear_probe
from simclr_core.eval.probe import PROTOCOL, ProbeProtocol, features, probe, probe_features
from simclr_core.experiments.common import probe_of
from simclr_core.train.config import RunOptions
from simclr_core.train.runs import load_run, pretrain
from tests.trainer_helpers import tiny

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_fashion_mnist", REPO / "benchmarks" / "bench_fashion_mnist.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _noisy_cifar(root: Path, noise: float = 0.4, seed: int = 0) -> Path:
    """The CIFAR-format fixture with a fraction ``noise`` of its labels replaced at random: accuracies well inside
    (0, 1), so that another k or another stopping point changes them."""
    write_fake_cifar10(root, n_train=300, n_test=150, seed=seed)
    rng = np.random.default_rng(seed)
    for file in (root / "cifar-10-batches-py").glob("*_batch*"):
        batch = pickle.loads(file.read_bytes())
        labels = np.array(batch["labels"])
        flip = rng.random(len(labels)) < noise
        labels[flip] = rng.integers(0, 10, int(flip.sum()))
        batch["labels"] = [int(v) for v in labels]
        file.write_bytes(pickle.dumps(batch))
    return root


@pytest.fixture(scope="module")
def noisy_root(tmp_path_factory):
    return _noisy_cifar(tmp_path_factory.mktemp("noisy"))


@pytest.fixture(scope="module")
def trained(noisy_root, tmp_path_factory):
    """A run folder of a tiny pretraining on the noisy fixture, its recipe, encoder and data."""
    cifar_root = noisy_root
    out = tmp_path_factory.mktemp("protocol") / "run"
    recipe, options = tiny(cifar_root, out)
    pretrain(recipe, options)
    recipe, model, _ = load_run(out)
    train = load_dataset("cifar10", str(cifar_root), train=True)
    test = load_dataset("cifar10", str(cifar_root), train=False)
    return out, recipe, model.encoder, train, test


def _cli_rows(run, root) -> dict:
    assert main(["probe", str(run), "--data-root", str(root), "--no-progress"]) == 0
    return {r["name"]: r for r in json.loads((run / "probe.json").read_text())["results"]}


def test_cli_experiments_and_benchmark_give_the_same_numbers(trained, noisy_root):
    run, recipe, encoder, train, test = trained
    cli = _cli_rows(run, noisy_root)
    assert json.loads((run / "probe.json").read_text())["protocol"] == PROTOCOL.describe()
    prober = _bench().Prober(recipe, train, test)
    for name, enc in (("SimCLR", encoder), ("raw pixels", None)):
        want = {m: cli[name][m] for m in ("knn", "linear")}
        assert probe_of(enc, train, test, "cpu") == want, f"{name}: experiments path vs CLI"
        assert prober.scores(enc) == want, f"{name}: benchmark path vs CLI"
        ftr, fte = features(enc, train.images, "cpu"), features(enc, test.images, "cpu")  # notebook 09's path
        assert probe_features(ftr, train.targets, fte, test.targets, "cpu").scores() == want, f"{name}: features first"
    assert 0.2 < cli["SimCLR"]["knn"] < 0.95 and cli["SimCLR"]["linear_converged"]


def test_the_check_sees_another_k(trained, noisy_root):
    """Mutation check: a path that used another k would be told apart (the numbers depend on k here)."""
    run, recipe, encoder, train, test = trained
    cli = _cli_rows(run, noisy_root)["SimCLR"]
    other = probe(encoder, train, test, "cpu", ProbeProtocol(knn_k=5)).knn
    assert other != cli["knn"]


def test_features_do_not_depend_on_how_the_caller_left_its_module(trained):
    _, _, encoder, train, _ = trained
    ref = features(encoder, train.images[:64], "cpu")
    moved = encoder.to(memory_format=torch.channels_last).train()
    assert torch.equal(features(moved, train.images[:64], "cpu"), ref)
    assert moved.training  # the caller's module is left as it was


def test_image_size_is_the_protocols(trained):
    _, _, encoder, train, _ = trained
    small = ProbeProtocol(image_size=16)
    assert features(None, train.images[:4], "cpu", small).shape == (4, 3 * 16 * 16)
    assert features(None, train.images[:4], "cpu").shape == (4, 3 * 32 * 32)  # None: the images' own size


def _blobs(n, d=10, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(C, d, generator=torch.Generator().manual_seed(99)) * 1.5
    y = torch.randint(0, C, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def test_linear_probe_runs_to_its_tolerance_and_says_so():
    X, y = _blobs(400)
    Xt, yt = _blobs(200, seed=1)
    fit = fit_linear_probe(X, y, Xt, yt, weight_decay=1e-3, max_iter=1000, tolerance_grad=1e-5)
    assert fit.converged and fit.stopped_by == "gradient" and fit.grad_max <= 1e-5
    capped = fit_linear_probe(X, y, Xt, yt, weight_decay=1e-3, max_iter=2, tolerance_grad=1e-5)
    assert not capped.converged and capped.stopped_by == "cap" and capped.iterations == 2
    assert capped.loss > fit.loss
    with pytest.warns(RuntimeWarning, match="cap of 2 iterations .* not converged"):
        res = probe_features(X, y, Xt, yt, "cpu", ProbeProtocol(max_iter=2, tolerance_grad=1e-5))
    assert not res.fit.converged


def test_the_primitives_default_to_the_protocol():
    """A direct call of the primitives (notebook 09's live cell makes one) probes as eval.probe does."""
    import inspect

    from simclr_core.eval.metrics import knn_accuracy, linear_probe

    for fn in (linear_probe, fit_linear_probe):
        d = {k: p.default for k, p in inspect.signature(fn).parameters.items()}
        assert (d["weight_decay"], d["max_iter"], d["tolerance_grad"], d["tolerance_change"]) == (
            PROTOCOL.weight_decay, PROTOCOL.max_iter, PROTOCOL.tolerance_grad, PROTOCOL.tolerance_change)
    d = {k: p.default for k, p in inspect.signature(knn_accuracy).parameters.items()}
    assert (d["k"], d["t"]) == (PROTOCOL.knn_k, PROTOCOL.knn_t)


@pytest.mark.parametrize("field,value,needle", [("knn_k", 0, "knn_k must be a positive integer, got 0"),
                                                ("tolerance_grad", -1.0, "tolerance_grad must be a finite number > 0"),
                                                ("image_size", 2.5, "image_size must be a positive integer, got 2.5"),
                                                ("amp", "yes", "amp must be True or False, got 'yes'")])
def test_a_bad_protocol_names_the_value(field, value, needle):
    with pytest.raises(ValueError, match=needle):
        ProbeProtocol(**{field: value})
    with pytest.raises(ValueError, match="metric must be one of"):
        probe_features(*_blobs(20), *_blobs(10, seed=1), "cpu", metrics=("top5",))


# every place that probes, and the only names of eval.metrics it may still call directly
CALLERS = {"simclr_core/train/probe.py": set(), "simclr_core/experiments": set(),
           "benchmarks/bench_fashion_mnist.py": set(), "simclr_core/train/callbacks.py": {"knn_accuracy"}}
PRIMITIVES = {"knn_accuracy", "linear_probe", "fit_linear_probe", "knn_predict"}


def _called_names(source: str) -> set[str]:
    tree = ast.parse(source)
    return {n.func.id if isinstance(n.func, ast.Name) else n.func.attr for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))}


def test_no_caller_probes_on_its_own():
    """The callers reach kNN and the linear probe only through eval.probe (the training-time kNN monitor, a
    cheap check on a subset with the recipe's k and t, is not a probe)."""
    for rel, allowed in CALLERS.items():
        path = REPO / rel
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            used = _called_names(file.read_text()) & PRIMITIVES
            assert used <= allowed, f"{file.relative_to(REPO)} calls {sorted(used - allowed)} itself, not eval.probe"
    nb = nbformat.read(REPO / "notebooks" / "05_cifar10_pretrain_probe.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "def train_simclr(" not in cell.source:  # the loop's own kNN monitor
            used = _called_names(cell.source) & PRIMITIVES
            assert not used, f"notebook 05 calls {sorted(used)} itself, not eval.probe: {cell.source[:80]!r}"


def test_the_caller_check_catches_a_direct_call():
    assert _called_names("from x import linear_probe\nacc = linear_probe(a, b, c, d)\n") & PRIMITIVES == {"linear_probe"}
    assert _called_names("import m\nm.knn_accuracy(a, b, c, d, k=20)\n") & PRIMITIVES == {"knn_accuracy"}


def test_the_probe_commands_defaults_are_the_protocols():
    """`simclr probe` passes None unless told, so the protocol decides; its help states the protocol's values."""
    from simclr_core.cli_args import build_parser

    args = build_parser().parse_args(["probe", "run"])
    assert (args.k, args.knn_t, args.weight_decay) == (None, None, None)
    helps = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0].choices["probe"]._actions}
    for dest, value in (("k", PROTOCOL.knn_k), ("knn_t", PROTOCOL.knn_t), ("weight_decay", PROTOCOL.weight_decay)):
        stated = float(helps[dest].rsplit(", ", 1)[1].rstrip(")"))
        assert stated == value, (dest, helps[dest], value)


# ---------------------------------------------------------------- the cached results agree with each other

# (file, key path) of one cached run: the main runs' plain SimCLR (N = 128, 1,200 steps, tau = 0.2), which four
# experiments share through the run cache, and the same network untrained
_MAIN_RUN = {"visualize": ("variants", "SimCLR"), "small_batch": ("variants", "SimCLR, N=128"),
             "negatives": ("variants", "m=128"), "temperature": ("variants", "tau=0.2"),
             "composition": ("variants", "default policy")}
_RANDOM_INIT = {"visualize": ("variants", "random init"), "small_batch": ("baselines", "random init"),
                "negatives": ("baselines", "random init"), "temperature": ("baselines", "random init"),
                "pretraining": ("baselines", "random init"), "fig5": ("baselines", "random init"),
                "composition": ("baselines", "random init")}
# vs_supervised.json keeps each method's numbers under the label budget: with all labels, its SimCLR h (linear
# probe and kNN) is the main run, its random-init probe the same network untrained
_ALL_LABELS = ("in_domain", "all")
_VS_SUPERVISED = {"main SimCLR run": {"linear": "SimCLR h (linear probe)", "knn": "SimCLR h (kNN)"},
                  "random init": {"linear": "random-init h (linear probe)"}}


def _cached(places: dict) -> dict:
    out = {}
    for name, path in places.items():
        file = REPO / "notebooks" / "results" / f"{name}.json"
        if file.is_file():
            node = json.loads(file.read_text())
            for key in path:
                node = node[key]
            out[name] = {m: node[m]["values"] for m in ("knn", "linear")}
    return out


@pytest.mark.parametrize("places", [_MAIN_RUN, _RANDOM_INIT], ids=["main SimCLR run", "random init"])
def test_one_encoder_has_the_same_numbers_in_every_cached_result(places):
    """The same weights (a shared cached run, or the same seeded initialisation) probed under the one protocol give
    the same per-seed numbers in every JSON: a result probed under another protocol would differ here."""
    found = _cached(places)
    assert len(found) >= 2, found
    file = REPO / "notebooks" / "results" / "vs_supervised.json"
    if file.is_file():
        node = json.loads(file.read_text())[_ALL_LABELS[0]][_ALL_LABELS[1]]
        label = "main SimCLR run" if places is _MAIN_RUN else "random init"
        first = next(iter(found.values()))
        for m, method in _VS_SUPERVISED[label].items():
            assert node[method]["values"] == first[m], ("vs_supervised", method, node[method]["values"], first[m])
    first = next(iter(found.values()))
    for name, numbers in found.items():
        assert numbers == first, (name, numbers, first)

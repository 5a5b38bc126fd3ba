"""Every bad input a clear error: a ValueError (library) or a one-line message and exit status 2 (command line)
that names the bad value and what would be valid, with no traceback and nothing written or lost."""

import math
import os

import pytest
import torch

from simclr_core.cli import main
from simclr_core.data.augment import AugmentConfig
from simclr_core.data.fast_augment import BatchAugment
from simclr_core.data.datasets import ImageDataset, load_dataset
from simclr_core.eval.metrics import knn_accuracy, linear_probe
from simclr_core.nn.loss import info_nce_from_similarity, nt_xent, positive_pairs
from simclr_core.nn.queue import MomentumEncoder, NegativeQueue, nt_xent_with_queue
from simclr_core.precision import precision_for
from simclr_core.train.budget import steps_in_budget
from simclr_core.train.config import Recipe, RunOptions, preset
from simclr_core.train.schedule import scaled_lr

Z = torch.randn(4, 8)
FEATS, LABELS = torch.randn(10, 4), torch.arange(10) % 3

RECIPE = [  # (field, bad value, text the message must hold)
    ("dataset", "imagenet", "'imagenet'"), ("encoder", "vgg", "'vgg'"), ("optimizer", "adam", "'adam'"),
    ("lr_scaling", "cubic", "'cubic'"), ("epochs", 0, "epochs must be a positive integer, got 0"),
    ("epochs", 1.5, "got 1.5"), ("epochs", True, "got True"), ("batch_size", 1, "batch_size must be >= 2"),
    ("batch_size", -4, "got -4"), ("proj_dim", 0, "proj_dim"), ("knn_k", 0, "knn_k"), ("subset", 0, "subset"),
    ("monitor_train", -1, "monitor_train"), ("proj_hidden", 0, "proj_hidden"), ("max_steps", 0, "max_steps"),
    ("widths", (), "widths"), ("widths", (8, 0), "(8, 0)"), ("temperature", 0, "temperature must be a finite number"),
    ("temperature", -1, "got -1"), ("temperature", math.nan, "nan"), ("temperature", math.inf, "inf"),
    ("temperature", True, "got True"), ("lr", 0, "lr"), ("lr", "fast", "'fast'"), ("knn_t", 0, "knn_t"),
    ("minutes", 0, "minutes"), ("minutes", math.inf, "inf"), ("momentum", 1.0, "momentum must be in [0, 1)"),
    ("momentum", -0.1, "-0.1"), ("weight_decay", -1, "weight_decay"), ("weight_decay", math.inf, "inf"),
    ("warmup_epochs", -1, "warmup_epochs"), ("warmup_epochs", 100, "100"), ("seed", -1, "seed"), ("seed", 1.5, "1.5"),
    ("head", "yes", "'yes'"), ("amp", 1, "amp must be True or False"), ("augment", "strong", "AugmentConfig"),
]

OPTIONS = [("out", "", "out must be a folder path"), ("out", "  ", "out"), ("num_threads", 0, "num_threads"),
           ("time_limit_s", 0, "time_limit_s"), ("time_limit_s", -5, "-5"), ("device", 3, "got 3"),
           ("resume", "yes", "'yes'")]

AUGMENT = [("size", 0, "size"), ("crop_scale", 0.5, "crop_scale must be a pair"), ("crop_scale", (0.1, 0.5, 1), "(0.1, 0.5, 1)"),
           ("crop_scale", (0.9, 0.1), "(0.9, 0.1)"), ("crop_scale", (0, 1), "(0, 1)"), ("strength", -1, "strength"),
           ("strength", math.inf, "inf"), ("jitter_p", 1.5, "jitter_p must be a probability"), ("grayscale_p", -0.1, "-0.1"),
           ("blur_p", 2, "blur_p"), ("mean", (0.5,), "mean and std"), ("std", (0.0, 1.0, 1.0), "std > 0"),
           ("flip", "no", "'no'")]


def _q(dim=8, size=4):
    return NegativeQueue(dim, size)


CALLS = [  # (what, callable, text the message must hold)
    ("nt_xent tau 0", lambda: nt_xent(Z, Z, 0), "got 0"),
    ("nt_xent tau True", lambda: nt_xent(Z, Z, True), "got True"),
    ("nt_xent tau str", lambda: nt_xent(Z, Z, "a"), "'a'"),
    ("nt_xent 3-d", lambda: nt_xent(Z[None], Z[None]), "2 dims"),
    ("nt_xent shapes", lambda: nt_xent(Z, Z[:3]), "same shape"),
    ("nt_xent ints", lambda: nt_xent(Z.long(), Z.long()), "floating-point"),
    ("nt_xent nan", lambda: nt_xent(torch.full((4, 8), math.nan), Z), "non-finite"),
    ("nt_xent reduction", lambda: nt_xent(Z, Z, 0.5, "avg"), "'avg'"),
    ("nt_xent list", lambda: nt_xent([[1.0]], [[1.0]]), "torch.Tensor"),
    ("info_nce non-square", lambda: info_nce_from_similarity(torch.zeros(4, 3), [1, 0, 3, 2], 0.1), "(4, 3)"),
    ("info_nce odd", lambda: info_nce_from_similarity(torch.zeros(3, 3), [1, 0, 2], 0.1), "even"),
    ("info_nce pairing", lambda: info_nce_from_similarity(torch.zeros(4, 4), [1, 2, 3, 0], 0.1), "pairing"),
    ("info_nce self", lambda: info_nce_from_similarity(torch.zeros(4, 4), [0, 1, 2, 3], 0.1), "own positive"),
    ("info_nce nan", lambda: info_nce_from_similarity(torch.full((4, 4), math.nan), [1, 0, 3, 2], 0.1), "non-finite"),
    ("info_nce tau", lambda: info_nce_from_similarity(torch.zeros(4, 4), [1, 0, 3, 2], -1), "got -1"),
    ("positive_pairs 0", lambda: positive_pairs(0), "got 0"),
    ("positive_pairs layout", lambda: positive_pairs(2, "zigzag"), "'zigzag'"),
    ("knn k", lambda: knn_accuracy(FEATS, LABELS, FEATS, LABELS, k=0), "k must be a positive integer, got 0"),
    ("knn t", lambda: knn_accuracy(FEATS, LABELS, FEATS, LABELS, t=0), "got 0"),
    ("knn nan", lambda: knn_accuracy(torch.full((10, 4), math.nan), LABELS, FEATS, LABELS), "non-finite"),
    ("knn widths", lambda: knn_accuracy(FEATS, LABELS, FEATS[:, :3], LABELS), "4 vs 3"),
    ("knn labels", lambda: knn_accuracy(FEATS, LABELS - 1, FEATS, LABELS), "-1"),
    ("knn label shape", lambda: knn_accuracy(FEATS, LABELS[:5], FEATS, LABELS), "(10,)"),
    ("probe max_iter", lambda: linear_probe(FEATS, LABELS, FEATS, LABELS, max_iter=0), "max_iter"),
    ("probe wd", lambda: linear_probe(FEATS, LABELS, FEATS, LABELS, weight_decay=-1), "-1"),
    ("device abc", lambda: precision_for("cuda:abc"), "'cuda:abc'"),
    ("device tpu", lambda: precision_for("tpu"), "'tpu'"),
    ("device cuda", lambda: precision_for("cuda") if not torch.cuda.is_available() else precision_for("cuda:99"),
     "cuda"),
    ("dataset name", lambda: load_dataset("imagenet"), "'imagenet'"),
    ("dataset root is a file", lambda: load_dataset("cifar10", __file__), "is a file"),
    ("float targets", lambda: ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2), ("a",)), "float32"),
    ("float images", lambda: ImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ("a",)), "uint8"),
    ("subset n", lambda: ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ("a",)).subset(5), "1..2"),
    ("queue dim", lambda: NegativeQueue(0, 5), "dim"),
    ("queue size", lambda: NegativeQueue(8, -1), "size"),
    ("enqueue width", lambda: _q().enqueue(torch.zeros(2, 3)), "(K, 8)"),
    ("enqueue nan", lambda: _q().enqueue(torch.full((2, 8), math.nan)), "finite"),
    ("queue tensor nan", lambda: nt_xent_with_queue(Z, Z, torch.full((3, 8), math.nan)), "non-finite"),
    ("queue tensor width", lambda: nt_xent_with_queue(Z, Z, torch.zeros(3, 5)), "(K, 8)"),
    ("momentum", lambda: MomentumEncoder(torch.nn.Linear(2, 2), 1.5), "1.5"),
    ("preset name", lambda: preset("tpu"), "'tpu'"),
    ("preset dataset", lambda: preset("cpu", "imagenet"), "'imagenet'"),
    ("preset field", lambda: preset("cpu", "cifar10", bogus=1), "bogus"),
    ("budget", lambda: steps_in_budget(-1, 0.1, 1, 10, 100), "budget_s"),
    ("budget steps", lambda: steps_in_budget(60, 0.1, 1, 0, 100), "steps_per_epoch"),
    ("lr scaling", lambda: scaled_lr(1.0, 256, "cubic"), "'cubic'"),
    ("augment 2 channels", lambda: BatchAugment()(torch.zeros(2, 2, 8, 8, dtype=torch.uint8)), "(2, 2, 8, 8)"),
    ("augment 0x0", lambda: BatchAugment()(torch.zeros(2, 3, 0, 0, dtype=torch.uint8)), "(2, 3, 0, 0)"),
    ("augment 0..255 floats", lambda: BatchAugment()(torch.full((2, 3, 8, 8), 200.0)), "up to 200"),
    ("augment int32", lambda: BatchAugment()(torch.zeros(2, 3, 8, 8, dtype=torch.int32)), "int32"),
    ("augment 3-d", lambda: BatchAugment()(torch.zeros(3, 8, 8, dtype=torch.uint8)), "(B, C, H, W)"),
]


@pytest.mark.parametrize("field,value,needle", RECIPE, ids=[f"recipe-{f}-{v!r}" for f, v, _ in RECIPE])
def test_bad_recipe_fields(field, value, needle):
    kw = {field: value}
    if field == "widths" and value == ():
        kw["encoder"] = "small_cnn"
    with pytest.raises(ValueError) as err:
        Recipe(**kw)
    assert needle in str(err.value) and field.split("_")[0] in str(err.value)


def test_widths_need_the_small_cnn():
    with pytest.raises(ValueError, match="widths only applies to encoder 'small_cnn'.*'resnet18_cifar'"):
        Recipe(encoder="resnet18_cifar", widths=(8, 16))


@pytest.mark.parametrize("field,value,needle", OPTIONS, ids=[f"options-{f}-{v!r}" for f, v, _ in OPTIONS])
def test_bad_run_options(field, value, needle):
    with pytest.raises(ValueError) as err:
        RunOptions(**{field: value})
    assert needle in str(err.value)


@pytest.mark.parametrize("field,value,needle", AUGMENT, ids=[f"augment-{f}-{v!r}" for f, v, _ in AUGMENT])
def test_bad_augment_config(field, value, needle):
    with pytest.raises(ValueError) as err:
        AugmentConfig(**{field: value})
    assert needle in str(err.value)


@pytest.mark.parametrize("what,call,needle", CALLS, ids=[c[0] for c in CALLS])
def test_bad_library_calls(what, call, needle):
    with pytest.raises(ValueError) as err:
        call()
    assert needle in str(err.value), str(err.value)


# ---------------------------------------------------------------- the command line

PARSE_ERRORS = [  # rejected by the parser itself
    (["--epochs", "0"], "--epochs must be a positive integer, got '0'"),
    (["--epochs", "x"], "'x'"),
    (["--tau", "-1"], "got '-1'"),
    (["--lr", "0"], "--lr must be a finite number > 0, got '0'"),
    (["--lr", "nan"], "'nan'"),
    (["--device", "cuda:abc"], "--device must be auto, cpu, cuda, cuda:<index> or mps, got 'cuda:abc'"),
    (["--device", "tpu"], "'tpu'"),
    (["--widths", "8,x"], "'8,x'"),
    (["--widths", "0"], "'0'"),
    (["--seed", "-1"], "'-1'"),
    (["--minutes", "0"], "'0'"),
    (["--time-limit", "-1"], "'-1'"),
    (["--warmup-epochs", "-1"], "'-1'"),
    (["--weight-decay", "nan"], "'nan'"),
    (["--weight-decay", "inf"], "'inf'"),
    (["--subset", "0"], "'0'"),
    (["--num-threads", "0"], "'0'"),
    (["--dataset", "imagenet"], "'imagenet'"),
    (["--preset", "tpu"], "'tpu'"),
    (["--optimizer", "adam"], "'adam'"),
    (["--encoder", "vgg"], "'vgg'"),
    (["--epoch", "3"], "--epoch"),  # no prefix matching: a typo is an error, not --epochs
    (["--batch", "64"], "--batch"),
]


@pytest.mark.parametrize("args,needle", PARSE_ERRORS, ids=[" ".join(a) for a, _ in PARSE_ERRORS])
def test_bad_command_line_values(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--out", str(out), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists()  # nothing written


@pytest.fixture
def fixture_args(cifar_root):
    return ["--dataset", "cifar10", "--data-root", str(cifar_root), "--widths", "8,16", "--epochs", "1",
            "--batch-size", "50", "--no-progress"]


def _fails(argv, capsys, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert "Traceback" not in err and err.count("\n") <= 3


def test_recipe_errors_from_the_command_line(tmp_path, capsys, fixture_args):
    out = tmp_path / "r"
    _fails(["pretrain", "--out", str(out), *fixture_args, "--batch-size", "1"], capsys, "batch_size must be >= 2")
    _fails(["pretrain", "--out", str(out), *fixture_args, "--batch-size", "999"], capsys, "larger than the 200")
    assert not (out / "checkpoint.pt").exists()


def test_out_empty_or_a_file_or_resume_without_a_checkpoint(tmp_path, capsys, fixture_args):
    _fails(["pretrain", "--out", "", *fixture_args], capsys, "out must be a folder path")
    f = tmp_path / "a_file"
    f.write_text("keep me")
    _fails(["pretrain", "--out", str(f), *fixture_args], capsys, "is a file, not a folder")
    assert f.read_text() == "keep me"  # nothing lost
    _fails(["pretrain", "--out", str(tmp_path / "typo"), *fixture_args, "--resume"], capsys, "holds no checkpoint.pt")
    assert not (tmp_path / "typo" / "checkpoint.pt").exists()


def test_unwritable_out_is_a_clear_error(tmp_path, capsys, fixture_args):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _fails(["pretrain", "--out", str(ro / "run"), *fixture_args], capsys, "not a writable folder")
    finally:
        ro.chmod(0o700)


def test_probe_errors(tmp_path, capsys):
    _fails(["probe", str(tmp_path / "nowhere")], capsys, "is not a run folder")
    for args, needle in ((["--k", "0"], "'0'"), (["--train-subset", "1"], "'1'"), (["--knn-t", "0"], "'0'")):
        with pytest.raises(SystemExit) as exc:
            main(["probe", str(tmp_path), *args])
        assert exc.value.code == 2 and needle in capsys.readouterr().err


def test_help_shows_defaults_and_every_option_has_help(capsys):
    from simclr_core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"simclr {name} {action.option_strings or action.dest} has no help text"
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    assert "(default: cifar10)" in capsys.readouterr().out


def test_the_table_is_large():
    n = len(RECIPE) + len(OPTIONS) + len(AUGMENT) + len(CALLS) + 1 + len(PARSE_ERRORS) + 2 + 3 + 1 + 4
    assert n >= 80, n

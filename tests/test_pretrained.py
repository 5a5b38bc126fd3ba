"""Exported models: `simclr export` -> load_pretrained gives the run's network back (float16 round trip), refuses
damaged or foreign folders with a clear error; and the model folder the workbook ships is what its records say."""

import json
from pathlib import Path

import pytest
import torch

from simclr_core.cli import main
from simclr_core.data.synthetic import write_fake_cifar10
from simclr_core.train.pretrained import MAX_BYTES, export_pretrained, load_pretrained
from simclr_core.train.runs import load_run

SHIPPED = Path(__file__).resolve().parents[1] / "notebooks" / "pretrained" / "fashion_mnist_cpu"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    root = write_fake_cifar10(tmp / "data", n_train=200, n_test=60, seed=1)
    out = tmp / "run"
    threads = torch.get_num_threads()  # one thread: the probe's tiny L-BFGS steps only wait for a second one
    assert main(["pretrain", "--dataset", "cifar10", "--data-root", str(root), "--out", str(out), "--widths", "8,16",
                 "--batch-size", "50", "--no-progress", "--seed", "3", "--epochs", "2", "--probe",
                 "--num-threads", "1"]) == 0
    torch.set_num_threads(threads)
    return out


def test_export_then_load_gives_the_runs_network(run_dir, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["export", str(run_dir), "--out", str(out), "--made-with", "simclr pretrain ..."]) == 0
    printed = capsys.readouterr().out
    assert "MiB float16" in printed and f"pretrained = load_pretrained({str(out)!r})" in printed
    assert "from simclr_core.train.pretrained import load_pretrained" in printed
    _, model, state = load_run(run_dir)
    p = load_pretrained(out)
    ref = model.state_dict()
    for k, v in p.model.state_dict().items():
        assert v.dtype == ref[k].dtype, k
        if v.is_floating_point():  # float16 storage: the run's weights to float16 precision, not exactly
            torch.testing.assert_close(v, ref[k], rtol=2e-3, atol=1e-4, msg=k)
            assert v.half().float().equal(v), k
        else:
            assert v.equal(ref[k]), k
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(p.encoder(x), model.encoder(x), rtol=1e-2, atol=1e-2)
    assert p.info["steps_trained"] == 8 and p.info["epochs_trained"] == 2 and p.info["command"] == "simclr pretrain ..."
    assert p.probe is not None and [r["name"] for r in p.probe["results"]] == ["SimCLR", "random init", "raw pixels"]
    assert "run" not in p.probe  # no path of the machine that trained it


def test_damaged_or_foreign_folders_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.pt is missing"):
        load_pretrained(run_dir)  # a run folder is not an exported model
    out = export_pretrained(run_dir, tmp_path / "m")
    weights = out / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load_pretrained(out)
    with pytest.raises(ValueError, match="MiB allowed"):
        export_pretrained(run_dir, tmp_path / "big", max_bytes=1000)
    assert not (tmp_path / "big" / "model.pt").exists()
    with pytest.raises(ValueError, match="is the run folder itself"):
        export_pretrained(run_dir, run_dir)


def test_the_shipped_model_is_small_and_matches_its_records():
    if not SHIPPED.is_dir():
        pytest.fail(f"{SHIPPED} is missing")
    assert (SHIPPED / "model.pt").stat().st_size <= MAX_BYTES
    p = load_pretrained(SHIPPED)  # checks the SHA-256 too
    assert p.recipe.dataset == "fashion-mnist" and p.info["command"].startswith("simclr pretrain")
    rows = {r["name"]: r for r in p.probe["results"]}
    # the shipped model earns its place: it beats its own random init and raw pixels on both probes
    for base in ("random init", "raw pixels"):
        assert rows["SimCLR"]["knn"] > rows[base]["knn"] and rows["SimCLR"]["linear"] > rows[base]["linear"]
    steps = [json.loads(line)["steps"] for line in (SHIPPED / "metrics.jsonl").read_text().splitlines()]
    assert sum(steps) == p.info["steps_trained"]


def test_features_are_the_standardised_encoder_output(run_dir, tmp_path):
    from simclr_core.eval.features import extract_features

    from dataclasses import replace

    from simclr_core.train.pretrained import Pretrained

    p = load_pretrained(export_pretrained(run_dir, tmp_path / "m"))
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    a = p.recipe.augment
    assert not a.normalize
    torch.testing.assert_close(p.features(x), extract_features(p.encoder, x, 8))
    a = replace(a, normalize=True, mean=(0.3, 0.4, 0.5), std=(0.2, 0.25, 0.3))
    q = Pretrained(p.model, replace(p.recipe, augment=a), p.info, None)  # a recipe that standardised its inputs
    torch.testing.assert_close(q.features(x), extract_features(p.encoder, x, 8, None, a.mean, a.std))
    assert not torch.allclose(q.features(x), p.features(x))
    assert p.features(x, "z").shape == (6, p.recipe.proj_dim)
    with pytest.raises(ValueError, match="space must be 'h'"):
        p.features(x, "y")
    fresh = p.random_init()
    assert not torch.equal(fresh.features(x), p.features(x))
    from simclr_core.train.step import build_model
    torch.testing.assert_close(fresh.features(x), extract_features(build_model(p.recipe).encoder, x, 8))


def test_export_never_overwrites_a_folder_it_did_not_write(run_dir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("the user's")
    with pytest.raises(ValueError, match="a folder of other files .config.json., not one this library wrote"):
        export_pretrained(run_dir, mine)
    assert sorted(p.name for p in mine.iterdir()) == ["config.json"] and (mine / "config.json").read_text() == "the user's"
    other_run = tmp_path / "other_run"
    import shutil

    shutil.copytree(run_dir, other_run)
    with pytest.raises(ValueError, match="not one this library wrote"):  # a run folder is not an export folder
        export_pretrained(run_dir, other_run)
    again = export_pretrained(run_dir, export_pretrained(run_dir, tmp_path / "m"))  # an earlier export: replaced
    assert load_pretrained(again).info["steps_trained"] == 8

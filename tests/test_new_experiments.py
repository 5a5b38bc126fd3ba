"""The experiments of phenomena P3 (``experiments.negatives``) and P5 (``experiments.temperature``): their smoke
runs write well-formed JSON to the folder given, their arms share the cached plain-SimCLR run, and the phenomena
table computes P3 and P5 from their JSONs when present and keeps them ``not measured`` when absent."""

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from simclr_core import experiments as ex
from simclr_core.data.datasets import ImageDataset
from simclr_core.experiments import negatives, temperature
from simclr_core.experiments.phenomena import NOT_MEASURED, compute_phenomena
from simclr_core.experiments.phenomena_table import markdown
from simclr_core.experiments.stats import mean_sd

RESULTS = Path(__file__).resolve().parents[1] / "notebooks" / "results"
CACHED = ("fig5", "small_batch", "visualize", "vs_supervised")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    ex.main(["negatives", "temperature", "--preset", "smoke", "--out", str(out), "--no-cache", "--device", "cpu"])
    return out


@pytest.mark.parametrize("name,arm_key,arms", [("negatives", "groups", ["m=2", "m=16"]),
                                               ("temperature", "temperatures", ["tau=0.1", "tau=1"])])
def test_the_smoke_run_writes_well_formed_json(smoke, name, arm_key, arms):
    data = json.loads((smoke / f"{name}.json").read_text())
    assert data["experiment"] == name and data["preset"]["name"] == "smoke" and data["wall_s"] > 0
    assert data["command"] == f"python -m simclr_core.experiments {name} --preset smoke --dataset fashion-mnist"
    assert data["protocol"] and data["design"] and data[arm_key]
    assert list(data["variants"]) == arms
    for v in data["variants"].values():
        for metric in ("knn", "linear"):
            ms = v[metric]
            assert len(ms["values"]) == len(data["preset"]["seeds"]) == 2
            ref = mean_sd(ms["values"])
            assert (ms["mean"], ms["sd"]) == pytest.approx((ref["mean"], ref["sd"]))
            assert all(0 <= x <= 1 for x in ms["values"])
        assert len(v["final_loss"]) == 2 and v["train_s"] >= 0
    assert set(data["baselines"]) == {"random init", "raw pixels"}
    assert not (RESULTS / f"{name}.json").exists() or (smoke / f"{name}.json").read_text() != (
        RESULTS / f"{name}.json").read_text()


def test_the_negatives_arms_see_the_same_images_and_differ_in_negatives(smoke):
    data = json.loads((smoke / "negatives.json").read_text())
    assert [v["negatives"] for v in data["variants"].values()] == [2, 30]
    assert {v["run"]["batch_size"] for v in data["variants"].values()} == {16}


def test_the_plain_arms_are_the_cached_simclr_run():
    """m = N and tau = 0.2 are the run small_batch and visualize cache: the same key, trained once."""
    cpu = ex.PRESETS["cpu"]
    plain = ex.ShortRun(steps=cpu.steps, batch_size=cpu.batch_size, widths=cpu.widths)
    assert negatives.arms(cpu)["m=128"] == plain == temperature.arms(cpu)["tau=0.2"]
    assert "group_pairs" not in plain.key() and replace(plain, group_pairs=4).key()["group_pairs"] == 4
    assert replace(plain, group_pairs=4).negatives_per_anchor == 6 and plain.negatives_per_anchor == 254
    with pytest.raises(ValueError, match=r"group_pairs .* N = 128, got 3; valid: \[2, 4, 8, 16, 32, 64, 128\]"):
        ex.ShortRun(group_pairs=3)


def test_a_bank_run_names_its_draws_in_the_cache_key():
    """A bank run trained when its draws could hit the anchor's own entry must not be found again."""
    plain = ex.ShortRun()
    bank = replace(plain, bank_negatives=64)
    assert bank.key()["bank_draws"] == ex.short_run.BANK_DRAWS and "bank_draws" not in plain.key()


def test_a_grouped_run_is_cached_apart_from_the_plain_one(tmp_path):
    g = torch.Generator().manual_seed(0)
    train = ImageDataset(torch.randint(0, 256, (32, 1, 12, 12), generator=g, dtype=torch.uint8),
                         torch.randint(0, 3, (32,), generator=g), ("a", "b", "c"), "fashion-mnist")
    run, views = ex.ShortRun(steps=2, batch_size=8, widths=(4, 8), head_dim=8), ex.compose(["crop"], size=8)
    _, plain = ex.pretrain_short(train, views, run, progress=False, cache=tmp_path)
    _, grouped = ex.pretrain_short(train, views, replace(run, group_pairs=2), progress=False, cache=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2 and plain["loss"][0] != grouped["loss"][0]


def test_all_runs_the_new_experiments():
    assert {"negatives", "temperature", "pretraining", "composition"} <= set(ex.EXPERIMENTS)


def test_the_composition_arms_differ_from_the_main_run_only_in_their_views(tmp_path):
    """P2 at length: the default-policy arm is the main run (the same ShortRun, views None: one cache entry), each
    other arm the grid's operators at the preset's view size; every arm on the same seeds."""
    from simclr_core.experiments import composition

    ex.main(["composition", "--preset", "smoke", "--out", str(tmp_path), "--no-cache", "--device", "cpu"])
    data = json.loads((tmp_path / "composition.json").read_text())
    smoke = ex.PRESETS["smoke"]
    assert list(data["variants"]) == list(composition.ARMS)
    assert data["run"] == json.loads(json.dumps(asdict(ex.ShortRun(steps=smoke.steps, batch_size=smoke.batch_size,
                                                                   widths=smoke.widths))))
    assert data["variants"]["default policy"]["ops"] is None
    assert data["variants"]["crop then color"]["ops"] == ["crop", "color"]
    assert all(len(v[m]["values"]) == len(smoke.seeds) for v in data["variants"].values() for m in ("knn", "linear"))


def _copy_cached(folder: Path) -> None:
    for name in CACHED:
        shutil.copy(RESULTS / f"{name}.json", folder / f"{name}.json")


def _arm(knn, linear) -> dict:
    return {"knn": mean_sd([x / 100 for x in knn]), "linear": mean_sd([x / 100 for x in linear])}


def _hand_made(folder: Path) -> None:
    seeds = {"seeds": [0, 1, 2]}
    neg = {"experiment": "negatives", "preset": seeds, "groups": [4, 16, 128], "batch_size": 128, "variants": {
        "m=4": _arm([76, 77, 78], [85, 86, 87]), "m=16": _arm([77, 78, 79], [85, 86, 87]),
        "m=128": _arm([80, 81, 82], [85.2, 85.9, 87.1])}}
    taus = {"tau=0.05": _arm([70, 71, 72], [84, 85, 86]), "tau=0.2": _arm([80, 81, 82], [85, 86, 87]),
            "tau=0.5": _arm([79.8, 81.1, 81.9], [88, 89, 90]), "tau=1": _arm([75, 75, 75], [85, 86, 87])}
    tem = {"experiment": "temperature", "preset": seeds, "temperatures": [0.05, 0.2, 0.5, 1.0], "variants": taus}
    (folder / "negatives.json").write_text(json.dumps(neg))
    (folder / "temperature.json").write_text(json.dumps(tem))


def test_p3_and_p5_rows_from_hand_made_results(tmp_path):
    _copy_cached(tmp_path)
    _hand_made(tmp_path)
    table = compute_phenomena(tmp_path)
    rows = {r["id"]: r for r in table["rows"]}
    assert rows["P3 m=128 vs m=4 (knn)"]["differences"] == pytest.approx([4, 4, 4], abs=1e-3)
    assert rows["P3 m=128 vs m=4 (knn)"]["verdict"] == "shown"
    assert rows["P3 m=128 vs m=4 (linear)"]["verdict"] == "not shown"
    assert "254 vs 6 negatives" in rows["P3 m=128 vs m=4 (knn)"]["comparison"]
    assert rows["P5 tau=0.2 vs tau=1 (knn)"]["verdict"] == "shown"  # best mean kNN: tau = 0.2
    assert rows["P5 tau=0.2 vs tau=0.05 (knn)"]["verdict"] == "shown"
    assert rows["P5 tau=0.2 vs tau=0.5 (knn)"]["verdict"] == "not shown"  # inside the noise
    assert rows["P5 tau=0.2 vs tau=0.5 (linear)"]["verdict"] == "contradicts"  # the probe prefers 0.5
    assert not any(r["verdict"] == "not measured" for r in table["rows"] if r["phenomenon"] in ("P3", "P5"))
    assert len([r for r in table["rows"] if r["phenomenon"] == "P5"]) == 6
    for lang in ("en", "zh"):
        lines = [line for line in markdown(table, lang).splitlines() if line.startswith("| P")]
        assert len(lines) == len(table["rows"])


def test_absent_results_keep_p1_and_p2_at_length_p3_and_p5_not_measured(tmp_path):
    _copy_cached(tmp_path)
    rows = [r for r in compute_phenomena(tmp_path)["rows"] if r["verdict"] == "not measured"]
    assert [r["phenomenon"] for r in rows] == ["P1", "P2", "P3", "P5"]
    assert [r["reason"] for r in rows] == [s["reason"][0] for s in NOT_MEASURED]


def test_p1_at_length_rows_from_hand_made_results(tmp_path):
    _copy_cached(tmp_path)
    run = {"experiment": "pretraining", "preset": {"seeds": [0, 1, 2]}, "steps": 6000, "variants": {
        "SimCLR, 6,000 steps": _arm([81, 82, 83], [88, 88.5, 89])}, "baselines": {
        "random init": _arm([75, 76, 77], [84, 86, 85])}}
    (tmp_path / "pretraining.json").write_text(json.dumps(run))
    rows = {r["id"]: r for r in compute_phenomena(tmp_path)["rows"] if r["phenomenon"] == "P1"}
    assert rows["P1 6,000 steps (knn)"]["differences"] == pytest.approx([6, 6, 6], abs=1e-3)
    assert rows["P1 6,000 steps (knn)"]["verdict"] == "shown"
    assert rows["P1 6,000 steps (linear)"]["differences"] == pytest.approx([4, 2.5, 4], abs=1e-3)
    assert rows["P1 6,000 steps (linear)"]["verdict"] == "shown"
    assert "pretrained 6,000 steps vs random init" in rows["P1 6,000 steps (knn)"]["comparison"]
    assert len(rows) == 4  # the main runs' two rows stay


def test_p2_at_length_rows_from_hand_made_results(tmp_path):
    _copy_cached(tmp_path)
    arms = {"default policy": _arm([78, 78, 78], [87, 87, 87]), "crop": _arm([70, 71, 72], [85, 85, 85]),
            "color": _arm([71, 71, 71], [84, 84.5, 84]), "crop then color": _arm([77, 78, 79], [87, 87, 87])}
    comp = {"experiment": "composition", "preset": {"seeds": [0, 1, 2]}, "run": {"steps": 1200, "batch_size": 128},
            "variants": arms, "baselines": {"random init": _arm([75, 76, 77], [84, 84, 84])}}
    (tmp_path / "composition.json").write_text(json.dumps(comp))
    rows = {r["id"]: r for r in compute_phenomena(tmp_path)["rows"] if r["id"].startswith("P2 at length")}
    assert len(rows) == 8
    assert rows["P2 at length: crop then colour vs crop alone (knn)"]["differences"] == pytest.approx([7, 7, 7])
    assert rows["P2 at length: default augmentation policy vs random init (knn)"]["differences"] == \
        pytest.approx([3, 2, 1])
    assert rows["P2 at length: crop then colour vs colour alone (linear)"]["differences"] == \
        pytest.approx([3, 2.5, 3])
    assert "1,200 steps of 128 pairs" in rows["P2 at length: crop then colour vs crop alone (knn)"]["note"]


def test_smoke_results_give_p3_and_p5_rows_without_verdicts(smoke, tmp_path):
    """Two seeds (smoke): the rows carry their differences, but no verdict."""
    _copy_cached(tmp_path)
    for name in ("negatives", "temperature"):
        shutil.copy(smoke / f"{name}.json", tmp_path / f"{name}.json")
    table = compute_phenomena(tmp_path)
    rows = [r for r in table["rows"] if r["phenomenon"] in ("P3", "P5")]
    assert len(rows) == 4 and all(r["verdict"] == "not measured" and len(r["differences"]) == 2 for r in rows)
    assert "only 2 seeds" in markdown(table, "en")

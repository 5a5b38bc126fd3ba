"""The time budget (Recipe.minutes): the arithmetic against hand-worked cases, and end to end: the planned
steps are what the run trains, planning does not disturb the run, and a resumed run keeps its schedule."""

import json

import pytest
import torch

from tests.trainer_helpers import assert_same_weights, interrupt_at_call, tiny
from simclr_core.cli import main as cli_main
from simclr_core.precision import Precision
from simclr_core.train import budget
from simclr_core.train import runs as runs_mod
from simclr_core.train.checkpoint import load_checkpoint
from simclr_core.train.config import Recipe, preset
from simclr_core.train.loop import Trainer
from simclr_core.train.runs import CHECKPOINT, CONFIG, pretrain
from simclr_core.train.step import build_model


# ---------------------------------------------------------------- the arithmetic

@pytest.mark.parametrize("budget_s,expected", [
    (60.0, 400),   # 0.1 s/step x 100 steps + 5 s monitor = 15 s an epoch: exactly 4 epochs
    (50.0, 300),   # 3 epochs (45 s); the 5 s left only pay a monitor pass, so no partial epoch
    (52.0, 320),   # 3 epochs + 7 s: 5 s monitor + 20 steps of 0.1 s
    (14.9, 99),    # not one whole epoch: (14.9 - 5) / 0.1 = 99 steps
    (1.0, 1),      # less than a monitor pass: still one step (a run trains at least one)
    (1e6, 1000),   # capped at the planned 10 epochs
])
def test_steps_in_budget_hand_worked(budget_s, expected):
    assert budget.steps_in_budget(budget_s, step_s=0.1, monitor_s=5.0, steps_per_epoch=100, max_steps=1000) == expected


def test_steps_in_budget_without_monitor_is_budget_over_step_time():
    assert budget.steps_in_budget(30.0, 0.25, 0.0, 50, 10_000) == 120


@pytest.mark.parametrize("kw,needle", [
    (dict(budget_s=0.0), "budget_s must be .* got 0.0"),
    (dict(step_s=float("nan")), "step_s must be .* got nan"),
    (dict(monitor_s=-1.0), "monitor_s must be .* got -1.0"),
    (dict(steps_per_epoch=0), "steps_per_epoch must be a positive integer, got 0"),
    (dict(max_steps=2.5), "max_steps must be a positive integer, got 2.5"),
])
def test_steps_in_budget_rejects_bad_values(kw, needle):
    args = dict(budget_s=10.0, step_s=0.1, monitor_s=1.0, steps_per_epoch=10, max_steps=100) | kw
    with pytest.raises(ValueError, match=needle):
        budget.steps_in_budget(**args)


def test_plan_describes_what_the_budget_bought():
    plan = budget.plan_steps(1.0, step_s=0.1, monitor_s=5.0, steps_per_epoch=100, planned_steps=1000)
    assert plan.steps == 400 and plan.epochs == 4.0
    assert "100 ms/step" in plan.describe() and "4.00 epochs of the 10 planned" in plan.describe()
    with pytest.raises(ValueError, match="minutes must be .* got -3"):
        budget.plan_steps(-3, 0.1, 5.0, 100, 1000)
    with pytest.raises(ValueError, match="minutes must be a finite number > 0, got 0"):
        Recipe(minutes=0)


def test_timing_the_twin_leaves_the_trainer_untouched():
    cfg = Recipe(widths=(4, 8), proj_dim=8, batch_size=8)
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    tr = Trainer(cfg, build_model(cfg), images, Precision(torch.device("cpu")))
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    s = budget.time_steps(tr.twin().step, torch.device("cpu"), seconds=0.05)
    assert 0 < s < 60 and tr.global_step == 0
    for k, v in tr.model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=f"{k} changed")


# ---------------------------------------------------------------- end to end

def fixed_timing(monkeypatch, step_s, monitor_s):
    monkeypatch.setattr(budget, "time_steps", lambda *a, **k: step_s)
    monkeypatch.setattr(budget, "time_monitor", lambda monitor: monitor_s)


@pytest.mark.slow
def test_the_run_trains_the_planned_steps_and_records_them(cifar_root, tmp_path, monkeypatch):
    # 4 steps an epoch; 1 s/step and 2 s/monitor: an epoch is 6 s, so 0.2 min = 12 s buys 2 epochs = 8 steps
    fixed_timing(monkeypatch, 1.0, 2.0)
    out = tmp_path / "run"
    r = pretrain(*tiny(cifar_root, out, minutes=0.2, epochs=3))
    assert r.recipe.max_steps == 8 and r.extra["budget"]["steps"] == 8
    assert [h["steps"] for h in r.history] == [4, 4]
    assert json.loads((out / CONFIG).read_text())["recipe"]["max_steps"] == 8
    assert load_checkpoint(out / CHECKPOINT)["config"]["max_steps"] == 8
    # 15 s: 2 epochs (12 s), then 3 s: a monitor pass (2 s) and one step of a third epoch
    assert pretrain(*tiny(cifar_root, None, minutes=15 / 60, epochs=3)).recipe.max_steps == 9


@pytest.mark.slow
def test_planning_does_not_disturb_the_run(cifar_root):
    """Real timing on a copy of the model: the run equals, bit for bit, one given the planned max_steps directly."""
    planned = pretrain(*tiny(cifar_root, None, minutes=0.05, epochs=2))
    steps = planned.recipe.max_steps
    assert 1 <= steps <= 8 and planned.extra["budget"]["step_s"] > 0
    direct = pretrain(*tiny(cifar_root, None, epochs=2, max_steps=steps))
    assert_same_weights(planned.model, direct.model)


@pytest.mark.slow
def test_a_resumed_budget_run_keeps_its_schedule(cifar_root, tmp_path, monkeypatch):
    fixed_timing(monkeypatch, 1.0, 2.0)  # 3 epochs of 6 s in 0.3 min: max_steps 12
    full = pretrain(*tiny(cifar_root, tmp_path / "full", minutes=0.3, epochs=3))
    assert full.recipe.max_steps == 12

    interrupt_at_call(monkeypatch, 7)  # in epoch 1 (4 steps an epoch)
    with pytest.raises(KeyboardInterrupt):
        pretrain(*tiny(cifar_root, tmp_path / "cut", minutes=0.3, epochs=3))
    monkeypatch.undo()
    fixed_timing(monkeypatch, 100.0, 100.0)  # a slower machine now: resuming must not re-plan
    resumed = pretrain(*tiny(cifar_root, tmp_path / "cut", minutes=0.3, epochs=3, resume=True))
    assert resumed.recipe.max_steps == 12
    assert_same_weights(full.model, resumed.model, " after resume")


def test_cli_epochs_alone_trains_exactly_those_epochs(monkeypatch, tmp_path):
    seen = {}

    def fake_pretrain(cfg, options):
        seen["cfg"] = cfg
        raise ValueError("stop here")

    monkeypatch.setattr(runs_mod, "pretrain", fake_pretrain)
    base = ["pretrain", "--dataset", "fashion-mnist", "--out", str(tmp_path / "r")]
    assert cli_main(base) == 2
    assert seen["cfg"].minutes == preset("cpu", "fashion-mnist").minutes is not None
    assert cli_main(base + ["--epochs", "2"]) == 2 and seen["cfg"].minutes is None and seen["cfg"].epochs == 2
    assert cli_main(base + ["--epochs", "2", "--minutes", "3"]) == 2 and seen["cfg"].minutes == 3.0

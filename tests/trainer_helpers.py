"""Shared by the trainer and budget tests: a tiny run on a CIFAR-format folder, weight snapshots, and a stand-in
for the objective's loss that interrupts a run at a chosen step."""

from __future__ import annotations

from dataclasses import fields

import torch

from simclr_core.train import step as step_mod
from simclr_core.train.config import Recipe, RunOptions

_OPTION_FIELDS = {f.name for f in fields(RunOptions)}


def tiny(cifar_root, out, **kw) -> tuple[Recipe, RunOptions]:
    """(recipe, options) of an 8-16 CNN on the 200-image fixture: 4 steps an epoch of batch 50."""
    base = dict(dataset="cifar10", data_root=str(cifar_root), encoder="small_cnn", widths=(8, 16), proj_dim=16,
                epochs=2, batch_size=50, warmup_epochs=0.5, monitor_train=100, monitor_test=60, knn_k=20,
                minutes=None, progress=False, out=None if out is None else str(out), seed=7)
    base.update(kw)
    opts = {k: v for k, v in base.items() if k in _OPTION_FIELDS}
    return Recipe(**{k: v for k, v in base.items() if k not in _OPTION_FIELDS}), RunOptions(**opts)


def weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a_model, b_model, what: str = "") -> None:
    a, b = weights(a_model), weights(b_model)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{k} differs{what}")


def interrupt_at_call(monkeypatch, n: int) -> None:
    """Make the n-th computed SimCLR loss raise KeyboardInterrupt (as Ctrl-C would in that step)."""
    real, calls = step_mod.SimCLRObjective.loss, {"n": 0}

    def loss(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, *args, **kw)

    monkeypatch.setattr(step_mod.SimCLRObjective, "loss", loss)

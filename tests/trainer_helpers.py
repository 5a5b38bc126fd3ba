"""Shared by the trainer and budget tests: a tiny run config on a CIFAR-format folder, weight snapshots, and a
stand-in for ``trainer.simclr_loss`` that interrupts a run at a chosen step."""

from __future__ import annotations

import torch

from simclr_core import trainer as trainer_mod
from simclr_core.train.config import TrainConfig


def tiny(cifar_root, out, **kw) -> TrainConfig:
    """An 8-16 CNN on the 200-image fixture: 4 steps an epoch of batch 50."""
    base = dict(dataset="cifar10", data_root=str(cifar_root), encoder="small_cnn", widths=(8, 16), proj_dim=16,
                epochs=2, batch_size=50, warmup_epochs=0.5, monitor_train=100, monitor_test=60, knn_k=20,
                progress=False, out=None if out is None else str(out), seed=7)
    base.update(kw)
    return TrainConfig(**base)


def weights(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a_model, b_model, what: str = "") -> None:
    a, b = weights(a_model), weights(b_model)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{k} differs{what}")


def interrupt_at_call(monkeypatch, n: int) -> None:
    """Make the n-th call of trainer.simclr_loss raise KeyboardInterrupt (as Ctrl-C would in that step)."""
    real, calls = trainer_mod.simclr_loss, {"n": 0}

    def step(*args, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(trainer_mod, "simclr_loss", step)

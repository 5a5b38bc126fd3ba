"""Learning-rate schedule and optimizers for SimCLR pretraining.

Chen et al. 2020 (arXiv:2002.05709), Sec. B.1 and B.9: LARS (You et al. 2017, arXiv:1708.03888) with
learning rate = base x BatchSize/256 ("linear" scaling), linear warmup for the first 10 epochs, then
cosine decay without restarts; weight decay 1e-6 (ImageNet) / 1e-4 (the reference repo's CIFAR-10
command); batch-norm and bias parameters are excluded from weight decay and from the LARS trust ratio.
Plain SGD with momentum is the small-batch alternative (the cpu preset).

Read bottom-up: ``lr_at`` is the schedule as a formula, ``param_groups`` splits decayed / not decayed
parameters, ``LARS`` is the layer-wise adaptive update, ``build_optimizer`` picks one.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .. import checks

__all__ = ["lr_at", "scaled_lr", "param_groups", "LARS", "build_optimizer", "set_lr"]

LR_SCALINGS = ("linear", "sqrt", "none")
OPTIMIZERS = ("sgd", "lars")


def scaled_lr(base_lr: float, batch_size: int, scaling: str = "linear") -> float:
    """Peak learning rate: base x B/256 (linear), base x sqrt(B) (sqrt, paper's small-batch LARS), or base."""
    checks.positive_float("base_lr", base_lr)
    checks.positive_int("batch_size", batch_size)
    if scaling == "linear":
        return base_lr * batch_size / 256
    if scaling == "sqrt":
        return base_lr * math.sqrt(batch_size)
    if scaling == "none":
        return base_lr
    raise ValueError(f"lr scaling must be one of {LR_SCALINGS}, got {scaling!r}")


def lr_at(step: int, total_steps: int, warmup_steps: int, peak_lr: float) -> float:
    """Linear warmup from peak/warmup to peak over ``warmup_steps``, then cosine decay to 0 at ``total_steps``.

        lr(t) = peak * (t + 1) / W                                   for t < W
        lr(t) = peak * 0.5 * (1 + cos(pi * (t - W) / (T - W)))       for W <= t < T
    """
    checks.nonnegative_int("step", step)
    checks.positive_int("total_steps", total_steps)
    checks.nonnegative_int("warmup_steps", warmup_steps)
    checks.nonnegative_float("peak_lr", peak_lr)
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return peak_lr
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights of conv/linear layers (decayed, LARS-adapted) and 1-d parameters (BN, biases: neither)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars": True},
        {"params": no_decay, "weight_decay": 0.0, "lars": False},
    ]


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017), as in the SimCLR repo's LARS:

        g <- grad + wd * w
        lr_layer = lr * eta * ||w|| / ||g||     (groups with lars=True, when both norms are > 0)
        v <- momentum * v + lr_layer * g ;   w <- w - v
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        if lr < 0 or not 0 <= momentum < 1 or weight_decay < 0 or eta <= 0:
            raise ValueError(f"invalid LARS settings: lr={lr!r}, momentum={momentum!r}, weight_decay={weight_decay!r}, eta={eta!r}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                if group["weight_decay"]:
                    g = g.add(w, alpha=group["weight_decay"])
                lr = group["lr"]
                if group["lars"]:
                    w_norm, g_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(g)
                    trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm))
                    g = g * trust
                state = self.state[w]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(w)
                v = state["momentum_buffer"]
                v.mul_(group["momentum"]).add_(g, alpha=lr)
                w.sub_(v)
        return loss


def build_optimizer(name: str, model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """``sgd`` (torch SGD with momentum) or ``lars``; BN/bias parameters get no weight decay in both.

    SGD runs torch's fused kernel when every parameter is on the CPU or a CUDA device (one pass over each
    tensor instead of several; the update is the same; ``benchmarks/bench_step.py`` times it against torch's
    default per-tensor loop).
    """
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        for grp in groups:
            grp.pop("lars")
        fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, fused=fused)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")

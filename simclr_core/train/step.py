"""One SimCLR step's pieces, bottom-up: the model, the two views' projections, and the objective.

Chen et al. 2020 (arXiv:2002.05709), Algorithm 1: for a minibatch x of N images draw two views t(x), t'(x),
z = g(f(view)), loss = NT-Xent(z1, z2, tau) (eq. 1). An *objective* turns the two views into a loss; the plain one
is SimCLR's, the others add negatives from outside the batch (notebook 07) or remove them (notebook 08's collapse):

- ``SimCLRObjective``: in-batch negatives (the 2N - 2 other views), or ``nt_xent_distributed`` under torchrun;
- ``GroupedObjective``: NT-Xent within groups of m pairs of the batch (2m - 2 negatives per anchor), so that the
  negatives an anchor sees vary while the images per step stay N (``experiments.negatives``);
- ``QueueObjective``: + a FIFO queue of the last K keys, optionally from a momentum encoder (MoCo);
- ``MemoryBankObjective``: + K negatives drawn from a bank of one stored embedding per image (PIRL-style);
- ``AlignmentObjective``: only -cos(z1, z2), no negatives: the representation collapses.

Every objective has ``loss(model, v1, v2, idx, precision)`` and ``after_step(model)``; its state (queue, momentum
encoder, bank, random stream) is in ``state_dict()`` so that a checkpoint resumes it exactly.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checks
from ..nn.fast_layers import use_fast_layers
from ..nn.loss import nt_xent_unchecked
from ..nn.ntxent import ntxent_losses
from ..nn.models import ProjectionHead, SimCLR, build_encoder, small_cnn
from ..nn.queue import MemoryBank, MomentumEncoder, NegativeQueue, nt_xent_with_queue_unchecked
from ..precision import Precision
from .config import Recipe

__all__ = ["build_model", "project", "SimCLRObjective", "GroupedObjective", "grouped_nt_xent", "check_group_pairs",
           "QueueObjective", "MemoryBankObjective", "AlignmentObjective"]


def build_model(recipe: Recipe) -> SimCLR:
    """f = the recipe's encoder, g = the 2-layer MLP head to ``proj_dim`` (128 in the paper), or none.

    The weights are drawn from ``recipe.seed`` alone, in a forked random stream: the same recipe always gives the
    same initial weights (so the random-init baseline of a run is ``build_model(run_recipe)``) and the global
    random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        if recipe.widths is not None:
            encoder = small_cnn(recipe.in_channels, widths=tuple(recipe.widths))
        else:
            encoder = build_encoder(recipe.encoder, in_channels=recipe.in_channels)
        head = ProjectionHead(encoder.out_dim, recipe.proj_hidden, recipe.proj_dim) if recipe.head else None
    if recipe.fast_layers:
        use_fast_layers(encoder)
    return SimCLR(encoder, head)


def project(model: nn.Module, views: torch.Tensor, precision: Precision) -> torch.Tensor:
    """z = g(f(views)) for a batch of views (B, C, s, s), under the run's precision; z in float32 (B, d_z)."""
    with precision.autocast():
        _, z = model(precision.inputs(views))  # (B, d_z)
    return z.float()


class SimCLRObjective:
    """NT-Xent with in-batch negatives. Both views go through the network in one batch of 2N, so BatchNorm
    normalises them together (as the paper's implementation does)."""

    def __init__(self, temperature: float, loss_fn=None):
        self.tau = checks.temperature("temperature", temperature)
        self.loss_fn = loss_fn or nt_xent_unchecked  # torchrun: train.distributed.nt_xent_distributed

    def loss(self, model, v1, v2, idx, precision: Precision) -> torch.Tensor:
        z1, z2 = project(model, torch.cat([v1, v2]), precision).chunk(2)  # (N, d_z) each
        return self.loss_fn(z1, z2, self.tau)  # scalar, mean over the 2N anchors

    def after_step(self, model) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def check_group_pairs(group_pairs, batch_size: int) -> int:
    """m, the pairs per NT-Xent group: an integer >= 2 that divides the batch's N pairs (m = 1 would leave an
    anchor no negative at all: its loss is 0 and so is its gradient; the no-negatives ablation is
    ``AlignmentObjective``)."""
    if isinstance(group_pairs, bool) or not isinstance(group_pairs, int) or group_pairs < 2 \
            or batch_size % group_pairs:  # checked on every step of a grouped run: the list of divisors only for the error
        valid = [m for m in range(2, batch_size + 1) if batch_size % m == 0]
        raise ValueError(f"group_pairs (m, pairs per NT-Xent group) must be an integer >= 2 that divides the batch "
                         f"size N = {batch_size}, got {group_pairs!r}; valid: {valid}")
    return group_pairs


def grouped_nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float, group_pairs: int) -> torch.Tensor:
    """NT-Xent computed within groups: pairs [g m, (g + 1) m) of (z1, z2) form group g, whose 2m rows are an
    NT-Xent batch of their own (``nn.ntxent.ntxent_losses``), so each anchor's denominator holds the 2m - 2 other
    rows of its group. Returns the mean over all 2N anchors (= the mean of the groups' means, the groups being
    equal in size); with m = N it is ``nt_xent``. The batch is shuffled by the loader, so contiguous groups are
    random groups. One (2N, 2N) product with the other groups' logits masked, not a loop over groups: at N = 128
    the full product costs less than a Python call per group. Checked on shapes only (no host synchronisation)."""
    m = check_group_pairs(group_pairs, z1.shape[0])
    return ntxent_losses(torch.cat([z1, z2]), tau, group_pairs=m)  # (2N, D) [view 1, view 2]


class GroupedObjective(SimCLRObjective):
    """NT-Xent with the batch's N pairs split into N / m groups (``grouped_nt_xent``): the network still sees N
    images per step, in one batch of 2N views (BatchNorm as in ``SimCLRObjective``); only the negatives per anchor
    change, 2m - 2 instead of 2N - 2 (the fixed-images comparison of ``experiments.negatives``)."""

    def __init__(self, temperature: float, group_pairs: int, batch_size: int):
        super().__init__(temperature)
        self.m = check_group_pairs(group_pairs, checks.positive_int("batch_size", batch_size))

    def loss(self, model, v1, v2, idx, precision: Precision) -> torch.Tensor:
        z1, z2 = project(model, torch.cat([v1, v2]), precision).chunk(2)  # (N, d_z) each
        return grouped_nt_xent(z1, z2, self.tau, self.m)


class QueueObjective(SimCLRObjective):
    """NT-Xent whose denominator also runs over a FIFO of the last ``size`` keys (MoCo, He et al. 2020).

    ``momentum`` None: the keys are the second view's z from the network itself (a queue of stale embeddings);
    a number m: they come from an exponential-moving-average copy (theta_k <- m theta_k + (1 - m) theta_q), and
    only the first view gets a gradient. Keys enter the queue after the step: a batch never meets its own keys."""

    def __init__(self, temperature: float, model: nn.Module, size: int, momentum: float | None = None):
        super().__init__(temperature)
        dim = model.head.out_dim if hasattr(model.head, "out_dim") else model.encoder.out_dim
        device = next(model.parameters()).device
        self.queue = NegativeQueue(dim, size).to(device)
        self.keys_from = MomentumEncoder(model, momentum) if momentum is not None else None
        self._keys = None

    def loss(self, model, v1, v2, idx, precision: Precision) -> torch.Tensor:
        if self.keys_from is None:
            z1, z2 = project(model, torch.cat([v1, v2]), precision).chunk(2)  # (N, d_z) each
        else:
            z1 = project(model, v1, precision)  # (N, d_z) queries
            with torch.no_grad():
                z2 = project(self.keys_from.target, v2, precision)  # (N, d_z) keys, no gradient
        self._keys = z2.detach()
        return nt_xent_with_queue_unchecked(z1, z2, self.queue.keys, self.tau)

    def after_step(self, model) -> None:
        if self.keys_from is not None:
            self.keys_from.update(model)
        self.queue.enqueue(self._keys)

    def state_dict(self) -> dict:
        state = {"queue": self.queue.state_dict()}
        if self.keys_from is not None:
            state["keys_from"] = self.keys_from.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.queue.load_state_dict(state["queue"])
        if self.keys_from is not None:
            self.keys_from.load_state_dict(state["keys_from"])


class MemoryBankObjective(SimCLRObjective):
    """NT-Xent with ``negatives`` extra negatives drawn uniformly from a memory bank of one embedding per dataset
    image, which the step then updates with momentum (PIRL-style; ``simclr_core.nn.queue.MemoryBank``). The draws
    skip the batch's own images, so no anchor ever meets its own stored entry as a negative.

    ``refresh_every`` k > 0 (with ``images`` and ``view``): every k steps every entry is rewritten as the update
    writes it, from two fresh views of its image (``view(x, generator)``) under the current network, so no entry is
    more than k steps old; with a small batch an entry is otherwise rewritten only about every n / N steps. A
    diagnostic: it tells whether the bank's negatives hurt because they are stale (notebook 07)."""

    def __init__(self, temperature: float, model: nn.Module, n_images: int, negatives: int, momentum: float = 0.5,
                 seed: int = 0, refresh_every: int = 0, images: torch.Tensor | None = None, view=None):
        super().__init__(temperature)
        dim = model.head.out_dim if hasattr(model.head, "out_dim") else model.encoder.out_dim
        self.bank = MemoryBank(n_images, dim, momentum, seed).to(next(model.parameters()).device)
        self.K = checks.positive_int("negatives", negatives)
        self.g = torch.Generator().manual_seed(seed + 1)  # which entries are drawn: its own stream
        self.refresh_every = checks.nonnegative_int("refresh_every", refresh_every)
        if self.refresh_every and (images is None or view is None or len(images) != n_images):
            raise ValueError(f"refresh_every={refresh_every} needs the n_images = {n_images} images and a view function "
                             f"to re-encode them, got {None if images is None else len(images)} images")
        self.images, self.view, self.steps = images, view, 0
        self.g_views = torch.Generator().manual_seed(seed + 2)  # the refreshes' views: their own stream
        self._update = None

    def loss(self, model, v1, v2, idx, precision: Precision) -> torch.Tensor:
        z1, z2 = project(model, torch.cat([v1, v2]), precision).chunk(2)  # (N, d_z) each
        self._update = (idx, (F.normalize(z1.detach(), dim=1) + F.normalize(z2.detach(), dim=1)) / 2)
        negatives = self.bank.sample(self.K, self.g, exclude=idx)  # (K, d_z) never an image of this batch
        return nt_xent_with_queue_unchecked(z1, z2, negatives, self.tau)

    def after_step(self, model) -> None:
        self.bank.update(*self._update)
        self.steps += 1
        if self.refresh_every and self.steps % self.refresh_every == 0:
            self.bank.bank.copy_(self.encode_all(model))

    @torch.no_grad()
    def encode_all(self, model, chunk: int = 1024) -> torch.Tensor:
        """(n_images, d_z): every entry as ``update`` computes it, the mean of the unit z of two views, under the
        network as it is now, in training mode like the steps' embeddings (BatchNorm on batches of ``chunk``
        images' views); BatchNorm's running statistics are put back, so encoding changes nothing in the model."""
        device = self.bank.bank.device
        kept = [b.clone() for b in model.buffers()]
        try:
            rows = []
            for x in self.images.split(chunk):
                x = x.to(device)
                z1, z2 = model(torch.cat([self.view(x, self.g_views), self.view(x, self.g_views)]))[1].float().chunk(2)
                rows.append((F.normalize(z1, dim=1) + F.normalize(z2, dim=1)) / 2)
        finally:
            for b, k in zip(model.buffers(), kept):
                b.copy_(k)
        return F.normalize(torch.cat(rows), dim=1)

    def state_dict(self) -> dict:
        return {"bank": self.bank.state_dict(), "g": self.g.get_state(), "steps": self.steps,
                "g_views": self.g_views.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.bank.load_state_dict(state["bank"])
        self.g.set_state(state["g"])
        self.steps = int(state.get("steps", 0))
        if "g_views" in state:
            self.g_views.set_state(state["g_views"])


class AlignmentObjective(SimCLRObjective):
    """Pull the two views together, push nothing apart: loss = -mean cos(z1, z2). Its minimum is reached by a
    constant map, so the representation collapses (notebook 08 shows it)."""

    def loss(self, model, v1, v2, idx, precision: Precision) -> torch.Tensor:
        z1, z2 = project(model, torch.cat([v1, v2]), precision).chunk(2)
        return -F.cosine_similarity(z1, z2).mean()

"""The negative queue, the queue loss against a naive loop, and the momentum encoder."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from simclr_core.nn.loss import nt_xent
from simclr_core.nn.queue import MomentumEncoder, NegativeQueue, momentum_update, nt_xent_with_queue


def unit(x):
    return x / x.norm(dim=1, keepdim=True)


def test_fifo_order_and_size_cap():
    q = NegativeQueue(dim=2, size=4)
    assert len(q) == 0 and q.size == 4 and q.keys.shape == (0, 2)
    # key t is the unit vector at angle t, so we can read back which keys are stored and in what order
    def key(t):
        return torch.tensor([[math.cos(t), math.sin(t)]])

    def stored_angles():
        return [round(math.atan2(float(k[1]), float(k[0])), 6) for k in q.keys]

    for t in range(3):
        q.enqueue(key(0.1 * t))
    assert len(q) == 3 and stored_angles() == [0.0, 0.1, 0.2]
    q.enqueue(torch.cat([key(0.3), key(0.4), key(0.5)]))  # overflows by 2: the two oldest go
    assert len(q) == 4 and stored_angles() == [0.2, 0.3, 0.4, 0.5]
    q.enqueue(key(0.6))
    assert stored_angles() == [0.3, 0.4, 0.5, 0.6]
    q.enqueue(torch.cat([key(0.1 * t) for t in range(7, 13)]))  # more than size at once: newest 4 survive
    assert stored_angles() == [0.9, 1.0, 1.1, 1.2]


def test_keys_are_normalised_and_detached():
    q = NegativeQueue(dim=3, size=10)
    x = torch.tensor([[3.0, 0.0, 4.0], [0.0, 2.0, 0.0]], requires_grad=True)
    q.enqueue(x * 1.0)
    torch.testing.assert_close(q.keys, torch.tensor([[0.6, 0.0, 0.8], [0.0, 1.0, 0.0]]))
    assert not q.keys.requires_grad


def test_state_dict_roundtrip_keeps_order():
    q = NegativeQueue(dim=4, size=5)
    q.enqueue(torch.randn(7, 4))
    r = NegativeQueue(dim=4, size=5)
    r.load_state_dict(q.state_dict())
    torch.testing.assert_close(r.keys, q.keys)
    assert len(r) == 5


@pytest.mark.parametrize("bad", [torch.randn(3, 5), torch.randn(4), torch.full((2, 4), float("nan"))])
def test_enqueue_rejects_bad_keys(bad):
    with pytest.raises(ValueError):
        NegativeQueue(dim=4, size=8).enqueue(bad)


@pytest.mark.parametrize("dim,size", [(0, 4), (4, 0), (4, 2.5), (True, 3)])
def test_constructor_rejects_bad_sizes(dim, size):
    with pytest.raises(ValueError, match="positive integer"):
        NegativeQueue(dim, size)


def naive_queue_loss(z1, z2, keys, tau):
    """Loop reference: candidates of anchor i are the other 2N - 1 views plus every key; positive j(i)."""
    z = unit(torch.cat([z1, z2]).double())
    k = unit(keys.double()) if len(keys) else keys.double()
    N = z1.shape[0]
    out = []
    for i in range(2 * N):
        j = i + N if i < N else i - N
        num = math.exp(float(z[i] @ z[j]) / tau)
        den = sum(math.exp(float(z[i] @ z[c]) / tau) for c in range(2 * N) if c != i)
        den += sum(math.exp(float(z[i] @ kq) / tau) for kq in k)
        out.append(-math.log(num / den))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("N,K,tau", [(1, 5, 0.5), (3, 0, 0.1), (4, 7, 0.2), (8, 33, 1.0)])
def test_queue_loss_matches_naive_loop(N, K, tau):
    g = torch.Generator().manual_seed(10 * N + K)
    z1, z2 = torch.randn(N, 6, generator=g, dtype=torch.float64), torch.randn(N, 6, generator=g, dtype=torch.float64)
    keys = torch.randn(K, 6, generator=g, dtype=torch.float64)
    ref = naive_queue_loss(z1, z2, keys, tau)
    torch.testing.assert_close(nt_xent_with_queue(z1, z2, keys, tau, reduction="none"), ref, rtol=1e-9, atol=1e-9)
    q = NegativeQueue(6, max(K, 1)).double()
    if K:
        q.enqueue(keys)
    torch.testing.assert_close(nt_xent_with_queue(z1, z2, q, tau), ref.mean(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("N", [1, 2, 16])
def test_empty_queue_equals_nt_xent(N):
    z1, z2 = torch.randn(N, 8), torch.randn(N, 8)
    expected = nt_xent(z1, z2, 0.3, reduction="none")
    torch.testing.assert_close(nt_xent_with_queue(z1, z2, NegativeQueue(8, 64), 0.3, reduction="none"), expected)
    torch.testing.assert_close(nt_xent_with_queue(z1, z2, None, 0.3, reduction="none"), expected)


def test_no_self_negative():
    # a single pair whose two views coincide with the anchor: if the anchor were its own negative the
    # loss would be log 2 (two equal terms); without self-negatives it is exactly 0
    z = torch.tensor([[1.0, 0.0]])
    assert nt_xent_with_queue(z, z.clone(), None, 0.5).item() == 0.0
    # with one key orthogonal to it: loss = log(1 + exp(-1/tau)), again no anchor term
    tau = 0.5
    got = nt_xent_with_queue(z, z.clone(), torch.tensor([[0.0, 1.0]]), tau).item()
    assert got == pytest.approx(math.log(1 + math.exp(-1 / tau)), rel=1e-6)


def test_no_gradient_into_queued_keys():
    keys = torch.randn(5, 4, requires_grad=True)
    z1 = torch.randn(3, 4, requires_grad=True)
    z2 = torch.randn(3, 4, requires_grad=True)
    nt_xent_with_queue(z1, z2, keys, 0.5).backward()
    assert keys.grad is None
    assert z1.grad is not None and z1.grad.abs().sum() > 0
    # the gradient with respect to z1 equals the naive reference's autograd gradient with constant keys
    z1d = z1.detach().double().requires_grad_(True)
    zz = F.normalize(torch.cat([z1d, z2.detach().double()]), dim=1)
    k = F.normalize(keys.detach().double(), dim=1)
    logits = torch.cat([zz @ zz.T / 0.5 - torch.diag(torch.full((6,), float("inf"))), zz @ k.T / 0.5], 1)
    F.cross_entropy(logits, torch.tensor([3, 4, 5, 0, 1, 2])).backward()
    torch.testing.assert_close(z1.grad.double(), z1d.grad, rtol=1e-4, atol=1e-6)


def test_more_dissimilar_negatives_do_not_lower_loss():
    # adding negatives can only add positive terms to the denominator: the loss never decreases
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    base = nt_xent_with_queue(z1, z2, None, 0.2)
    assert nt_xent_with_queue(z1, z2, torch.randn(100, 8), 0.2) > base


def test_queue_dimension_mismatch_raises():
    with pytest.raises(ValueError, match="queue must be"):
        nt_xent_with_queue(torch.randn(2, 4), torch.randn(2, 4), torch.randn(3, 5), 0.5)


def test_momentum_update_is_ema_and_copies_buffers():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = MomentumEncoder(online, m=0.9)
    before = [p.clone() for p in target.target.parameters()]
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    online(torch.randn(8, 3))  # changes BN running stats
    target.update(online)
    for b, p, q in zip(before, online.parameters(), target.target.parameters()):
        torch.testing.assert_close(q, 0.9 * b + 0.1 * p)
        assert not q.requires_grad
    torch.testing.assert_close(target.target[1].running_mean, online[1].running_mean)
    out = target(torch.randn(2, 3))
    assert not out.requires_grad


def test_momentum_limits_and_validation():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    momentum_update(a, b, m=1.0)  # m = 1: the target never moves
    torch.testing.assert_close(b.weight, wb)
    momentum_update(a, b, m=0.0)  # m = 0: the target becomes the online network
    torch.testing.assert_close(b.weight, wa)
    with pytest.raises(ValueError, match="momentum"):
        momentum_update(a, b, m=1.5)
    with pytest.raises(ValueError, match="architecture"):
        momentum_update(a, nn.Linear(2, 3), m=0.5)


# ---------------------------------------------------------------- the memory bank

def _drawn(bank, *args, **kwargs) -> torch.Tensor:
    """Which entries a draw returned, on a bank whose entries are the unit basis vectors."""
    return bank.sample(*args, **kwargs).argmax(dim=1)


def test_memory_bank_draws_uniformly_from_the_entries_not_excluded():
    from simclr_core.nn.queue import MemoryBank

    bank = MemoryBank(12, 12, seed=0)
    bank.bank.copy_(torch.eye(12))
    banned = torch.tensor([0, 3, 3, 11, 5])
    counts = torch.bincount(_drawn(bank, 6000, torch.Generator().manual_seed(0), exclude=banned), minlength=12)
    assert counts[[0, 3, 5, 11]].sum() == 0
    allowed = counts[[1, 2, 4, 6, 7, 8, 9, 10]].double()
    assert (allowed - 750).abs().max() < 120  # 6000 / 8 each; the sd of one count is ~25
    with pytest.raises(ValueError, match="bans all 12 entries"):
        bank.sample(3, exclude=torch.arange(12))
    with pytest.raises(ValueError, match="0..11"):
        bank.sample(3, exclude=torch.tensor([12]))


def test_memory_bank_objective_never_draws_an_anchor_of_its_batch():
    """PIRL's bank holds a view of every image; an anchor's own entry drawn as a negative would push the anchor away
    from its own image. Half of this bank is the batch, so a draw that ignored the batch would hit it every other time."""
    from simclr_core.nn.models import ProjectionHead, SimCLR, small_cnn
    from simclr_core.precision import Precision
    from simclr_core.train.step import MemoryBankObjective

    torch.manual_seed(0)
    enc = small_cnn(1, widths=(4, 8))
    model = SimCLR(enc, ProjectionHead(enc.out_dim, 8, 4))
    objective = MemoryBankObjective(0.5, model, n_images=4, negatives=64, seed=0)
    objective.bank.bank.copy_(torch.eye(4))
    seen = []
    draw = objective.bank.sample

    def record(*args, **kwargs):
        out = draw(*args, **kwargs)
        seen.append(out.argmax(dim=1))
        return out

    objective.bank.sample = record
    idx = torch.tensor([0, 2])
    v = torch.rand(2, 1, 8, 8)
    for _ in range(5):
        loss = objective.loss(model, v, v.flip(3), idx, Precision(torch.device("cpu")))
        assert torch.isfinite(loss)
    drawn = torch.cat(seen)
    assert len(drawn) == 5 * 64 and not torch.isin(drawn, idx).any()
    assert set(drawn.tolist()) == {1, 3}


def _bank_setup(refresh_every: int):
    from simclr_core.data.augment import AugmentConfig
    from simclr_core.data.fast_augment import BatchAugment
    from simclr_core.nn.models import ProjectionHead, SimCLR, small_cnn
    from simclr_core.train.step import MemoryBankObjective

    torch.manual_seed(0)
    enc = small_cnn(1, widths=(4, 8))
    model = SimCLR(enc, ProjectionHead(enc.out_dim, 8, 4))
    images = torch.randint(0, 256, (12, 1, 10, 10), dtype=torch.uint8)
    view = BatchAugment(AugmentConfig(size=8, crop=False, flip=False, color_jitter=False, grayscale=False))
    objective = MemoryBankObjective(0.5, model, n_images=12, negatives=6, seed=0, refresh_every=refresh_every,
                                    images=images, view=view)
    return model, images, view, objective


def _bank_steps(model, objective, steps: int):
    from simclr_core.precision import Precision

    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randperm(12, generator=g)[:4]
        v = torch.rand(4, 1, 8, 8, generator=g)
        objective.loss(model, v, v.flip(3), idx, Precision(torch.device("cpu")))
        objective.after_step(model)


def test_a_refreshed_bank_holds_the_networks_own_embeddings_of_every_image():
    """Every k steps each entry becomes what the update writes, the mean of two views' unit z, under the network as
    it is (independently: one training-mode batch of all views, F.normalize); between refreshes only the momentum
    update moves the bank; encoding leaves the model's weights and BatchNorm statistics as they were."""
    import copy

    import torch.nn.functional as F

    model, images, view, objective = _bank_setup(refresh_every=3)

    def fresh():
        twin = copy.deepcopy(model).train()  # its BatchNorm statistics may move: the model's may not
        with torch.no_grad():
            z1, z2 = twin(torch.cat([view(images), view(images)]))[1].chunk(2)
        return F.normalize((F.normalize(z1, dim=1) + F.normalize(z2, dim=1)) / 2, dim=1)

    _bank_steps(model, objective, 2)
    assert not torch.allclose(objective.bank.bank, fresh(), atol=1e-3)  # not yet refreshed
    _bank_steps(model, objective, 1)  # the third step's after_step refreshes; nothing runs after it
    assert torch.allclose(objective.bank.bank, fresh(), atol=1e-5) and objective.steps == 3
    _bank_steps(model, objective, 1)
    assert not torch.allclose(objective.bank.bank, fresh(), atol=1e-3)  # momentum-updated rows only
    state = [t.clone() for t in (*model.parameters(), *model.buffers())]
    objective.encode_all(model)
    assert model.training and all(torch.equal(a, b) for a, b in zip(state, (*model.parameters(), *model.buffers())))
    saved = objective.state_dict()
    assert saved["steps"] == 4 and set(saved) == {"bank", "g", "steps", "g_views"}


def test_a_bank_without_refresh_is_never_re_encoded():
    model, images, view, objective = _bank_setup(refresh_every=0)
    calls = []
    objective.encode_all = lambda m: calls.append(1)
    _bank_steps(model, objective, 5)
    assert calls == []


def test_a_refresh_without_images_is_a_clear_error():
    from simclr_core.nn.models import ProjectionHead, SimCLR, small_cnn
    from simclr_core.train.step import MemoryBankObjective

    enc = small_cnn(1, widths=(4, 8))
    model = SimCLR(enc, ProjectionHead(enc.out_dim, 8, 4))
    with pytest.raises(ValueError, match=r"refresh_every=5 needs the n_images = 12 images and a view function"):
        MemoryBankObjective(0.5, model, n_images=12, negatives=6, refresh_every=5)
    with pytest.raises(ValueError, match="refresh_every"):
        MemoryBankObjective(0.5, model, n_images=12, negatives=6, refresh_every=-1)

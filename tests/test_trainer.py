"""Trainer pieces against closed forms, and end to end: checkpoints, exact resume, clear errors."""

import json
import math

import pytest
import torch

from tests.trainer_helpers import assert_same_weights, interrupt_at_call, tiny
from simclr_core import precision as precision_mod
from simclr_core.data.augment import AugmentConfig
from simclr_core.data.fast_augment import BatchAugment
from simclr_core.precision import Precision, precision_for
from simclr_core.train import loop as loop_mod
from simclr_core.train.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from simclr_core.train.config import PRESETS, Recipe, preset
from simclr_core.train.loop import epoch_order
from simclr_core.train.probe import probe_run
from simclr_core.train.runfolder import RunFolderError
from simclr_core.train.runs import CHECKPOINT, METRICS, load_run, pretrain
from simclr_core.train.schedule import LARS, build_optimizer, lr_at, param_groups, scaled_lr
from simclr_core.train.step import build_model, project


# ---------------------------------------------------------------- schedule and optimizer

def test_lr_schedule_closed_form():
    T, W, peak = 100, 10, 2.0
    assert lr_at(0, T, W, peak) == pytest.approx(0.2)  # (0 + 1) / 10 of the peak
    assert lr_at(9, T, W, peak) == pytest.approx(2.0)
    assert lr_at(10, T, W, peak) == pytest.approx(2.0)  # cosine starts at the peak
    assert lr_at(55, T, W, peak) == pytest.approx(1.0)  # half-way through the cosine: peak / 2
    assert lr_at(99, T, W, peak) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert lr_at(5, T, 0, peak) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 5 / 100)))
    assert scaled_lr(1.0, 512) == 2.0 and scaled_lr(0.075, 256, "sqrt") == pytest.approx(1.2)
    with pytest.raises(ValueError, match="scaling"):
        scaled_lr(1.0, 256, "cubic")


def test_lars_step_matches_formula():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    opt = LARS(param_groups(lin, weight_decay=0.1), lr=0.5, momentum=0.9, eta=0.001)
    lin(torch.randn(8, 4)).pow(2).sum().backward()
    gw, gb = lin.weight.grad.clone(), lin.bias.grad.clone()
    opt.step()
    g = gw + 0.1 * w0
    trust = 0.001 * w0.norm() / g.norm()
    torch.testing.assert_close(lin.weight.detach(), w0 - 0.5 * trust * g)
    torch.testing.assert_close(lin.bias.detach(), b0 - 0.5 * gb)  # bias: no decay, no trust ratio


def test_sgd_steps_match_the_momentum_formula():
    """build_optimizer('sgd') (torch's fused kernel on the CPU): v <- m v + (g + wd w), w <- w - lr v on weights;
    biases get no weight decay. Two steps, so the momentum buffer is exercised."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    opt = build_optimizer("sgd", lin, lr=0.5, momentum=0.9, weight_decay=0.1)
    assert all(g["fused"] for g in opt.param_groups)
    w, b = lin.weight.detach().clone(), lin.bias.detach().clone()
    vw, vb = torch.zeros_like(w), torch.zeros_like(b)
    for step in range(2):
        opt.zero_grad()
        lin(torch.randn(8, 4)).pow(2).sum().backward()
        m = 0.9 if step else 0.0  # torch starts the buffer at the first gradient: v_1 = g_1
        vw = m * vw + lin.weight.grad + 0.1 * w
        vb = m * vb + lin.bias.grad
        opt.step()
        w, b = w - 0.5 * vw, b - 0.5 * vb
        torch.testing.assert_close(lin.weight.detach(), w)
        torch.testing.assert_close(lin.bias.detach(), b)


def test_epoch_order_shards_one_permutation_across_ranks():
    n, B = 103, 20
    shards = [epoch_order(n, seed=1, epoch=3, rank=r, world_size=2, batch_size=B) for r in range(2)]
    assert shards[0].shape == (5, 10)
    both = torch.cat([s.flatten() for s in shards])
    assert len(set(both.tolist())) == 100  # disjoint, drop_last
    # each global batch is the same 20 images a single process would see
    single = epoch_order(n, seed=1, epoch=3, rank=0, world_size=1, batch_size=B)
    for i in range(5):
        assert set(single[i].tolist()) == set(shards[0][i].tolist()) | set(shards[1][i].tolist())
    assert not torch.equal(single, epoch_order(n, seed=1, epoch=4, rank=0, world_size=1, batch_size=B))


def test_config_validation_names_the_value():
    with pytest.raises(ValueError, match="'imagenet'"):
        Recipe(dataset="imagenet")
    with pytest.raises(ValueError, match="temperature.*-1"):
        Recipe(temperature=-1)
    with pytest.raises(ValueError, match="batch_size"):
        Recipe(batch_size=1)
    with pytest.raises(ValueError, match="'tpu'"):
        preset("tpu")
    g = preset("gpu")
    assert (g.encoder, g.batch_size, g.temperature, g.optimizer, g.augment.strength, g.augment.blur) == \
        ("resnet18_cifar", 512, 0.5, "lars", 0.5, False)


# ---------------------------------------------------------------- checkpoints

def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    full = {"optimizer": {}, "config": {}, "history": [], "rng": {}}
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "epoch": 0, **full})

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}, "epoch": 1, **full})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 0 and torch.equal(state["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind


def test_rng_state_roundtrip():
    import random

    import numpy as np

    s = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(s)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


# ---------------------------------------------------------------- end to end on a CIFAR-format folder

@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(cifar_root, tmp_path, monkeypatch):
    full = pretrain(*tiny(cifar_root, tmp_path / "full", epochs=3))
    assert [h["epoch"] for h in full.history] == [0, 1, 2]
    lines = (tmp_path / "full" / METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2]
    assert all(0 <= h["knn_acc"] <= 1 and h["loss"] > 0 for h in full.history)

    # interrupt the second run in the middle of epoch 1: steps 0-3 are epoch 0, steps 4-7 epoch 1
    interrupt_at_call(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        pretrain(*tiny(cifar_root, tmp_path / "cut", epochs=3))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["epoch"] == 0

    with pytest.raises(RunFolderError, match="already exists.*resume"):
        pretrain(*tiny(cifar_root, tmp_path / "cut", epochs=3))  # never a silent restart over a run
    resumed = pretrain(*tiny(cifar_root, tmp_path / "cut", epochs=3, resume=True))
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert_same_weights(full.model, resumed.model, " after resume")
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in full.history], rel=1e-6)


@pytest.mark.slow
def test_bad_checkpoints_give_clear_errors(cifar_root, tmp_path):
    out = tmp_path / "run"
    pretrain(*tiny(cifar_root, out, epochs=1))
    ck = out / CHECKPOINT
    with pytest.raises(CheckpointError, match=r"different configuration[\s\S]*batch_size: 50 in the checkpoint vs 40 now"):
        pretrain(*tiny(cifar_root, out, epochs=1, batch_size=40, resume=True))
    with pytest.raises(CheckpointError, match=r"widths"):
        pretrain(*tiny(cifar_root, out, epochs=1, widths=(8, 32), resume=True))
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])  # truncated, as after a crash of a non-atomic writer
    with pytest.raises(CheckpointError, match=f"{ck}.*truncated"):
        pretrain(*tiny(cifar_root, out, epochs=1, resume=True))
    ck.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=str(ck)):
        load_run(out)


@pytest.mark.slow
def test_pretraining_learns_on_class_structured_images(cifar_root, tmp_path):
    """After a few epochs the kNN monitor is far above chance (10 classes) and the loss went down."""
    r = pretrain(*tiny(cifar_root, None, epochs=4, widths=(16, 32)))
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    assert r.history[-1]["knn_acc"] > 0.3


@pytest.mark.slow
def test_low_resolution_views_train_and_probe_at_full_resolution(cifar_root, tmp_path, monkeypatch):
    """The Fashion-MNIST cpu preset trains on 16x16 views and probes the full images: the views really are
    augment.size, the kNN monitor and the probe run on the 32x32 originals, and the features still learn."""
    seen = set()

    class Recording(BatchAugment):
        def forward(self, x, generator=None):
            v = super().forward(x, generator)
            seen.add(tuple(v.shape[-2:]))
            return v

    monkeypatch.setattr(loop_mod, "BatchAugment", Recording)
    out = tmp_path / "low_res"
    r = pretrain(*tiny(cifar_root, out, epochs=4, widths=(16, 32), augment=AugmentConfig(size=16)))
    assert seen == {(16, 16)}
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    assert r.history[-1]["knn_acc"] > 0.3  # monitored on the 32x32 test images
    res = probe_run(out, progress=False, k=20, data_root=str(cifar_root))
    simclr = next(row for row in res["results"] if row["name"] == "SimCLR")
    assert simclr["knn"] > 0.3 and simclr["linear"] > 0.3


# ---------------------------------------------------------------- precision and memory format

def test_precision_policy_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(precision_mod.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(precision_mod.torch.cuda, "device_count", lambda: 1)
    cuda = precision_for("cuda")
    assert cuda.dtype is torch.bfloat16 and cuda.channels_last and precision_for("cuda", amp=False).dtype is None
    monkeypatch.setattr(precision_mod, "cpu_has_fast_bf16", lambda: True)
    assert precision_for("cpu").dtype is torch.bfloat16 and precision_for("cpu", amp=False).dtype is None
    monkeypatch.setattr(precision_mod, "cpu_has_fast_bf16", lambda: False)  # emulated bf16 is slower: stay in fp32
    assert precision_for("cpu").dtype is None
    assert precision_for("cpu").channels_last and not precision_for("cpu", channels_last=False).channels_last
    with pytest.raises(ValueError, match="'cuda:abc'"):
        precision_for("cuda:abc")


def test_no_amp_means_float32_features_too(monkeypatch):
    """--no-amp (recipe.amp False) gives float32 in training, the monitor and the probe: one policy."""
    from simclr_core.train.runs import run_precision

    monkeypatch.setattr(precision_mod, "cpu_has_fast_bf16", lambda: True)
    assert run_precision(Recipe(amp=True), "cpu").dtype is torch.bfloat16
    assert run_precision(Recipe(amp=False), "cpu").dtype is None


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_step_is_close_to_the_fp32_step(channels_last):
    """The same step under bf16 autocast (model only) and channels_last gives the float32 loss and gradients
    to bf16 precision; the loss itself is float32."""
    cfg = Recipe(encoder="small_cnn", widths=(8, 16), proj_dim=16, batch_size=16, fast_layers=False)
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    aug = BatchAugment(AugmentConfig())

    def loss_of(model, precision):
        g = torch.Generator().manual_seed(1)
        z1, z2 = project(model, torch.cat([aug(x, g), aug(x, g)]), precision).chunk(2)
        from simclr_core.nn.loss import nt_xent
        return nt_xent(z1, z2, 0.5)

    model = build_model(cfg)
    ref = loss_of(model, Precision(torch.device("cpu")))
    ref.backward()
    g_ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    p = Precision(torch.device("cpu"), torch.bfloat16, channels_last)
    model = p.prepare(model)
    loss = loss_of(model, p)
    loss.backward()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=2e-2)
    cos = {n: torch.nn.functional.cosine_similarity(p.grad.flatten(), g_ref[n].flatten(), dim=0).item()
           for n, p in model.named_parameters()}
    # bf16 keeps 8 mantissa bits: per tensor the direction agrees to ~0.9-1.0 (first-layer BN bias is the worst)
    assert min(cos.values()) > 0.85, cos
    whole = torch.nn.functional.cosine_similarity(torch.cat([p.grad.flatten() for p in model.parameters()]),
                                                  torch.cat([g_ref[n].flatten() for n, _ in model.named_parameters()]), dim=0)
    assert whole > 0.95, f"whole gradient cosine {whole:.3f}"


def test_pretrain_uses_channels_last_on_cpu(cifar_root):
    r = pretrain(*tiny(cifar_root, None, epochs=1))
    conv = next(m for m in r.model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    r = pretrain(*tiny(cifar_root, None, epochs=1, channels_last=False))
    conv = next(m for m in r.model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous() and not conv.weight.is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------- the recipe, the presets, the one loop

def test_recipe_defaults_are_the_cpu_cifar10_preset():
    assert Recipe() == preset("cpu", "cifar10")


def test_every_preset_entry_is_a_valid_recipe_and_the_fingerprint_has_every_field(cifar_root):
    from dataclasses import fields

    from simclr_core.data.datasets import load_dataset
    from simclr_core.train.runs import fingerprint

    for (name, dataset), table in PRESETS.items():
        r = preset(name, dataset)
        for k, v in table.items():
            assert getattr(r, k) == v, (name, dataset, k)
    fp = fingerprint(Recipe(), load_dataset("cifar10", cifar_root, train=True))
    assert {f.name for f in fields(Recipe)} | {"n_train", "data_digest", "steps_per_epoch"} == set(fp)


def test_build_model_is_a_function_of_the_recipe_alone():
    """The random-init baseline of a run is build_model(its recipe): same seed, same weights, whatever the
    global random state; another seed gives other weights; the global state is left alone."""
    from tests.trainer_helpers import assert_same_weights

    r = Recipe(widths=(8, 16), seed=3)
    torch.manual_seed(123)
    a = build_model(r)
    state = torch.get_rng_state()
    torch.rand(5)
    b = build_model(r)
    assert_same_weights(a, b)
    torch.manual_seed(123)
    build_model(r)
    assert torch.equal(torch.get_rng_state(), state)
    c = build_model(Recipe(widths=(8, 16), seed=4))
    assert not torch.equal(a.state_dict()["encoder.body.0.0.weight"], c.state_dict()["encoder.body.0.0.weight"])


def test_step_at_a_time_equals_fit(cifar_root):
    """Trainer.step() driven by hand (the benchmark's mode) ends where Trainer.fit() ends."""
    from simclr_core.data.datasets import load_dataset
    from simclr_core.train.loop import Trainer

    r, _ = tiny(cifar_root, None, epochs=2)
    images = load_dataset("cifar10", cifar_root, train=True).images
    p = Precision(torch.device("cpu"))
    a = Trainer(r, build_model(r), images, p)
    a.fit()
    b = Trainer(r, build_model(r), images, p)
    while not b.done:
        b.step()
    assert a.global_step == b.global_step == 8
    assert_same_weights(a.model, b.model)


def test_the_trainer_calls_no_checked_loss(cifar_root, monkeypatch):
    """The hot path uses the unchecked loss: no per-step torch.isfinite host sync."""
    from simclr_core.data.datasets import load_dataset
    from simclr_core.nn import loss as loss_mod
    from simclr_core.train.loop import Trainer

    def forbidden(*a, **k):
        raise AssertionError("the training step called a checked public function")

    monkeypatch.setattr(loss_mod, "_check_embeddings", forbidden)
    r, _ = tiny(cifar_root, None, epochs=1)
    Trainer(r, build_model(r), load_dataset("cifar10", cifar_root, train=True).images, Precision(torch.device("cpu"))).fit()


@pytest.mark.slow
def test_queue_and_memory_bank_runs_resume_exactly(cifar_root, tmp_path, monkeypatch):
    """A MoCo queue + momentum encoder and a PIRL memory bank are checkpointed with the run: interrupted and
    resumed, each ends with the uninterrupted run's weights and objective state."""
    from simclr_core.train.step import MemoryBankObjective, QueueObjective

    for name, make in (("moco", lambda m: QueueObjective(0.5, m, 64, 0.9)),
                       ("bank", lambda m: MemoryBankObjective(0.5, m, 200, 32, seed=1))):
        full = pretrain(*tiny(cifar_root, tmp_path / f"{name}_full", epochs=3), objective=make)
        real, calls = type(make(build_model(tiny(cifar_root, None)[0]))).loss, {"n": 0}

        def loss(self, *a, **k):
            calls["n"] += 1
            if calls["n"] == 7:
                raise KeyboardInterrupt
            return real(self, *a, **k)

        monkeypatch.setattr(type(make(build_model(tiny(cifar_root, None)[0]))), "loss", loss)
        with pytest.raises(KeyboardInterrupt):
            pretrain(*tiny(cifar_root, tmp_path / f"{name}_cut", epochs=3), objective=make)
        monkeypatch.undo()
        resumed = pretrain(*tiny(cifar_root, tmp_path / f"{name}_cut", epochs=3, resume=True), objective=make)
        assert_same_weights(full.model, resumed.model, f" after resume ({name})")


# ---------------------------------------------------------------- sizes and divergence

@pytest.mark.parametrize("kw", [dict(), dict(widths=(8, 16)), dict(widths=(32, 64, 128, 1024), dataset="fashion-mnist",
                                                                        augment=AugmentConfig(grayscale=False, mean=(0.5,), std=(0.5,))),
                                dict(proj_hidden=300, proj_dim=17), dict(head=False), dict(encoder="resnet18_cifar")])
def test_parameter_count_is_what_build_model_creates(kw):
    """The bound on a config's network is checked from its sizes alone: the count must be the real one."""
    recipe = Recipe(**kw)
    real = sum(p.numel() for p in build_model(recipe).parameters())
    if recipe.encoder == "resnet18_cifar":  # counted as a round 11.2 M
        assert abs(recipe.parameter_count() - real) < 0.01 * real
    else:
        assert recipe.parameter_count() == real


def test_a_diverged_run_stops_with_an_error_and_keeps_no_nan_checkpoint(cifar_root, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(ValueError, match=r"the loss of epoch 1 is nan: training diverged .*lower --lr"):
        pretrain(*tiny(cifar_root, out, epochs=2, lr=1e30))
    assert not (out / CHECKPOINT).exists()

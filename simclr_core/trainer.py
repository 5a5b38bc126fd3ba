"""SimCLR pretraining: the loop of Chen et al. 2020 (arXiv:2002.05709, Algorithm 1), with the practical parts.

Per step: sample a minibatch x of N images, draw two views t(x), t'(x) on the training device
(``BatchAugment``, per-image randomness), z = g(f(view)), loss = NT-Xent(z1, z2, tau) (eq. 1), SGD or
LARS step with the warmup + cosine learning rate of ``schedule.lr_at``.

Around it: mixed precision (bfloat16 autocast on CUDA, and on CPUs with native bfloat16 such as AVX512-BF16
or AMX) and channels_last memory format (CUDA and CPU: oneDNN's convolutions are about 1.8x faster in it on
CPU, benchmarks/bench_train.py); a tqdm bar with loss, images/s
and ETA; a kNN monitor on held-out images after every epoch (``evaluate.knn_accuracy``); one JSON line
per epoch in ``metrics.jsonl``; an atomic checkpoint per epoch and exact resume (the randomness of epoch
e is derived from (seed, e, rank), so a resumed run redraws exactly the crops and order an
uninterrupted run would have drawn); torchrun support through ``simclr_core.distributed`` (rank-sharded
shuffling, DDP, optional SyncBatchNorm, global-batch loss, rank-0-only logging and checkpointing); and a time
budget (``cfg.minutes``, ``simclr_core.budget``): the steps that fit are measured and fixed before training starts.

Read bottom-up: ``build_model`` -> ``simclr_loss`` (one step's loss) -> ``train_one_epoch`` -> ``pretrain``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import budget
from .checkpoint import CheckpointError, check_fingerprint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, config_from_dict
from .data import ImageDataset, load_dataset
from .evaluate import extract_features, knn_accuracy
from .fast_augment import BatchAugment
from .loss import nt_xent
from .models import ProjectionHead, SimCLR, build_encoder, small_cnn
from .schedule import build_optimizer, lr_at, scaled_lr, set_lr

__all__ = ["pretrain", "PretrainResult", "build_model", "simclr_loss", "project_views", "train_one_epoch", "resolve_device",
           "amp_dtype", "cpu_has_fast_bf16", "use_channels_last", "speed_setup",
           "load_run", "load_data", "epoch_generator", "CHECKPOINT", "METRICS", "CONFIG"]

CHECKPOINT, METRICS, CONFIG = "checkpoint.pt", "metrics.jsonl", "config.json"
_SHUFFLE_STREAM = 999_983  # the 'rank' whose generator shuffles (shared by all ranks)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; otherwise the named device (checked)."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here; use --device cpu or auto")
    return dev


def cpu_has_fast_bf16() -> bool:
    """Does this CPU compute bfloat16 natively (AVX512-BF16 or AMX, as oneDNN reports)? Elsewhere bf16 is emulated
    and slower than float32, so autocast stays off."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(device: torch.device, amp: bool = True) -> torch.dtype | None:
    """The autocast dtype for training on ``device``: bfloat16 on CUDA and on CPUs with native bf16, else None
    (float32). The loss is always computed in float32 (``simclr_loss`` casts z)."""
    if not amp:
        return None
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16()):
        return torch.bfloat16
    return None


def use_channels_last(device: torch.device, wanted: bool = True) -> bool:
    """channels_last (NHWC) where it pays: CUDA (tensor cores) and CPU (oneDNN's native layout)."""
    return wanted and device.type in ("cuda", "cpu")


def speed_setup(model: nn.Module, device: torch.device, channels_last: bool = True, amp: bool = True):
    """(model in the memory format to train in, whether inputs go channels_last, autocast dtype or None): the
    trainer's speed choices for ``device``, in one place for the trainer and the benchmarks."""
    cl = use_channels_last(device, channels_last)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    return model, cl, amp_dtype(device, amp)


def build_model(cfg: TrainConfig, in_channels: int) -> SimCLR:
    """f = the named encoder, g = the 2-layer MLP projection head to ``proj_dim`` (128 in the paper)."""
    if cfg.widths is not None:
        encoder = small_cnn(in_channels, widths=tuple(cfg.widths))
    else:
        encoder = build_encoder(cfg.encoder, in_channels=in_channels)
    head = ProjectionHead(encoder.out_dim, cfg.proj_hidden, cfg.proj_dim)
    return SimCLR(encoder, head)


def simclr_loss(model: nn.Module, augment: BatchAugment, x: torch.Tensor, temperature: float,
                generator: torch.Generator | None = None, loss_fn=nt_xent, channels_last: bool = False,
                autocast_dtype=None) -> torch.Tensor:
    """One SimCLR step's loss for a minibatch x (N, C, H, W) uint8 already on the training device."""
    v1 = augment(x, generator)  # (N, C, s, s) view t(x)
    v2 = augment(x, generator)  # (N, C, s, s) view t'(x)
    z1, z2 = project_views(model, v1, v2, channels_last, autocast_dtype)  # (N, d_z) each
    return loss_fn(z1, z2, temperature)  # scalar NT-Xent over 2N anchors


def project_views(model: nn.Module, v1: torch.Tensor, v2: torch.Tensor, channels_last: bool = False,
                  autocast_dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """z1, z2 = g(f(v1)), g(f(v2)) in one forward of the 2N views (so BN sees both), in the given memory format
    and autocast dtype; z is returned in float32 for the loss."""
    views = torch.cat([v1, v2])  # (2N, C, s, s)
    if channels_last:
        views = views.contiguous(memory_format=torch.channels_last)
    with torch.autocast(views.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        _, z = model(views)  # (2N, d_z)
    return z.float().chunk(2)  # (N, d_z) each


def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """The CPU generator for shuffling + augmentation in epoch ``epoch`` on process ``rank``."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_009 + rank) % (2**63 - 1))


def epoch_order(n: int, seed: int, epoch: int, rank: int, world_size: int, batch_size: int) -> torch.Tensor:
    """This rank's image indices for the epoch as (steps, batch_size // world_size); the incomplete last batch is dropped."""
    perm = torch.randperm(n, generator=epoch_generator(seed, epoch, rank=_SHUFFLE_STREAM))  # same on all ranks
    per_rank = batch_size // world_size
    steps = n // batch_size
    if steps < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} training images")
    return perm[: steps * batch_size].view(steps, world_size, per_rank)[:, rank]  # (steps, per_rank)


def train_one_epoch(model, optimizer, augment, images: torch.Tensor, epoch: int, cfg: TrainConfig, *,
                    device, total_steps: int, rank: int = 0, world_size: int = 1, loss_fn=nt_xent,
                    channels_last: bool = False, autocast_dtype=None, progress=None,
                    deadline: float | None = None) -> dict:
    """One pass over the (rank's share of the) training images; returns {'loss', 'lr', 'steps', 'seconds'}."""
    model.train()
    order = epoch_order(images.shape[0], cfg.seed, epoch, rank, world_size, cfg.batch_size).to(images.device)  # (steps, b)
    g = epoch_generator(cfg.seed, epoch, rank)  # augmentation randomness of this epoch and rank
    steps = order.shape[0]
    peak = scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling)
    warmup_steps = round(cfg.warmup_epochs * steps)
    total_loss, t0, done = torch.zeros((), device=device), time.perf_counter(), 0
    for i in range(steps):
        global_step = epoch * steps + i
        if global_step >= total_steps:  # max_steps reached inside this epoch
            break
        lr = lr_at(global_step, total_steps, warmup_steps, peak)
        set_lr(optimizer, lr)
        x = images[order[i]].to(device, non_blocking=True)  # (b, C, H, W) uint8
        loss = simclr_loss(model, augment, x, cfg.temperature, g, loss_fn, channels_last, autocast_dtype)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach()
        done += 1
        if progress is not None:
            progress.update(1)
            if i % 10 == 0 or i == steps - 1:
                dt = time.perf_counter() - t0
                progress.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.3g}", img_s=f"{done * cfg.batch_size / dt:.0f}")
        if deadline is not None and _past_deadline(deadline, world_size):
            break
    if world_size > 1:  # log the global-batch loss, not rank 0's share (every rank reaches this line)
        from . import distributed

        total_loss = distributed.reduce_mean(total_loss)
    return {"loss": float(total_loss) / max(done, 1), "lr": lr, "steps": done, "seconds": time.perf_counter() - t0}


def _past_deadline(deadline: float, world_size: int) -> bool:
    """Has the time limit passed? Under torchrun every process gets the same answer (if one stopped alone, the
    others would wait forever in their next all_gather); rank 0 runs later than the rest (kNN monitor, checkpoint)."""
    past = time.perf_counter() > deadline
    if world_size == 1:
        return past
    from . import distributed

    return distributed.any_process(past)


@dataclass
class PretrainResult:
    """What ``pretrain`` returns: the trained model (f and g), per-epoch history, the run folder."""

    model: SimCLR
    history: list[dict]
    config: TrainConfig
    run_dir: Path | None
    device: torch.device
    stopped_early: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder


def load_data(cfg: TrainConfig):
    """(train, test) ImageDatasets for the run: the train subset, and the full test split."""
    train = load_dataset(cfg.dataset, cfg.data_root, train=True, download=cfg.download)
    test = load_dataset(cfg.dataset, cfg.data_root, train=False, download=cfg.download)
    if cfg.subset is not None:
        train = train.subset(min(cfg.subset, len(train)), seed=cfg.seed)
    return train, test


def _monitor_sets(cfg: TrainConfig, train: ImageDataset, test: ImageDataset):
    bank = train if cfg.monitor_train is None else train.subset(min(cfg.monitor_train, len(train)), seed=cfg.seed + 1)
    query = test if cfg.monitor_test is None else test.subset(min(cfg.monitor_test, len(test)), seed=cfg.seed + 2)
    return bank, query


def _norm_stats(cfg: TrainConfig):
    return (cfg.augment.mean, cfg.augment.std) if cfg.augment.normalize else (None, None)


def _write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _dist_setup(cfg: TrainConfig):
    """Single process unless launched by torchrun (WORLD_SIZE > 1): then simclr_core.distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from . import distributed

        info = distributed.init_distributed(cfg.device)
        return info, distributed
    return None, None


def pretrain(cfg: TrainConfig, train: ImageDataset | None = None, test: ImageDataset | None = None) -> PretrainResult:
    """Pretrain a SimCLR model as configured; resumes from ``cfg.out/checkpoint.pt`` when ``cfg.resume``.

    ``train``/``test`` may be given directly (otherwise loaded from ``cfg.dataset``). With ``cfg.out`` set,
    the run folder gets config.json, metrics.jsonl (one JSON object per epoch) and checkpoint.pt.
    """
    cfg.validate()
    info, dist = _dist_setup(cfg)
    rank, world = (info.rank, info.world_size) if info else (0, 1)
    is_main = rank == 0
    device = info.device if info else resolve_device(cfg.device)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by the number of processes ({world})")
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    if train is None or test is None:
        train_ds, test_ds = load_data(cfg)
        train, test = train or train_ds, test or test_ds
    C = train.images.shape[1]
    steps_per_epoch = len(train) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the {len(train)} training images; lower --batch-size")

    run_dir = Path(cfg.out) if cfg.out else None
    ckpt_path = run_dir / CHECKPOINT if run_dir else None
    if ckpt_path is not None and ckpt_path.exists() and not cfg.resume:
        raise CheckpointError(f"{ckpt_path} already exists: pass resume=True (CLI: --resume) to continue that run, "
                              f"or choose another output folder")

    # Model, optimizer, augmentation, all seeded.
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, C)
    if cfg.sync_bn and world > 1:
        if device.type != "cuda":
            raise ValueError("sync_bn (--sync-bn) needs CUDA devices (SyncBatchNorm is not supported with gloo on CPU)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model, channels_last, dtype = speed_setup(model.to(device), device, cfg.channels_last, cfg.amp)
    optimizer = build_optimizer(cfg.optimizer, model, scaled_lr(cfg.lr, cfg.batch_size, cfg.lr_scaling),
                                cfg.momentum, cfg.weight_decay)
    augment = BatchAugment(cfg.augment).to(device)

    history: list[dict] = []
    start_epoch = 0
    resuming = cfg.resume and ckpt_path is not None and ckpt_path.exists()
    images = train.images.to(device) if device.type == "cuda" else train.images  # uint8, 150 MB for CIFAR-10
    bank, query = _monitor_sets(cfg, train, test)
    mean, std = _norm_stats(cfg)

    def monitor() -> float:  # the kNN monitor of one epoch: features of the bank and the queries, then the vote
        fb = extract_features(model.encoder, bank.images, device=device, mean=mean, std=std, channels_last=channels_last)
        fq = extract_features(model.encoder, query.images, device=device, mean=mean, std=std, channels_last=channels_last)
        return knn_accuracy(fb.to(device), bank.targets, fq.to(device), query.targets, k=cfg.knn_k, t=cfg.knn_t)

    state = load_checkpoint(ckpt_path) if resuming else None
    plan = None
    if cfg.minutes is not None and cfg.max_steps is None:
        if resuming:  # keep the schedule the run started with
            cfg = replace(cfg, max_steps=state["config"].get("max_steps"))
        else:
            plan = _plan_budget(cfg, model, augment, images, steps_per_epoch, device, channels_last, dtype, monitor,
                                world, is_main)
            cfg = replace(cfg, max_steps=plan.steps)
            if is_main:
                print(plan.describe(), file=sys.stderr, flush=True)
    if resuming:
        check_fingerprint(ckpt_path, state, cfg.fingerprint())
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint {ckpt_path} does not fit this model/optimizer: {str(err)[:500]}") from None
        set_rng_state(state["rng"])
        history = list(state.get("history", []))
        start_epoch = int(state["epoch"]) + 1
        if is_main and run_dir is not None:
            _write_jsonl_atomic(run_dir / METRICS, history)  # drop lines of an epoch that never got its checkpoint

    train_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        loss_fn = dist.nt_xent_distributed
    else:
        loss_fn = nt_xent

    if run_dir is not None and is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2))

    total_steps = cfg.epochs * steps_per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    last_epoch = math.ceil(total_steps / steps_per_epoch)  # epochs that hold at least one step
    deadline = time.perf_counter() + cfg.time_limit_s if cfg.time_limit_s else None
    bar = None
    if cfg.progress and is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, unit="step", desc="pretrain",
                   dynamic_ncols=True)
    stopped_early = False
    try:
        for epoch in range(start_epoch, last_epoch):
            stats = train_one_epoch(train_model, optimizer, augment, images, epoch, cfg, device=device,
                                    total_steps=total_steps, rank=rank, world_size=world, loss_fn=loss_fn,
                                    channels_last=channels_last, autocast_dtype=dtype, progress=bar, deadline=deadline)
            row = {"epoch": epoch, "loss": stats["loss"], "lr": stats["lr"], "steps": stats["steps"],
                   "images_per_s": stats["steps"] * cfg.batch_size / stats["seconds"], "train_seconds": stats["seconds"]}
            if is_main:
                t0 = time.perf_counter()
                row["knn_acc"] = monitor()  # similarities on the training device
                row["knn_seconds"] = time.perf_counter() - t0
                history.append(row)
                if bar is not None:
                    bar.write(f"epoch {epoch + 1}/{last_epoch}: loss {row['loss']:.4f}  kNN {100 * row['knn_acc']:.2f}%  "
                              f"{row['images_per_s']:.0f} img/s")
                planned = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
                if stats["steps"] < planned:
                    row["partial"] = True  # time limit hit mid-epoch: logged, but no checkpoint of half an epoch
                if run_dir is not None and not row.get("partial"):
                    save_checkpoint(ckpt_path, {
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                        "config": cfg.fingerprint(), "history": history, "rng": rng_state(),
                    })
                if run_dir is not None:
                    with open(run_dir / METRICS, "a") as f:
                        f.write(json.dumps(row) + "\n")
            if stats["steps"] < min(steps_per_epoch, total_steps - epoch * steps_per_epoch):  # time limit hit
                stopped_early = True
                break
            if deadline is not None and epoch < last_epoch - 1 and _past_deadline(deadline, world):
                stopped_early = True
                break
        if dist is not None:
            dist.barrier()  # rank 0 may still be checkpointing the last epoch
    finally:
        if bar is not None:
            bar.close()
        if dist is not None:
            dist.cleanup()
    return PretrainResult(model, history, cfg, run_dir, device, stopped_early,
                          extra={} if plan is None else {"budget": dataclasses.asdict(plan)})


def load_run(run_dir, device="cpu") -> tuple[TrainConfig, SimCLR, dict]:
    """(config, model with the last checkpoint's weights, checkpoint state) of a finished or interrupted run."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {cfg_path} is missing (run `simclr pretrain --out {run_dir}` first)")
    try:
        cfg = config_from_dict(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, ValueError, TypeError) as err:
        raise ValueError(f"{cfg_path} is not a valid run config: {err}") from None
    state = load_checkpoint(run_dir / CHECKPOINT, cfg.fingerprint())
    in_channels = 1 if cfg.dataset == "fashion-mnist" else 3
    model = build_model(cfg, in_channels)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT} does not fit the model of {cfg_path}: {str(err)[:500]}") from None
    return cfg, model.to(device), state


def _plan_budget(cfg: TrainConfig, model, augment, images, steps_per_epoch: int, device, channels_last, dtype,
                 monitor, world: int, is_main: bool) -> budget.BudgetPlan:
    """``budget.plan_run`` on this process's share of the batch; under torchrun every process takes the smallest
    plan (they must agree on the schedule), and only rank 0 pays the monitor (the others wait for it)."""
    plan = budget.plan_run(cfg, model, augment, images, steps_per_epoch, device, channels_last, dtype,
                           monitor if is_main else None, batch_size=cfg.batch_size // world)
    if world > 1:
        t = torch.tensor([plan.steps], device=device if device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        plan = dataclasses.replace(plan, steps=int(t.item()))
    return plan

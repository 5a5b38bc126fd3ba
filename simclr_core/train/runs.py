"""Run folders: ``pretrain`` (a recipe, run to the end, with checkpoints and exact resume).

A run folder holds config.json (the recipe, the run options and the data's identity), metrics.jsonl (one JSON object
per complete epoch), checkpoint.pt (atomic, written after every complete epoch), the lock file that marks it as a
run (``train.runfolder``) and, after a probe, probe.json. Every file is written through a temporary file and a
rename, never through a symbolic link. ``pretrain`` assembles the one loop (``train.loop.Trainer``) with the
callbacks a run needs; under torchrun it adds DDP, rank-sharded batches and the global-batch loss
(``train.distributed``). ``train.saved_run`` reads a run folder back (``load_run``, ``read_run_config``, importable
from here as well) and ``train.probe`` evaluates it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn as nn

from ..data.datasets import ImageDataset, data_digest, default_root, load_dataset
from ..nn.models import SimCLR
from ..precision import Precision, precision_for
from . import budget
from .budget import MIN_USEFUL_EPOCHS, short_budget_warning
from .callbacks import Checkpointer, KnnMonitor, ProgressBar, TimeLimit
from .checkpoint import CheckpointError, check_fingerprint, load_checkpoint, set_rng_state
from .config import Recipe, RunOptions
from .loop import Trainer
from .runfolder import CHECKPOINT, CONFIG, METRICS, RunLock, open_run_folder, write_text_atomic
from .saved_run import load_run, read_run_config
from .step import SimCLRObjective, build_model

__all__ = ["pretrain", "PretrainResult", "load_data", "load_run", "read_run_config", "fingerprint",
           "run_precision", "short_budget_warning", "MIN_USEFUL_EPOCHS", "CHECKPOINT", "METRICS", "CONFIG"]


@dataclass
class PretrainResult:
    """What ``pretrain`` returns: the trained model (f and g), per-epoch history, the run folder."""

    model: SimCLR
    history: list[dict]
    recipe: Recipe
    run_dir: Path | None
    precision: Precision
    stopped_early: bool = False
    extra: dict = field(default_factory=dict)
    rank: int = 0  # this process's rank under torchrun (0 alone): rank 0 reports and probes

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    @property
    def device(self) -> torch.device:
        return self.precision.device


def run_precision(recipe: Recipe, device: str | torch.device = "auto") -> Precision:
    """The precision policy of a run of ``recipe`` on ``device`` (training, monitor and probe alike)."""
    return precision_for(device, recipe.amp, recipe.channels_last)


def load_data(recipe: Recipe, options: RunOptions = RunOptions()) -> tuple[ImageDataset, ImageDataset]:
    """(train, test) ImageDatasets of a run: the train subset, and the full test split."""
    train = load_dataset(recipe.dataset, options.data_root, train=True, download=options.download)
    test = load_dataset(recipe.dataset, options.data_root, train=False, download=options.download)
    if recipe.subset is not None:
        train = train.subset(min(recipe.subset, len(train)), seed=recipe.seed)
    return train, test


def fingerprint(recipe: Recipe, train: ImageDataset) -> dict:
    """What a checkpoint must agree on to be resumed: every recipe field and the identity of the training data."""
    return {**recipe.to_dict(), "n_train": len(train), "data_digest": data_digest(train),
            "steps_per_epoch": len(train) // recipe.batch_size}


def _monitor(recipe: Recipe, train: ImageDataset, test: ImageDataset) -> KnnMonitor:
    bank = train if recipe.monitor_train is None else train.subset(min(recipe.monitor_train, len(train)), seed=recipe.seed + 1)
    query = test if recipe.monitor_test is None else test.subset(min(recipe.monitor_test, len(test)), seed=recipe.seed + 2)
    mean, std = (recipe.augment.mean, recipe.augment.std) if recipe.augment.normalize else (None, None)
    return KnnMonitor(bank, query, recipe.knn_k, recipe.knn_t, mean, std)


@dataclass
class _Processes:
    """Who this process is in the run: its rank among ``world`` processes, its precision policy, and the
    ``train.distributed`` module under torchrun (None for a single process)."""

    rank: int
    world: int
    precision: Precision
    dist: object | None = None


@dataclass
class _Parts:
    """What the loop is built from: the model, the uint8 images on their device, the objective, the network the
    step calls (DDP under torchrun), and the kNN monitor (rank 0)."""

    model: SimCLR
    images: torch.Tensor
    objective: object
    forward_model: nn.Module
    monitor: KnnMonitor | None


def _processes(recipe: Recipe, options: RunOptions) -> _Processes:
    """Step 1, before any work: the torchrun environment (WORLD_SIZE, RANK, LOCAL_RANK) checked and joined when the
    environment names more than one process or a rank other than 0; otherwise a single process."""
    if os.environ.get("WORLD_SIZE", "1").strip() == "1" and os.environ.get("RANK", "0").strip() == "0":
        return _Processes(0, 1, run_precision(recipe, options.device))
    from . import distributed as dist

    info = dist.init_distributed(options.device)  # names a malformed or inconsistent variable
    if recipe.batch_size % info.world_size:
        raise ValueError(f"batch_size {recipe.batch_size} must be divisible by the number of processes "
                         f"({info.world_size})")
    return _Processes(info.rank, info.world_size, run_precision(recipe, info.device), dist if info.world_size > 1 else None)


def _open_run_dir(options: RunOptions, procs: _Processes) -> tuple[Path | None, RunLock | None]:
    """Step 2: the run folder, claimed and locked by rank 0 for the whole run (``runfolder.open_run_folder``)."""
    if options.out is None:
        return None, None
    if procs.rank != 0:
        return Path(options.out).expanduser(), None
    return open_run_folder(options.out, options.resume, options.force, CHECKPOINT)


def _build(recipe: Recipe, procs: _Processes, train: ImageDataset, test: ImageDataset, objective) -> _Parts:
    """Step 3: the model from the recipe's seed (SyncBatchNorm and DDP under torchrun), the objective, the monitor."""
    if train.images.shape[1] != recipe.in_channels:
        raise ValueError(f"the training images have {train.images.shape[1]} channels, {recipe.dataset} has {recipe.in_channels}")
    if len(train) // recipe.batch_size < 1:
        raise ValueError(f"batch_size {recipe.batch_size} is larger than the {len(train)} training images; lower batch_size")
    precision = procs.precision
    model = build_model(recipe)
    if recipe.sync_bn and procs.world > 1:
        if precision.device.type != "cuda":
            raise ValueError("sync_bn (--sync-bn) needs CUDA devices (SyncBatchNorm is not supported with gloo on CPU)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = precision.prepare(model)
    images = precision.hold(train.images)  # uint8, where the loop gathers its batches
    forward_model, loss_fn = model, None
    if procs.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        forward_model = DDP(model, device_ids=[precision.device.index] if precision.device.type == "cuda" else None)
        loss_fn = procs.dist.nt_xent_distributed_unchecked
    if objective is None:
        objective = SimCLRObjective(recipe.temperature, loss_fn)
    elif not hasattr(objective, "loss"):  # a factory: objective(model), e.g. a queue whose keys need the model
        objective = objective(model)
    monitor = _monitor(recipe, train, test) if procs.rank == 0 else None
    return _Parts(model, images, objective, forward_model, monitor)


def _restore(run_dir: Path, state: dict, fp: dict, parts: _Parts) -> tuple[list[dict], int]:
    """Step 4: the checkpoint's weights and objective state into the model; (history, first epoch to run)."""
    check_fingerprint(run_dir / CHECKPOINT, state, fp)
    try:
        parts.model.load_state_dict(state["model"])
        parts.objective.load_state_dict(state.get("objective", {}))
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT} does not fit this model: {str(err)[:500]}") from None
    return list(state.get("history", [])), int(state["epoch"]) + 1


def _callbacks(options: RunOptions, procs: _Processes, parts: _Parts, run_dir, fp: dict, history, extra) -> list:
    cbs = [parts.monitor] if parts.monitor is not None else []
    if run_dir is not None:
        cbs.append(Checkpointer(run_dir, fp, history, CHECKPOINT, METRICS))
    if options.progress and procs.rank == 0:
        cbs.append(ProgressBar())
    if options.time_limit_s:
        cbs.append(TimeLimit(options.time_limit_s))
    return cbs + list(extra)


def _write_config(run_dir: Path, recipe: Recipe, options: RunOptions, fp: dict) -> None:
    write_text_atomic(run_dir / CONFIG, json.dumps({
        "recipe": recipe.to_dict(), "options": options.to_dict(),
        "data": {k: fp[k] for k in ("n_train", "data_digest", "steps_per_epoch")}}, indent=2))


def pretrain(recipe: Recipe, options: RunOptions = RunOptions(), train: ImageDataset | None = None,
             test: ImageDataset | None = None, *, objective=None, augment=None, callbacks=()) -> PretrainResult:
    """Pretrain SimCLR as ``recipe`` says; resumes from ``options.out/checkpoint.pt`` when ``options.resume``.

    ``train``/``test`` may be given directly (otherwise loaded from ``recipe.dataset``). ``objective`` (or a
    function model -> objective) / ``augment`` / ``callbacks`` configure the loop (``train.loop.Trainer``); the kNN
    monitor, checkpoints, progress bar and time limit are added here as the recipe and options ask. The steps:
    processes (torchrun or one), the run folder (claimed and locked), data, build, restore, the budget, fit.
    """
    recipe.validate()
    if not isinstance(options, RunOptions):
        raise ValueError(f"options must be a RunOptions, got {type(options).__name__}")
    if options.data_root is None and (train is None or test is None):
        default_root()  # an empty SIMCLR_DATA is named before the run folder is touched
    procs = _processes(recipe, options)
    if options.num_threads is not None:
        torch.set_num_threads(options.num_threads)
    run_dir, lock = None, None
    try:
        run_dir, lock = _open_run_dir(options, procs)
        if train is None or test is None:
            train_ds, test_ds = load_data(recipe, options)
            train, test = train or train_ds, test or test_ds
        parts = _build(recipe, procs, train, test, objective)
        state = load_checkpoint(run_dir / CHECKPOINT) if options.resume and run_dir is not None else None
        recipe, plan = _fit_budget(recipe, state, procs, parts, augment)
        fp = fingerprint(recipe, train)
        history, start_epoch = _restore(run_dir, state, fp, parts) if state is not None else ([], 0)
        tr = _trainer(recipe, procs, parts, augment, recipe.max_steps, start_epoch,
                      _callbacks(options, procs, parts, run_dir, fp, history, callbacks))
        if state is not None:
            try:
                tr.optimizer.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError, KeyError) as err:
                raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT} does not fit this optimizer: "
                                      f"{str(err)[:500]}") from None
            set_rng_state(state["rng"])
        if lock is not None:
            _write_config(run_dir, recipe, options, fp)
        tr.fit()
        if procs.dist is not None:
            procs.dist.barrier()  # rank 0 may still be checkpointing the last epoch
    finally:
        if lock is not None:
            lock.release()
        if procs.dist is not None:
            procs.dist.cleanup()
    extra = {"steps_per_epoch": tr.steps_per_epoch, **({} if plan is None else {"budget": dataclasses.asdict(plan)})}
    return PretrainResult(parts.model, history + tr.history, recipe, run_dir, procs.precision, tr.stopped_early,
                          extra=extra, rank=procs.rank)


def _trainer(recipe: Recipe, procs: _Processes, parts: _Parts, augment, total_steps=None, start_epoch=0,
             cbs=()) -> Trainer:
    return Trainer(recipe, parts.model, parts.images, procs.precision, objective=parts.objective, augment=augment,
                   callbacks=cbs, total_steps=total_steps, start_epoch=start_epoch, rank=procs.rank,
                   world_size=procs.world, forward_model=parts.forward_model)


def _fit_budget(recipe: Recipe, state: dict | None, procs: _Processes, parts: _Parts, augment):
    """Step 5: (recipe with max_steps, plan or None). A resumed run keeps the schedule it started with; a new run
    with ``minutes`` gets the steps that fit (printed, with a warning when they are too few to learn from)."""
    if recipe.minutes is None or recipe.max_steps is not None:
        return recipe, None
    if state is not None:
        return replace(recipe, max_steps=state["config"].get("max_steps")), None
    plan = budget.plan_for_trainer(recipe.minutes, recipe.epochs, _trainer(recipe, procs, parts, augment),
                                   parts.monitor, procs.world, procs.rank == 0)
    if procs.rank == 0:
        print(plan.describe(), file=sys.stderr, flush=True)
        if plan.steps < budget.MIN_USEFUL_EPOCHS * plan.steps_per_epoch:
            print(budget.short_budget_warning(plan.epochs), file=sys.stderr, flush=True)
    return replace(recipe, max_steps=plan.steps), plan

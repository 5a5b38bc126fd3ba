"""Run folders: ``pretrain`` (a recipe, run to the end, with checkpoints and exact resume), ``load_run``, ``probe_run``.

A run folder holds config.json (the recipe, the run options and the data's identity), metrics.jsonl (one JSON object
per complete epoch), checkpoint.pt (atomic, written after every complete epoch) and, after a probe, probe.json.
``pretrain`` assembles the one loop (``train.loop.Trainer``) with the callbacks a run needs; under torchrun it adds
DDP, rank-sharded batches and the global-batch loss (``train.distributed``).
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

from ..data.datasets import ImageDataset, data_digest, load_dataset
from ..eval.features import extract_features, raw_pixel_features
from ..eval.metrics import compare_representations
from ..nn.models import SimCLR
from ..precision import Precision, precision_for
from . import budget
from .callbacks import Checkpointer, KnnMonitor, ProgressBar, TimeLimit
from .checkpoint import CheckpointError, check_fingerprint, load_checkpoint, remove_stale_temp_files, set_rng_state
from .config import Recipe, RunOptions, recipe_from_dict
from .loop import Trainer
from .step import SimCLRObjective, build_model

__all__ = ["pretrain", "PretrainResult", "load_data", "load_run", "probe_run", "fingerprint", "run_precision",
           "CHECKPOINT", "METRICS", "CONFIG"]

CHECKPOINT, METRICS, CONFIG = "checkpoint.pt", "metrics.jsonl", "config.json"


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


def _prepare_out(options: RunOptions) -> Path | None:
    if options.out is None:
        return None
    run_dir = Path(options.out).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"out {str(run_dir)!r} is a file, not a folder: choose a folder for the run")
    ckpt = run_dir / CHECKPOINT
    if ckpt.exists() and not options.resume:
        raise CheckpointError(f"{ckpt} already exists: pass resume=True (CLI: --resume) to continue that run, "
                              f"or choose another output folder")
    if options.resume and not ckpt.exists():
        raise CheckpointError(f"resume=True (CLI: --resume) but {run_dir} holds no {CHECKPOINT}: to start a fresh run "
                              f"there, drop --resume")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"out {str(run_dir)!r} is not a writable folder ({err.strerror or err})") from None
    remove_stale_temp_files(run_dir)
    return run_dir


def pretrain(recipe: Recipe, options: RunOptions = RunOptions(), train: ImageDataset | None = None,
             test: ImageDataset | None = None, *, objective=None, augment=None, callbacks=()) -> PretrainResult:
    """Pretrain SimCLR as ``recipe`` says; resumes from ``options.out/checkpoint.pt`` when ``options.resume``.

    ``train``/``test`` may be given directly (otherwise loaded from ``recipe.dataset``). ``objective`` (or a
    function model -> objective) / ``augment``
    / ``callbacks`` configure the loop (``train.loop.Trainer``); the kNN monitor, checkpoints, progress bar and
    time limit are added here as the recipe and options ask.
    """
    recipe.validate()
    if not isinstance(options, RunOptions):
        raise ValueError(f"options must be a RunOptions, got {type(options).__name__}")
    info = dist = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from . import distributed as dist

        info = dist.init_distributed(options.device)
    rank, world = (info.rank, info.world_size) if info else (0, 1)
    precision = run_precision(recipe, info.device if info else options.device)
    if recipe.batch_size % world:
        raise ValueError(f"batch_size {recipe.batch_size} must be divisible by the number of processes ({world})")
    if options.num_threads is not None:
        torch.set_num_threads(options.num_threads)
    run_dir = _prepare_out(options) if rank == 0 else (Path(options.out) if options.out else None)
    if train is None or test is None:
        train_ds, test_ds = load_data(recipe, options)
        train, test = train or train_ds, test or test_ds
    if train.images.shape[1] != recipe.in_channels:
        raise ValueError(f"the training images have {train.images.shape[1]} channels, {recipe.dataset} has {recipe.in_channels}")
    steps_per_epoch = len(train) // recipe.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {recipe.batch_size} is larger than the {len(train)} training images; lower batch_size")

    model = build_model(recipe)
    if recipe.sync_bn and world > 1:
        if precision.device.type != "cuda":
            raise ValueError("sync_bn (--sync-bn) needs CUDA devices (SyncBatchNorm is not supported with gloo on CPU)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = precision.prepare(model)
    images = train.images.to(precision.device) if precision.device.type == "cuda" else train.images  # uint8
    state = None
    if options.resume and run_dir is not None:
        state = load_checkpoint(run_dir / CHECKPOINT)
        if recipe.minutes is not None and recipe.max_steps is None:  # keep the schedule the run started with
            recipe = replace(recipe, max_steps=state["config"].get("max_steps"))
    monitor = _monitor(recipe, train, test) if rank == 0 else None
    forward_model, loss_fn = model, None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        forward_model = DDP(model, device_ids=[precision.device.index] if precision.device.type == "cuda" else None)
        loss_fn = dist.nt_xent_distributed_unchecked
    if objective is None:
        objective = SimCLRObjective(recipe.temperature, loss_fn)
    elif not hasattr(objective, "loss"):  # a factory: objective(model), e.g. a queue whose keys need the model
        objective = objective(model)

    def trainer(total_steps=None, start_epoch=0, cbs=()):
        return Trainer(recipe, model, images, precision, objective=objective, augment=augment, callbacks=cbs,
                       total_steps=total_steps, start_epoch=start_epoch, rank=rank, world_size=world,
                       forward_model=forward_model)

    plan = None
    if recipe.minutes is not None and recipe.max_steps is None:
        plan = _plan_budget(recipe, trainer(), monitor, world, rank == 0)
        recipe = replace(recipe, max_steps=plan.steps)
        if rank == 0:
            print(plan.describe(), file=sys.stderr, flush=True)
    fp = fingerprint(recipe, train)
    history, start_epoch = [], 0
    if state is not None:
        check_fingerprint(run_dir / CHECKPOINT, state, fp)
        try:
            model.load_state_dict(state["model"])
            objective.load_state_dict(state.get("objective", {}))
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT} does not fit this model: {str(err)[:500]}") from None
        history, start_epoch = list(state.get("history", [])), int(state["epoch"]) + 1

    cbs = []
    if monitor is not None:
        cbs.append(monitor)
    if run_dir is not None:
        cbs.append(Checkpointer(run_dir, fp, history, CHECKPOINT, METRICS))
    if options.progress and rank == 0:
        cbs.append(ProgressBar())
    if options.time_limit_s:
        cbs.append(TimeLimit(options.time_limit_s))
    cbs += list(callbacks)
    tr = trainer(recipe.max_steps, start_epoch, cbs)
    if state is not None:
        try:
            tr.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT} does not fit this optimizer: {str(err)[:500]}") from None
        set_rng_state(state["rng"])
    if run_dir is not None and rank == 0:
        (run_dir / CONFIG).write_text(json.dumps({"recipe": recipe.to_dict(), "options": options.to_dict(),
                                                  "data": {k: fp[k] for k in ("n_train", "data_digest", "steps_per_epoch")}},
                                                 indent=2))
    try:
        tr.fit()
        if dist is not None:
            dist.barrier()  # rank 0 may still be checkpointing the last epoch
    finally:
        if dist is not None:
            dist.cleanup()
    return PretrainResult(model, history + tr.history, recipe, run_dir, precision, tr.stopped_early,
                          extra={"steps_per_epoch": steps_per_epoch, **({} if plan is None else {"budget": dataclasses.asdict(plan)})})


def _plan_budget(recipe: Recipe, trainer: Trainer, monitor, world: int, is_main: bool) -> budget.BudgetPlan:
    """The steps that fit ``recipe.minutes``: the step timed on the trainer's twin, one monitor pass (rank 0 only);
    under torchrun every process takes the smallest plan (they must agree on the schedule)."""
    twin = trainer.twin()
    step_s = budget.time_steps(twin.step, trainer.precision.device)
    monitor_s = budget.time_monitor(lambda: monitor(trainer)) if (is_main and monitor is not None) else 0.0
    plan = budget.plan_steps(recipe.minutes, step_s, monitor_s, trainer.steps_per_epoch,
                             recipe.epochs * trainer.steps_per_epoch)
    if world > 1:
        dev = trainer.precision.device
        t = torch.tensor([plan.steps], device=dev if dev.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        plan = dataclasses.replace(plan, steps=int(t.item()))
    return plan


def load_run(run_dir, device="cpu") -> tuple[Recipe, SimCLR, dict]:
    """(recipe, model with the last checkpoint's weights, checkpoint state) of a finished or interrupted run."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {cfg_path} is missing (run `simclr pretrain --out {run_dir}` first)")
    try:
        recipe = recipe_from_dict(json.loads(cfg_path.read_text())["recipe"])
    except (json.JSONDecodeError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{cfg_path} is not a valid run config: {err}") from None
    state = load_checkpoint(run_dir / CHECKPOINT)
    # config.json holds no data digest: the recipe must match, the data fields are taken as stored
    check_fingerprint(run_dir / CHECKPOINT, state, {**state["config"], **recipe.to_dict()})
    model = build_model(recipe)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT} does not fit the model of {cfg_path}: {str(err)[:500]}") from None
    return recipe, model.to(device), state


def probe_run(run_dir, device="auto", train_subset: int | None = None, test_subset: int | None = None,
              batch_size: int = 512, k: int = 200, t: float = 0.1, weight_decay: float = 1e-4,
              data_root: str | None = None, progress: bool = True) -> dict:
    """The linear-evaluation table of a run folder, written to ``run_dir/probe.json``.

    Three representations under one protocol (kNN and linear probe on the same train/test images): the SimCLR
    encoder f of the run's last checkpoint, the same architecture at its random initialisation (``build_model``
    of the run's recipe: the exact weights the run started from), and raw pixels. Features are extracted with the
    run's precision policy."""
    recipe, model, state = load_run(run_dir)
    cfg = json.loads((Path(run_dir) / CONFIG).read_text())
    root = data_root if data_root is not None else cfg.get("options", {}).get("data_root")
    precision = run_precision(recipe, device)
    model = precision.prepare(model)
    train = load_dataset(recipe.dataset, root, train=True)
    test = load_dataset(recipe.dataset, root, train=False)
    if train_subset is not None:
        train = train.subset(min(train_subset, len(train)), seed=recipe.seed)
    if test_subset is not None:
        test = test.subset(min(test_subset, len(test)), seed=recipe.seed)
    random_init = precision.prepare(build_model(recipe).encoder)
    mean, std = (recipe.augment.mean, recipe.augment.std) if recipe.augment.normalize else (None, None)
    reps = [("SimCLR", model.encoder), ("random init", random_init), ("raw pixels", None)]
    if progress:
        from tqdm.auto import tqdm

        reps = tqdm(reps, desc="probe", unit="repr")
    feats = {}
    for name, enc in reps:
        if enc is None:
            feats[name] = (raw_pixel_features(train.images), raw_pixel_features(test.images))
        else:
            feats[name] = (extract_features(enc, train.images, batch_size, precision, mean, std),
                           extract_features(enc, test.images, batch_size, precision, mean, std))
    rows = compare_representations(feats, train.targets, test.targets, k=k, t=t, weight_decay=weight_decay)
    result = {
        "run": str(run_dir), "dataset": recipe.dataset, "encoder": recipe.encoder, "epochs_trained": int(state["epoch"]) + 1,
        "steps_trained": sum(int(h.get("steps", 0)) for h in state.get("history", [])),
        "n_train": len(train), "n_test": len(test), "knn_k": k, "knn_t": t, "weight_decay": weight_decay,
        "precision": precision.describe(), "results": [r.__dict__ for r in rows],
    }
    Path(run_dir, "probe.json").write_text(json.dumps(result, indent=2))
    return result

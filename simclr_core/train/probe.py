"""``probe_run``: the linear-evaluation table of a run folder (``eval.probe``'s protocol), written to probe.json.

The run folder may have come from someone else, so it is read as data: its config.json is checked before anything
is built (``runs.load_run``), probe.json is written through a temporary file and a rename (a symbolic link there is
refused), and the dataset is read from the folder the caller names or the default one, never from the path the
run's config.json records (that path is only mentioned when it differs).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..data.datasets import dataset_root, load_dataset
from ..eval.probe import PROTOCOL, ProbeProtocol, probe_precision, probe_table
from .runfolder import refuse_links, write_text_atomic
from .runs import load_run, read_run_config, run_precision
from .step import build_model

__all__ = ["probe_run", "epochs_trained", "PROBE"]

PROBE = "probe.json"


def epochs_trained(state: dict) -> float:
    """The epochs a checkpoint's run trained, as a fraction when it stopped inside one (50 steps of 469: 0.11)."""
    steps = sum(int(h.get("steps", 0)) for h in state.get("history", []))
    per_epoch = state["config"].get("steps_per_epoch")
    if not isinstance(per_epoch, int) or per_epoch < 1 or not steps:
        return int(state["epoch"]) + 1
    epochs = steps / per_epoch
    return int(epochs) if epochs.is_integer() else round(epochs, 2)


def _data_root_note(recorded, used, dataset: str) -> str | None:
    """A line for stderr when the run recorded another data root than the one used here (None when they agree)."""
    if not isinstance(recorded, str) or not recorded.strip():
        return None
    try:
        if dataset_root(dataset, used).resolve() == Path(recorded).expanduser().resolve():
            return None
    except (ValueError, RuntimeError, OSError):  # "~nobody/x", a NUL byte: a path that names no folder here
        pass
    where = repr(str(used)) if used is not None else f"the default dataset folder {str(dataset_root(dataset))!r}"
    return (f"note: the run was trained with --data-root {recorded!r}; the probe reads {where} "
            f"(pass --data-root {recorded!r} to probe on the recorded one)")


class _Stages:
    """Progress as plain lines on stderr ("probe: 2/6 ..."), whether or not stderr is a terminal."""

    def __init__(self, total: int, on: bool):
        self.total, self.done, self.on, self.t0 = total, 0, on, time.perf_counter()

    def __call__(self, what: str) -> None:
        """Announce the next stage (so a slow one shows what it is doing)."""
        self.done += 1
        if self.on:
            print(f"probe {self.done}/{self.total} (at {time.perf_counter() - self.t0:.0f} s): {what}", file=sys.stderr,
                  flush=True)


def _protocol(protocol: ProbeProtocol | None, k: int | None, t: float | None,
              weight_decay: float | None) -> ProbeProtocol:
    """The workbook's protocol (``eval.probe.PROTOCOL``) unless given, with the CLI's --k / --knn-t /
    --weight-decay in place of its settings where they are given."""
    protocol = PROTOCOL if protocol is None else protocol
    if not isinstance(protocol, ProbeProtocol):
        raise ValueError(f"protocol must be a simclr_core.eval.probe.ProbeProtocol or None, got {type(protocol).__name__}")
    over = {name: v for name, v in (("knn_k", k), ("knn_t", t), ("weight_decay", weight_decay)) if v is not None}
    return replace(protocol, **over)


def probe_run(run_dir, device="auto", train_subset: int | None = None, test_subset: int | None = None,
              batch_size: int | None = None, k: int | None = None, t: float | None = None,
              weight_decay: float | None = None, data_root: str | None = None, progress: bool = True,
              protocol: ProbeProtocol | None = None) -> dict:
    """The linear-evaluation table of a run folder, written to ``run_dir/probe.json``.

    Three representations under the workbook's one protocol (``eval.probe``: kNN and the linear probe run to
    convergence, on the same train/test images): the SimCLR encoder f of the run's last checkpoint, the same
    architecture at its random initialisation (``build_model`` of the run's recipe: the exact weights the run
    started from), and raw pixels. ``k``, ``t``, ``weight_decay``, ``batch_size``: settings of the protocol
    replaced (None: the protocol's). ``data_root``: where the dataset is (None: the default folder)."""
    protocol = _protocol(protocol, k, t, weight_decay)
    if batch_size is not None:
        protocol = replace(protocol, batch_size=batch_size)
    run_dir = Path(run_dir)
    refuse_links(run_dir, (PROBE,))  # before minutes of work, not after
    recipe, model, state = load_run(run_dir)
    options = read_run_config(run_dir).get("options")
    recorded = options.get("data_root") if isinstance(options, dict) else None
    note = _data_root_note(recorded, data_root, recipe.dataset)
    if note:
        print(note, file=sys.stderr, flush=True)
    precision = run_precision(recipe, device)  # its device: the protocol decides the rest (eval.probe)
    train = load_dataset(recipe.dataset, data_root, train=True)
    test = load_dataset(recipe.dataset, data_root, train=False)
    if train_subset is not None:
        train = train.subset(min(train_subset, len(train)), seed=recipe.seed)
    if test_subset is not None:
        test = test.subset(min(test_subset, len(test)), seed=recipe.seed)
    encoders = {"SimCLR": model.encoder, "random init": build_model(recipe).encoder, "raw pixels": None}
    norm = (recipe.augment.mean, recipe.augment.std) if recipe.augment.normalize else None
    stage = _Stages(len(encoders) + 1, progress)
    rows = probe_table(encoders, train, test, precision, protocol, norm, stage)
    stage("written to probe.json")
    result = {
        "run": str(run_dir), "dataset": recipe.dataset, "encoder": recipe.encoder, "epochs_trained": epochs_trained(state),
        "steps_trained": sum(int(h.get("steps", 0)) for h in state.get("history", [])),
        "n_train": len(train), "n_test": len(test), "knn_k": protocol.knn_k, "knn_t": protocol.knn_t,
        "weight_decay": protocol.weight_decay, "protocol": protocol.describe(),
        "precision": probe_precision(precision, protocol).describe(), "results": rows,
    }
    write_text_atomic(run_dir / PROBE, json.dumps(result, indent=2))
    return result

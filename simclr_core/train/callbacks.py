"""The loop's callbacks: what a pretraining run does besides stepping (``train.loop.Callback``).

- ``KnnMonitor``: after every epoch, the kNN accuracy of the current features on held-out images (label-free
  training, a labelled check; Wu et al. 2018's weighted kNN, ``eval.metrics.knn_accuracy``);
- ``Checkpointer``: after every complete epoch, an atomic checkpoint (model, optimizer, objective, history, RNG),
  then metrics.jsonl re-written (atomically) from the checkpoint's history, so it never holds an epoch twice,
  whatever the order of interrupts, resumes and deletions (``Trainer`` stops a run whose epoch loss is not finite
  before any callback sees it);
- ``ProgressBar``: a tqdm bar with loss, lr and images/s, and one line per epoch;
- ``TimeLimit``: stop once this much training time has passed (under torchrun every process agrees).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..eval.features import extract_features
from ..eval.metrics import knn_accuracy
from .checkpoint import rng_state, save_checkpoint
from .loop import Callback
from .runfolder import write_text_atomic

__all__ = ["KnnMonitor", "Checkpointer", "ProgressBar", "TimeLimit", "write_jsonl_atomic"]


class KnnMonitor(Callback):
    """Adds ``knn_acc`` (fraction) and ``knn_seconds`` to every epoch's row; ``__call__`` runs one pass."""

    def __init__(self, bank, query, k: int = 200, t: float = 0.1, mean=None, std=None):
        self.bank, self.query, self.k, self.t, self.mean, self.std = bank, query, k, t, mean, std

    def __call__(self, trainer) -> float:
        enc, p = trainer.model.encoder, trainer.precision
        fb = extract_features(enc, self.bank.images, precision=p, mean=self.mean, std=self.std)  # (n_bank, d)
        fq = extract_features(enc, self.query.images, precision=p, mean=self.mean, std=self.std)  # (n_query, d)
        return knn_accuracy(fb.to(p.device), self.bank.targets, fq.to(p.device), self.query.targets, k=self.k, t=self.t,
                            num_classes=len(self.bank.classes))

    def on_epoch_end(self, trainer, row: dict) -> None:
        if trainer.rank != 0:
            return
        t0 = time.perf_counter()
        row["knn_acc"] = self(trainer)
        row["knn_seconds"] = time.perf_counter() - t0


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    """One JSON line per row, written through a new temporary file and a rename (never through a link)."""
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


class Checkpointer(Callback):
    """checkpoint.pt + metrics.jsonl in ``run_dir`` (rank 0 only). ``fingerprint``: what a resume must match."""

    def __init__(self, run_dir: Path, fingerprint: dict, history: list[dict], checkpoint: str = "checkpoint.pt",
                 metrics: str = "metrics.jsonl"):
        self.run_dir, self.fingerprint = Path(run_dir), fingerprint
        self.ckpt, self.metrics = self.run_dir / checkpoint, self.run_dir / metrics
        self.history = list(history)  # the complete epochs of the checkpoint this run continues (or none)
        self.saved_epoch = self.history[-1]["epoch"] if self.history else None

    def on_fit_start(self, trainer) -> None:
        if trainer.rank == 0:
            write_jsonl_atomic(self.metrics, self.history)  # drop lines of epochs that never got their checkpoint

    def on_epoch_end(self, trainer, row: dict) -> None:
        if trainer.rank != 0 or row.get("partial"):
            return
        self.history.append(row)
        save_checkpoint(self.ckpt, {
            "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "objective": trainer.objective.state_dict(), "epoch": row["epoch"], "config": self.fingerprint,
            "history": self.history, "rng": rng_state(),
        })
        self.saved_epoch = row["epoch"]
        write_jsonl_atomic(self.metrics, self.history)


class ProgressBar(Callback):
    """A tqdm bar over the run's steps (rank 0), with one line per epoch."""

    def __init__(self, desc: str = "pretrain"):
        self.desc, self.bar = desc, None

    def on_fit_start(self, trainer) -> None:
        if trainer.rank != 0:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.total_steps, initial=trainer.global_step, unit="step", desc=self.desc,
                        dynamic_ncols=True)
        self._t0, self._n0 = time.perf_counter(), trainer.global_step

    def on_step_end(self, trainer, loss) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if trainer.global_step % 10 == 0:  # .item() waits for the device: not every step
            done = trainer.global_step - self._n0
            self.bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{trainer.lr:.3g}",
                                 img_s=f"{done * trainer.recipe.batch_size / (time.perf_counter() - self._t0):.0f}")

    def on_epoch_end(self, trainer, row: dict) -> None:
        if self.bar is None:
            return
        knn = f"  kNN {100 * row['knn_acc']:.2f}%" if "knn_acc" in row else ""
        part = f" (stopped after {row['steps']} steps)" if row.get("partial") else ""
        self.bar.write(f"epoch {row['epoch'] + 1}/{trainer.last_epoch}{part}: loss {row['loss']:.4f}{knn}  "
                       f"{row['images_per_s']:.0f} img/s")

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()


class TimeLimit(Callback):
    """Set ``trainer.should_stop`` once ``seconds`` of training have passed since the fit started."""

    def __init__(self, seconds: float):
        self.seconds, self.deadline = seconds, None

    def on_fit_start(self, trainer) -> None:
        self.deadline = time.perf_counter() + self.seconds

    def on_step_end(self, trainer, loss) -> None:
        past = time.perf_counter() > self.deadline
        if trainer.world_size > 1:  # one process stopping alone would leave the others waiting in a collective
            from . import distributed

            past = distributed.any_process(past)
        if past and not trainer.done:
            trainer.should_stop = True

"""TrainConfig: everything that defines a SimCLR pretraining run, and the cpu / gpu presets.

Presets (Chen et al. 2020, arXiv:2002.05709):
- ``gpu``: the paper's CIFAR-10 recipe (Appendix B.9 and the reference repo's CIFAR-10 command):
  ResNet-18 with the CIFAR stem, batch 512, tau = 0.5, colour strength 0.5, no blur, LARS with
  lr = 1.0 x B/256, weight decay 1e-4, 10 warmup epochs then cosine, 500 epochs.
- ``cpu``: a small CNN that pretrains and probes within 15 minutes on a 2-core laptop. Its epochs are an upper
  bound: ``minutes = 8`` fits the run into 8 minutes of training on the machine it runs on
  (``simclr_core.budget``), so a CPU without native bfloat16 trains fewer epochs instead of taking longer.
  SGD with momentum (small batches do not need LARS) and a per-dataset augmentation (colour ops are no-ops on
  grayscale Fashion-MNIST, so there the crop is the main augmentation).
  - CIFAR-10: the default 32-64-128-256 CNN, batch 256, lr 0.06 x B/256 as in common small-batch SimCLR
    reproductions (lightly's example), tau 0.5, the paper's CIFAR augmentation, 3 epochs. Not tuned: no CIFAR data
    offline here.
  - Fashion-MNIST: tuned on 10 000 held-out training images with benchmarks/bench_fashion_mnist.py (the record is
    docs/tuning.md): widths 32-64-128-1024 (a wide last block, so h is 1024-d), batch 128, lr 0.5 x B/256,
    tau 0.2, weight decay 1e-4, crop scale (0.2, 1.0) resized to 16x16 views (the encoder is probed on the full
    28x28 images), brightness/contrast jitter of strength s = 1, 15 epochs.
  Both presets train in channels_last with bfloat16 autocast where the hardware computes bf16 natively (CUDA;
  CPUs with AVX512-BF16 or AMX, see ``trainer.amp_dtype``); elsewhere in float32.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields, replace

from .augment import AugmentConfig
from .data import DATASETS
from .models import ENCODERS
from .schedule import LR_SCALINGS, OPTIMIZERS

__all__ = ["TrainConfig", "preset", "PRESETS", "config_from_dict", "RESUMABLE_FIELDS"]

PRESETS = ("cpu", "gpu")

# Fields that may differ between a checkpoint and the run resuming it (they do not change the result).
RESUMABLE_FIELDS = ("out", "device", "num_threads", "progress", "download", "data_root", "time_limit_s", "resume")


@dataclass
class TrainConfig:
    """One pretraining run. ``batch_size`` is the global batch (split over processes under torchrun)."""

    dataset: str = "cifar10"
    data_root: str | None = None
    download: bool = False
    subset: int | None = None  # train on a random subset of this many images (None: all)
    monitor_train: int | None = 5000  # kNN monitor: memory bank of this many (un-augmented) train images
    monitor_test: int | None = 1000  # kNN monitor: this many test images, evaluated every epoch
    encoder: str = "small_cnn"
    widths: tuple[int, ...] | None = None  # small_cnn channel widths (None: models.SMALL_CNN_WIDTHS, 32-64-128-256)
    proj_hidden: int | None = None  # projection head hidden width (None: = encoder width)
    proj_dim: int = 128
    epochs: int = 20
    max_steps: int | None = None  # end the run (and the cosine schedule) after this many steps, e.g. a time budget
    minutes: float | None = None  # fit the run into this many minutes of training: sets max_steps (simclr_core.budget)
    batch_size: int = 256
    temperature: float = 0.5
    optimizer: str = "sgd"
    lr: float = 0.06  # base learning rate, scaled by lr_scaling
    lr_scaling: str = "linear"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    knn_k: int = 200
    knn_t: float = 0.1
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX); float32 elsewhere
    channels_last: bool = True  # NHWC memory format on CUDA and CPU
    sync_bn: bool = False  # SyncBatchNorm under torchrun (global BN, Sec. 2.2 of the paper)
    num_threads: int | None = None
    progress: bool = True
    out: str | None = None  # run folder: config.json, metrics.jsonl, checkpoint.pt, probe.json
    time_limit_s: float | None = None  # stop (after a checkpoint) once this much training time has passed
    resume: bool = False

    def __post_init__(self):
        if isinstance(self.augment, dict):
            self.augment = _augment_from_dict(self.augment)
        self.validate()

    def validate(self) -> "TrainConfig":
        def pos_int(name, allow_none=False):
            v = getattr(self, name)
            if allow_none and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {v!r}")

        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; valid: {DATASETS}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; valid: {sorted(ENCODERS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_scaling not in LR_SCALINGS:
            raise ValueError(f"lr_scaling must be one of {LR_SCALINGS}, got {self.lr_scaling!r}")
        for name in ("epochs", "batch_size", "proj_dim", "knn_k"):
            pos_int(name)
        for name in ("subset", "monitor_train", "monitor_test", "proj_hidden", "num_threads", "max_steps"):
            pos_int(name, allow_none=True)
        if self.widths is not None:
            if isinstance(self.widths, list):
                self.widths = tuple(self.widths)
            if self.encoder != "small_cnn":
                raise ValueError(f"widths only applies to encoder 'small_cnn', got encoder {self.encoder!r}")
            if not self.widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.widths):
                raise ValueError(f"widths must be a non-empty tuple of positive integers, got {self.widths!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (NT-Xent needs negatives), got {self.batch_size!r}")
        for name in ("temperature", "lr", "knn_t"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<i>' or 'mps', got {self.device!r}")
        if self.minutes is not None and (isinstance(self.minutes, bool) or not isinstance(self.minutes, (int, float))
                                         or not 0 < self.minutes < float("inf")):
            raise ValueError(f"minutes must be a finite number > 0 or None, got {self.minutes!r}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError(f"time_limit_s must be > 0 seconds or None, got {self.time_limit_s!r}")
        if not isinstance(self.augment, AugmentConfig):
            raise ValueError(f"augment must be an AugmentConfig, got {type(self.augment).__name__}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> dict:
        """The fields that determine the result (what a checkpoint must agree on to be resumed)."""
        d = self.to_dict()
        for k in RESUMABLE_FIELDS:
            d.pop(k, None)
        return d


def _augment_from_dict(d: dict) -> AugmentConfig:
    names = {f.name for f in fields(AugmentConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown augmentation settings {sorted(unknown)}; valid: {sorted(names)}")
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of ``TrainConfig.to_dict`` (e.g. from a run's config.json); unknown keys are an error."""
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown TrainConfig settings {sorted(unknown)}; valid: {sorted(names)}")
    return TrainConfig(**d)


def _dataset_augment(dataset: str, preset_name: str) -> AugmentConfig:
    if dataset == "fashion-mnist":
        # Grayscale 28x28: saturation/hue/grayscale do nothing; crop + flip + brightness/contrast remain.
        # The cpu preset doubles the brightness/contrast strength (s = 1 measured better in 10-minute runs), and
        # its views are 16x16: low-resolution training makes a step about 1.75x cheaper; the encoder is fully
        # convolutional and is probed on the full 28x28 images (which measured best, docs/tuning.md).
        aug = AugmentConfig(size=28, crop_scale=(0.2, 1.0), strength=0.5, grayscale=False, mean=(0.2860,), std=(0.3530,))
        return replace(aug, size=16, strength=1.0) if preset_name == "cpu" else aug
    return AugmentConfig()  # CIFAR-10: the paper's recipe (s = 0.5, no blur)


def preset(name: str, dataset: str = "cifar10", **overrides) -> TrainConfig:
    """The ``cpu`` or ``gpu`` preset for ``dataset``, with any field overridden by keyword."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {PRESETS}")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {DATASETS}")
    aug = _dataset_augment(dataset, name)
    if name == "cpu":
        cfg = TrainConfig(
            dataset=dataset, encoder="small_cnn", epochs=3, batch_size=256,
            temperature=0.5, optimizer="sgd", lr=0.06, lr_scaling="linear", momentum=0.9, weight_decay=5e-4,
            warmup_epochs=0.25, augment=aug, monitor_train=5000, monitor_test=1000, amp=True,
            minutes=8.0,  # at most `epochs`, fewer where 8 minutes do not hold them (simclr_core.budget)
        )
        if dataset == "fashion-mnist":
            # Tuned with benchmarks/bench_fashion_mnist.py (3- and 10-minute runs, docs/tuning.md).
            # widths: a wide last block (h is 1024-d), and 16x16 views (see _dataset_augment): chosen on 10k
            # held-out training images (bench_fashion_mnist.py --val 10000), never on the test set.
            cfg = replace(cfg, widths=(32, 64, 128, 1024), epochs=15, batch_size=128, temperature=0.2, lr=0.5,
                          weight_decay=1e-4, warmup_epochs=0.5)
    else:
        cfg = TrainConfig(
            dataset=dataset, encoder="resnet18_cifar", epochs=500, batch_size=512, temperature=0.5,
            optimizer="lars", lr=1.0, lr_scaling="linear", momentum=0.9, weight_decay=1e-4, warmup_epochs=10,
            augment=aug, monitor_train=None, monitor_test=None, amp=True,
        )
    if "augment" in overrides and isinstance(overrides["augment"], dict):
        overrides["augment"] = replace(aug, **overrides["augment"])
    try:
        return replace(cfg, **overrides)
    except TypeError as err:
        names = sorted(f.name for f in fields(TrainConfig))
        raise ValueError(f"unknown TrainConfig setting in {sorted(overrides)}: {err}; valid: {names}") from None

"""TrainConfig: everything that defines a SimCLR pretraining run, and the cpu / gpu presets.

Presets (Chen et al. 2020, arXiv:2002.05709):
- ``gpu``: the paper's CIFAR-10 recipe (Appendix B.9 and the reference repo's CIFAR-10 command):
  ResNet-18 with the CIFAR stem, batch 512, tau = 0.5, colour strength 0.5, no blur, LARS with
  lr = 1.0 x B/256, weight decay 1e-4, 10 warmup epochs then cosine, 500 epochs.
- ``cpu``: a small CNN that pretrains and probes within 15 minutes on a 2-core laptop (measured at CIFAR-10 size
  on a 2-core machine: 4 min 56 s with native bf16, 6 min 28 s in float32, probes included): SGD with
  momentum (small batches do not need LARS), lr 0.06 x B/256 as in common small-batch SimCLR
  reproductions, tau 0.5, and a per-dataset augmentation (colour ops are no-ops on grayscale
  Fashion-MNIST, so there the crop is the main augmentation). On Fashion-MNIST the cpu preset is tuned for
  short runs (benchmarks/bench_fashion_mnist.py): a small CNN of widths 32-64-128-1024 (a wide last block, so h is
  1024-d), batch 128, lr 0.5 x B/256, tau 0.2, weight decay 1e-4, crop scale (0.2, 1.0)
  resized to 16x16 views (the encoder is probed on the full 28x28 images), brightness/contrast jitter of strength
  s = 1, 15 epochs. CIFAR-10 keeps the values above and the default 32-64-128-256 CNN (not re-tuned: no CIFAR data
  offline here).
  Both presets train in channels_last with bfloat16 autocast where the hardware computes bf16 natively (CUDA;
  CPUs with AVX512-BF16 or AMX, see ``trainer.amp_dtype``). On Fashion-MNIST, 3 epochs of the cpu preset in bf16
  and in float32 probe alike (kNN 81.1 vs 80.8, linear 85.2 vs 84.8) at 1.25x the speed.
  Tuning history (3-minute runs, 2 cores): in float32/contiguous a CNN of widths 16-128 won because it got about
  4x the epochs; lr, tau and crop moved the probes by under 1.5 points. Once channels_last + bf16 made the step
  2-3x faster, the 32-256 CNN won at the same 3 minutes (kNN 83.3 / linear 88.3 against 82.8 / 86.1 for 16-128).
  The widths were then chosen on 10 000 held-out *training* images (``bench_fashion_mnist.py --minutes 3 --val
  10000 --widths ...``; the test set untouched), kNN / linear after 3 minutes:
  32-64-128-256 83.2 / 88.4; 32-64-128-512 83.0 / 89.6; 16-32-64-512 83.7 / 89.6; 32-64-128-1024 82.8 / 90.1;
  16-32-128-1024 83.5 / 90.1; 16-32-64-1024 83.2 / 90.2. The width of h drives the linear probe (random init
  gains too, 86.5 -> 87.9, but SimCLR gains more), and the early blocks can be narrow.
  Then the side of the training views (``--size``; same split, same 3 minutes, 16-32-64-1024): 28 px 83.2 / 90.2
  at 1488 img/s; 24 px 83.8 / 90.2; 20 px 83.7 / 90.6 at 2285 img/s; 18 px 83.4 / 90.2; 16 px 83.9 / 91.0 at
  2672 img/s (seed 1: 83.3 / 90.5); 14 px 82.2 / 90.6; 12 px 80.2 / 90.2. At 16 px a crop scale of (0.25, 1.0)
  gave 83.8 / 90.5 and (0.6, 1.0) 83.4 / 90.6, and widths 16-32-64-2048 83.1 / 90.8 (random init 88.4). Smaller
  views buy epochs, and the fully convolutional encoder still probes best on the whole 28x28 images: probing one
  3-minute encoder on the held-out images resized to 24 / 22 / 20 / 18 px gave linear 90.1 / 89.5 / 89.7 / 89.1
  against 90.4 at 28 px (kNN 84.2 / 83.2 / 83.5 / 83.2 against 83.3), although the crops then used (40-100 % of
  the image at 16 px) show objects at about 0.7x their size in the probe images. Below 16 px the kNN accuracy
  drops.
  The views are resampled with torchvision's antialiased filter (``fast_augment.crop_flip``); against the earlier
  plain bilinear resample that measured alike (seed 0, 3 minutes: 83.3 / 90.4 against 83.5 / 90.3).
  Here stronger augmentation pays off only with more epochs: in 10-minute runs (about 30-36 epochs; same
  held-out split; one seed each, repeat runs differ by about 0.4) the earlier crop (0.4, 1.0) with s = 0.5 gave
  84.0 / 90.5; crop (0.2, 1.0) 84.9 / 90.6; crop (0.08, 1.0) 84.5 / 90.6; s = 1 85.4 / 90.1; batch 256
  84.7 / 90.5; crop (0.2, 1.0) with s = 1 85.9 / 90.6, which the preset now uses. In the 3-minute runs above
  (about 9 epochs) the stronger crop had not helped.
  The step then got 1.46x faster (``models.Conv3x3``, ``models.GlobalAvgPool``, fused SGD; benchmarks/bench_step.py;
  1.41x for the 32-64-128-1024 CNN), and 10-minute held-out runs of the widths (same split, one seed each;
  kNN / linear, epochs) moved the choice:
  16-32-64-1024 86.0 / 90.5 (45.8 epochs); 32-64-128-1024 86.2 / 91.1 (32.1); 32-64-128-2048 85.5 / 91.2 (18.8);
  64-128-256-1024 85.6 / 91.4 (15.6, random init 88.5 against 87.9: too slow for the 15-minute budget). With
  16-32-64-1024 the linear probe had stayed near 90.5 from 30 to 46 epochs, so it was capacity, not epochs, that
  held it; 32-64-128-1024 is the preset's. With 16-32-64-1024, batch 256 (85.8 / 90.1) and tau 0.3 (85.8 / 90.1)
  had not helped either.
  The linear probe's weight decay was checked too (a 10-epoch run's features, 50k/10k split of the training
  images): 1e-4 (the default) and 1e-3 are best (90.0), 0 gives 89.4 and 1e-2 88.9.
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
        # convolutional and is probed on the full 28x28 images (which measured best, see the module docstring).
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
        )
        if dataset == "fashion-mnist":
            # Tuned with benchmarks/bench_fashion_mnist.py (3- and 10-minute runs, see the module docstring).
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

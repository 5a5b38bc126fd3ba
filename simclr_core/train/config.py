"""What a pretraining run is: the ``Recipe`` (every field that determines the result) and the ``RunOptions``
(where and how it runs: output folder, device, progress, resume, ...; they never change the weights).

A checkpoint's fingerprint is the recipe itself plus the identity of the data it was trained on (see
``runs.fingerprint``): nothing is listed by hand, a new recipe field is in the fingerprint by construction.
The presets are one literal table, ``PRESETS``, keyed by (preset, dataset); the reason for each value is next
to it. ``preset(name, dataset, **overrides)`` reads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from .. import checks
from ..data.augment import AugmentConfig
from ..data.datasets import DATASETS, facts
from ..nn.models import ENCODERS, SMALL_CNN_WIDTHS
from .schedule import LR_SCALINGS, OPTIMIZERS

__all__ = ["Recipe", "RunOptions", "preset", "PRESETS", "PRESET_NAMES", "recipe_from_dict",
           "SIZE_LIMITS", "MAX_PARAMETERS"]

# Sizes a config may ask for, checked before anything is allocated (a config.json may come from anyone): generous
# for any real run (the paper's largest batch is 8192, its widest head 2048), far below what exhausts a machine.
SIZE_LIMITS = {"epochs": 100_000, "batch_size": 65_536, "proj_dim": 16_384, "proj_hidden": 16_384, "knn_k": 100_000,
               "subset": 100_000_000, "monitor_train": 100_000_000, "monitor_test": 100_000_000,
               "max_steps": 1_000_000_000, "blocks": 16, "width": 8_192}
MAX_PARAMETERS = 100_000_000  # four ResNet-50s (25.6 M each): 400 MB of float32 weights


def _at_most(name: str, v: int | None) -> None:
    if v is not None and v > SIZE_LIMITS[name]:
        raise ValueError(f"{name} must be at most {SIZE_LIMITS[name]:,}, got {v!r}")


@dataclass
class Recipe:
    """One pretraining run's result-determining settings. Defaults: the ``cpu`` preset on CIFAR-10.
    ``batch_size`` is the global batch N (split over processes under torchrun)."""

    dataset: str = "cifar10"
    subset: int | None = None  # train on a random subset of this many images (None: all)
    encoder: str = "small_cnn"
    widths: tuple[int, ...] | None = None  # small_cnn channel widths (None: 32-64-128-256)
    head: bool = True  # False: no projection head, the loss is applied to h itself (z = h)
    proj_hidden: int | None = None  # projection head hidden width (None: = encoder width)
    proj_dim: int = 128
    epochs: int = 3
    max_steps: int | None = None  # end the run, and the cosine schedule, after this many steps
    minutes: float | None = 8.0  # fit the run into this many minutes of training: sets max_steps (train.budget)
    batch_size: int = 256
    temperature: float = 0.5
    optimizer: str = "sgd"
    lr: float = 0.06  # base learning rate, scaled by lr_scaling
    lr_scaling: str = "linear"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.25
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    monitor_train: int | None = 5000  # kNN monitor: memory bank of this many (un-augmented) train images
    monitor_test: int | None = 1000  # kNN monitor: this many test images, evaluated every epoch
    knn_k: int = 200
    knn_t: float = 0.1
    seed: int = 0
    amp: bool = True  # bfloat16 autocast where the hardware computes bf16 natively (simclr_core.precision)
    channels_last: bool = True  # NHWC memory format on CUDA and CPU
    fast_layers: bool = True  # swap in simclr_core.nn.fast_layers (same function, faster on a CPU)
    sync_bn: bool = False  # SyncBatchNorm under torchrun (global BN, Sec. 2.2 of the paper)

    def __post_init__(self):
        if isinstance(self.augment, dict):
            self.augment = _augment_from_dict(self.augment)
        if isinstance(self.widths, list):
            self.widths = tuple(self.widths)
        self.validate()

    def validate(self) -> "Recipe":
        checks.one_of("dataset", self.dataset, DATASETS)
        checks.one_of("encoder", self.encoder, ENCODERS)
        checks.one_of("optimizer", self.optimizer, OPTIMIZERS)
        checks.one_of("lr_scaling", self.lr_scaling, LR_SCALINGS)
        for name in ("epochs", "batch_size", "proj_dim", "knn_k"):
            _at_most(name, checks.positive_int(name, getattr(self, name)))
        for name in ("subset", "monitor_train", "monitor_test", "proj_hidden", "max_steps"):
            _at_most(name, checks.optional(checks.positive_int, name, getattr(self, name)))
        if self.widths is not None:
            if self.encoder != "small_cnn":
                raise ValueError(f"widths only applies to encoder 'small_cnn', got encoder {self.encoder!r}")
            checks.int_tuple("widths", self.widths)
            if len(self.widths) > SIZE_LIMITS["blocks"] or max(self.widths) > SIZE_LIMITS["width"]:
                raise ValueError(f"widths must be at most {SIZE_LIMITS['blocks']} blocks of at most "
                                 f"{SIZE_LIMITS['width']} channels, got {self.widths!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (NT-Xent needs negatives), got {self.batch_size!r}")
        checks.temperature("temperature", self.temperature)
        for name in ("lr", "knn_t"):
            checks.positive_float(name, getattr(self, name))
        checks.optional(checks.positive_float, "minutes", self.minutes)
        if not (checks.nonnegative_float("momentum", self.momentum) < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        checks.nonnegative_float("weight_decay", self.weight_decay)
        if not checks.nonnegative_float("warmup_epochs", self.warmup_epochs) <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs!r}")
        if checks.nonnegative_int("seed", self.seed) >= 2**32:  # seeds torch, numpy and the subset generators
            raise ValueError(f"seed must be an integer in 0..{2**32 - 1}, got {self.seed!r}")
        for name in ("head", "amp", "channels_last", "fast_layers", "sync_bn"):
            checks.boolean(name, getattr(self, name))
        if not isinstance(self.augment, AugmentConfig):
            raise ValueError(f"augment must be an AugmentConfig, got {type(self.augment).__name__}")
        if self.augment.normalize and len(self.augment.mean) != facts(self.dataset).channels:
            raise ValueError(f"augment.mean has {len(self.augment.mean)} channels, {self.dataset} images have "
                             f"{facts(self.dataset).channels}")
        if self.parameter_count() > MAX_PARAMETERS:
            raise ValueError(f"this network would have {self.parameter_count():,} parameters, more than the "
                             f"{MAX_PARAMETERS:,} allowed (4x ResNet-50); choose smaller widths, proj_hidden or proj_dim")
        return self

    def parameter_count(self) -> int:
        """The parameters ``build_model`` would create, counted from the sizes alone (nothing is allocated)."""
        if self.encoder == "small_cnn":
            n, c = 0, facts(self.dataset).channels
            for w in self.widths or SMALL_CNN_WIDTHS:
                n, c = n + 9 * c * w + 2 * w, w  # 3x3 conv without bias, BatchNorm
        else:  # resnet18_cifar: ~11.2 M parameters, h is 512-d
            n, c = 11_200_000, 512
        if self.head:
            hidden = self.proj_hidden or c
            n += c * hidden + 2 * hidden + hidden * self.proj_dim + self.proj_dim
        return n

    @property
    def in_channels(self) -> int:
        return facts(self.dataset).channels

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunOptions:
    """Where and how a run executes. None of these change the trained weights."""

    out: str | None = None  # run folder: config.json, metrics.jsonl, checkpoint.pt, probe.json
    data_root: str | None = None  # where the dataset lives (None: the default for the dataset)
    download: bool = False
    device: str = "auto"
    num_threads: int | None = None
    progress: bool = True
    time_limit_s: float | None = None  # stop (after a checkpoint) once this much training time has passed
    resume: bool = False
    force: bool = False  # write the run into a non-empty folder that is not a run (none of its files is replaced)

    def __post_init__(self):
        if self.out is not None and not (isinstance(self.out, str) and self.out.strip()):
            raise ValueError(f"out must be a folder path or None, got {self.out!r}")
        if self.data_root is not None and not (isinstance(self.data_root, str) and self.data_root.strip()):
            raise ValueError(f"data_root (CLI: --data-root) must be a folder path or None (the default folder), "
                             f"got {self.data_root!r}")
        checks.optional(checks.int_in_range, "num_threads", self.num_threads, 1, 4096)
        checks.optional(checks.positive_float, "time_limit_s", self.time_limit_s, "seconds")
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', got {self.device!r}")
        for name in ("download", "progress", "resume", "force"):
            checks.boolean(name, getattr(self, name))

    def to_dict(self) -> dict:
        return asdict(self)


def _augment_from_dict(d: dict) -> AugmentConfig:
    names = {f.name for f in fields(AugmentConfig)}
    checks.known_keys("augmentation settings", d, names)
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _from_dict(cls, d: dict):
    names = {f.name for f in fields(cls)}
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} settings must be a dict, got {type(d).__name__}")
    checks.known_keys(f"{cls.__name__} settings", d, names)
    return cls(**d)


def recipe_from_dict(d: dict) -> Recipe:
    """Inverse of ``Recipe.to_dict`` (e.g. from a run's config.json); unknown keys are an error."""
    return _from_dict(Recipe, d)


# ------------------------------------------------------------------ the presets: one table, with reasons

_FASHION_AUG = AugmentConfig(
    size=16,  # 16x16 views of the 28x28 images: cheaper steps, best in the tuning (docs/tuning.md); probed at 28x28
    crop_scale=(0.2, 1.0),  # 8% of 28x28 is an 8x8 patch: too little of a garment (10-min held-out runs)
    strength=1.0,  # brightness/contrast s = 1 beat s = 0.5 in 10-minute held-out runs (docs/tuning.md)
    grayscale=False,  # grayscale images: saturation, hue and grayscale do nothing
    mean=facts("fashion-mnist").mean, std=facts("fashion-mnist").std,
)

PRESETS: dict[tuple[str, str], dict] = {
    ("cpu", "cifar10"): dict(
        encoder="small_cnn",  # trains at a few hundred images/s on a 2-core laptop
        epochs=3,  # an upper bound: `minutes` decides how many fit
        minutes=8.0,  # pretraining + probe within about 15 minutes on a 2-core laptop (train.budget)
        batch_size=256,  # common small-batch SimCLR reproductions (lightly's example)
        temperature=0.5,  # the paper's CIFAR-10 value (Appendix B.9)
        optimizer="sgd", lr=0.06, lr_scaling="linear",  # SGD, lr 0.06 x N/256: small batches need no LARS
        momentum=0.9, weight_decay=5e-4,  # lightly's CIFAR-10 example
        warmup_epochs=0.25,  # a short warmup for a 3-epoch run
        augment=AugmentConfig(),  # the paper's CIFAR-10 augmentation: s = 0.5, no blur
        monitor_train=5000, monitor_test=1000,  # kNN monitor: a few seconds per epoch
        fast_layers=True,  # same function, faster on a CPU
    ),
    ("cpu", "fashion-mnist"): dict(
        encoder="small_cnn",
        widths=(32, 64, 128, 1024),  # a wide last block (h is 1024-d): better probes than narrower (docs/tuning.md)
        epochs=15,  # an upper bound: `minutes` decides how many fit
        minutes=8.0,  # as for CIFAR-10: about 15 minutes with the probes on a 2-core laptop
        batch_size=128,  # more steps in the budget; beat 256 in held-out 10-minute runs
        temperature=0.2,  # tuned on 10k held-out training images (0.1 within noise, docs/tuning.md)
        optimizer="sgd", lr=0.5, lr_scaling="linear",  # lr 0.5 x N/256, tuned (1.0 within noise)
        momentum=0.9,
        weight_decay=1e-4,  # tuned (5e-4 within noise)
        warmup_epochs=0.5,
        augment=_FASHION_AUG,
        monitor_train=5000, monitor_test=1000,
        fast_layers=True,
    ),
    ("gpu", "cifar10"): dict(
        encoder="resnet18_cifar",  # ResNet-18 with the CIFAR stem (Appendix B.9)
        epochs=500,  # the reference repo's CIFAR-10 command
        minutes=None,  # a fixed number of epochs: the paper's recipe
        batch_size=512,
        temperature=0.5,  # Appendix B.9
        optimizer="lars", lr=1.0, lr_scaling="linear",  # LARS, lr 1.0 x N/256 (Appendix B.9)
        momentum=0.9, weight_decay=1e-4,  # the reference repo's CIFAR-10 command
        warmup_epochs=10,  # 10 warmup epochs, then cosine (Appendix B.1)
        augment=AugmentConfig(),  # s = 0.5, no blur (Appendix B.9)
        monitor_train=None, monitor_test=None,  # the whole splits: cheap on a GPU
        fast_layers=False,  # the speed layers are CPU tricks
    ),
    ("gpu", "fashion-mnist"): dict(
        encoder="resnet18_cifar", epochs=500, minutes=None, batch_size=512, temperature=0.5,
        optimizer="lars", lr=1.0, lr_scaling="linear", momentum=0.9, weight_decay=1e-4, warmup_epochs=10,
        augment=AugmentConfig(size=28, crop_scale=(0.2, 1.0), strength=0.5, grayscale=False,  # as CIFAR, 28x28 views
                              mean=facts("fashion-mnist").mean, std=facts("fashion-mnist").std),
        monitor_train=None, monitor_test=None, fast_layers=False,
    ),
}
PRESET_NAMES = ("cpu", "gpu")


def preset(name: str, dataset: str = "cifar10", **overrides) -> Recipe:
    """The ``name`` preset for ``dataset`` from ``PRESETS``, with any recipe field overridden by keyword
    (``augment`` may be a dict of AugmentConfig fields to change)."""
    checks.one_of("preset", name, PRESET_NAMES)
    checks.one_of("dataset", dataset, DATASETS)
    table = dict(PRESETS[(name, dataset)])
    if isinstance(overrides.get("augment"), dict):
        overrides["augment"] = replace(table["augment"], **overrides["augment"])
    names = {f.name for f in fields(Recipe)}
    checks.known_keys("recipe settings", overrides, names)
    return Recipe(**{"dataset": dataset, **table, **overrides})

"""Datasets by name, as uint8 image tensors the augmentations (and the batched fast path) accept.

- ``cifar10``: torchvision.datasets.CIFAR10 (the paper's small-image benchmark; Chen et al. 2020, App. B.9),
  downloaded when ``download=True``.
- ``fashion-mnist``: torchvision.datasets.FashionMNIST layout, or any folder that holds the four raw idx
  ``.gz`` files (Debian's ``dataset-fashion-mnist`` puts them in /usr/share/datasets/fashion-mnist).

Every dataset is loaded once into memory as ``images`` (N, C, H, W) uint8 and ``targets`` (N,) int64
(CIFAR-10 is 180 MB, Fashion-MNIST 55 MB), which is what makes batched augmentation fast.
A dataset that is missing and cannot be downloaded raises ``DatasetUnavailable`` naming the folder that
was searched and the ways to provide the files.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import checks
from .cifar_pickle import batch_arrays, class_names, load_cifar_pickle

__all__ = ["ImageDataset", "DatasetUnavailable", "load_dataset", "default_root", "dataset_root", "DATASETS", "FACTS", "DatasetFacts", "facts",
           "SYSTEM_FASHION_MNIST", "data_digest"]

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class DatasetFacts:
    """What the rest of the library needs to know about a dataset, in one place."""

    name: str
    channels: int
    size: int  # images are size x size
    n_train: int
    n_test: int
    mean: tuple[float, ...]  # per-channel mean / std of the training images in [0, 1]
    std: tuple[float, ...]
    classes: tuple[str, ...]


FACTS = {
    "cifar10": DatasetFacts("cifar10", 3, 32, 50_000, 10_000, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
    "fashion-mnist": DatasetFacts("fashion-mnist", 1, 28, 60_000, 10_000, (0.2860,), (0.3530,),
                                  ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                                   "Bag", "Ankle boot")),
}
DATASETS = tuple(FACTS)
FASHION_CLASSES = FACTS["fashion-mnist"].classes


def facts(name: str) -> DatasetFacts:
    """The ``DatasetFacts`` of ``name`` (one of ``DATASETS``)."""
    return FACTS[checks.known_name("dataset", name, DATASETS)]


class DatasetUnavailable(RuntimeError):
    """The dataset is not on disk and could not be downloaded."""


@dataclass
class ImageDataset(Dataset):
    """In-memory images (N, C, H, W) uint8 with labels (N,); ``transform`` is applied per item."""

    images: torch.Tensor
    targets: torch.Tensor
    classes: tuple[str, ...]
    name: str = ""
    transform: object = None

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or not isinstance(self.targets, torch.Tensor):
            raise ValueError(f"images and targets must be tensors, got {type(self.images).__name__} and "
                             f"{type(self.targets).__name__}")
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be (N, C, H, W) uint8, got {tuple(self.images.shape)} {self.images.dtype}")
        if self.targets.shape != (self.images.shape[0],):
            raise ValueError(f"targets must be ({self.images.shape[0]},), got {tuple(self.targets.shape)}")
        # a label past the classes would index a wrong row (or crash) deep in a probe
        checks.class_indices("targets", self.targets, self.images.shape[0], len(self.classes))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        x = self.images[i]  # (C, H, W) uint8
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[i])

    def subset(self, n: int, seed: int = 0) -> "ImageDataset":
        """A random class-mixed subset of n images (the same n and seed always give the same subset)."""
        checks.int_in_range("n", n, 1, len(self))
        return self.select(torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n])

    def select(self, idx: torch.Tensor) -> "ImageDataset":
        """The images at indices ``idx`` (a 1-D index tensor), same classes, name and transform."""
        return ImageDataset(self.images[idx], self.targets[idx], self.classes, self.name, self.transform)


def default_root() -> Path:
    """Where datasets live: $SIMCLR_DATA, else ~/.cache/simclr-workbook/data. An empty SIMCLR_DATA is an error
    (it would mean the current folder)."""
    env = os.environ.get("SIMCLR_DATA")
    if env is not None and not env.strip():
        raise ValueError("SIMCLR_DATA is set but empty: set it to the dataset folder, or unset it for the default "
                         "~/.cache/simclr-workbook/data")
    return Path(env if env is not None else Path.home() / ".cache" / "simclr-workbook" / "data").expanduser()


def load_dataset(name: str, root: str | os.PathLike | None = None, train: bool = True, download: bool = False) -> ImageDataset:
    """Load ``cifar10`` or ``fashion-mnist`` (train or test split) into memory."""
    checks.known_name("dataset", name, DATASETS)
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"root must be a folder path or None, got {root!r}")
    if root is not None and not str(root).strip():
        raise ValueError("root (CLI: --data-root) is empty: give the dataset folder, or leave it out for the default")
    if root is not None and Path(root).expanduser().exists() and not Path(root).expanduser().is_dir():
        raise ValueError(f"root {str(root)!r} is a file, not a folder")
    root = dataset_root(name, root, train)
    return _load_cifar10(root, train, download) if name == "cifar10" else _load_fashion_mnist(root, train, download)


def dataset_root(name: str, root: str | os.PathLike | None = None, train: bool = True) -> Path:
    """The folder ``load_dataset(name, root, train)`` reads: ``root`` itself, or the default for ``name``
    (Fashion-MNIST: /usr/share/datasets/fashion-mnist when it holds the files, else ``default_root()``)."""
    if root is not None:
        return Path(root).expanduser()
    if name == "fashion-mnist" and _raw_idx_files(SYSTEM_FASHION_MNIST, train):
        return SYSTEM_FASHION_MNIST
    return default_root()


def _unavailable(name: str, root: Path, how: str, reason: str, downloaded: bool) -> DatasetUnavailable:
    lines = how.splitlines(keepends=True)
    if downloaded:  # the download was tried: do not suggest it again
        lines = [line for line in lines if "download=True" not in line]
    return DatasetUnavailable(
        f"{name} is not in {root} and {'the download failed' if downloaded else 'was not downloaded'} ({reason}).\n"
        f"Options:\n{''.join(lines)}"
        f"  - or train on the real data this machine may have offline:\n"
        f"      simclr pretrain --dataset fashion-mnist --data-root {SYSTEM_FASHION_MNIST} --out runs/fashion-mnist\n"
        f"    (Debian/Ubuntu: apt-get install dataset-fashion-mnist)"
    )


def _load_cifar10(root: Path, train: bool, download: bool) -> ImageDataset:
    from torchvision.datasets import CIFAR10

    how = (
        f"  - with internet: pass download=True (CLI: --download) to fetch it into {root}\n"
        f"  - offline: copy cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extract it\n"
        f"    so that {root / 'cifar-10-batches-py'} holds data_batch_1..5 and test_batch\n"
    )
    try:
        ds = CIFAR10(str(root), train=train, download=False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        if _cifar_pickles_present(root, train):  # CIFAR-format files whose md5 is not the real archive's
            return _read_cifar_pickles(root, train)
        if not download:
            raise _unavailable("CIFAR-10", root, how, "download=False", False) from None
        try:
            ds = CIFAR10(str(root), train=train, download=True)
        except Exception as err:  # urllib / socket errors from deep inside the download
            raise _unavailable("CIFAR-10", root, how, f"{type(err).__name__}: {err}", True) from None
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
    return ImageDataset(images, torch.as_tensor(ds.targets, dtype=torch.int64), tuple(ds.classes), "cifar10")


def _cifar_pickles_present(root: Path, train: bool) -> bool:
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    if all((folder / n).is_file() for n in names) and not (folder / "batches.meta").is_file():
        raise ValueError(f"{folder} holds the CIFAR-10 batches but not batches.meta (the class names): copy it from "
                         f"the archive cifar-10-python.tar.gz")
    return all((folder / n).is_file() for n in names + ["batches.meta"])


def _read_cifar_pickles(root: Path, train: bool) -> ImageDataset:
    """Read CIFAR-10-format pickles directly (torchvision insists on the real archive's md5 sums, so a
    re-packed or test-sized copy, e.g. ``simclr_core.data.synthetic``, is read here). Such files come from anyone:
    ``cifar_pickle`` unpickles them as data only and checks every pixel and label."""
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    classes = class_names(load_cifar_pickle(folder / "batches.meta"), folder / "batches.meta")
    data, labels = [], []
    for name in names:
        images, targets = batch_arrays(load_cifar_pickle(folder / name), len(classes), folder / name)
        data.append(images)
        labels.append(targets)
    return ImageDataset(torch.from_numpy(np.concatenate(data)), torch.from_numpy(np.concatenate(labels)), classes,
                        "cifar10")


_IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _raw_idx_files(folder: Path, train: bool):
    """The (images, labels) idx files for a split in ``folder``, plain or .gz; None if absent."""
    found = []
    for stem in _IDX_FILES[train]:
        for cand in (folder / stem, folder / f"{stem}.gz"):
            if cand.is_file():
                found.append(cand)
                break
        else:
            return None
    return tuple(found)


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (the MNIST format: big-endian magic, dims, then uint8 data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError; a cut-off .gz ends in EOFError
        raise ValueError(f"{path} is not a readable{' gzip' if path.suffix == '.gz' else ''} idx file "
                         f"({type(err).__name__}: {err or 'truncated'}); re-download or re-copy it") from None
    if len(data) < 4:
        raise ValueError(f"{path} is not an idx file (only {len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not a uint8 idx file (magic {data[:4].hex()})")
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path} is truncated: its header promises {ndim} dimensions but the file has {len(data)} bytes")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {dims}, found {arr.size} values")
    return arr.reshape(dims)


def _load_fashion_mnist(root: Path, train: bool, download: bool) -> ImageDataset:
    # Either the idx files directly in root (Debian's layout) or torchvision's root/FashionMNIST/raw.
    files = _raw_idx_files(root, train) or _raw_idx_files(root / "FashionMNIST" / "raw", train)
    if files is None:
        how = (
            f"  - with internet: pass download=True (CLI: --download) to fetch it into {root / 'FashionMNIST' / 'raw'}\n"
            f"  - offline: put {', '.join(s + '.gz' for s in _IDX_FILES[train])} into {root}\n"
        )
        if not download:
            raise _unavailable("Fashion-MNIST", root, how, "download=False", False)
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(str(root), train=train, download=True)
        except Exception as err:
            raise _unavailable("Fashion-MNIST", root, how, f"{type(err).__name__}: {err}", True) from None
        files = _raw_idx_files(root / "FashionMNIST" / "raw", train)
    images, labels = (read_idx(f) for f in files)
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"Fashion-MNIST files in {root} disagree: images {images.shape}, labels {labels.shape}")
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28)
    targets = torch.from_numpy(labels.astype(np.int64))
    checks.class_indices(str(files[1]), targets, len(targets), len(FASHION_CLASSES))
    return ImageDataset(x, targets, FASHION_CLASSES, "fashion-mnist")


def data_digest(ds: ImageDataset) -> str:
    """A short digest of the loaded images and labels: a resumed run must train on the same data."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    h.update(str((tuple(ds.images.shape), ds.name)).encode())
    h.update(ds.images.contiguous().numpy().data)
    h.update(ds.targets.contiguous().numpy().data)
    return h.hexdigest()

"""A small synthetic CIFAR-10-format folder (for tests, smoke runs and offline demos): cifar-10-batches-py/ pickled like the real archive.

``write_fake_cifar10(root, n_train, n_test, seed)`` writes data_batch_1..5, test_batch and batches.meta
with the real keys ("data" (n, 3072) uint8 in CHW order, "labels", "batch_label", "filenames";
"label_names" in the meta file), so ``simclr_core.data.load_dataset("cifar10", root)`` reads it.
(torchvision's CIFAR10 class itself rejects any file whose md5 differs from the real archive;
``simclr_core.data.datasets`` reads the pickles itself.)

The images have class-dependent structure a small encoder can learn: class c is a sinusoidal grating
at orientation c * 18 degrees with a class-specific colour tint, a random phase, a random position of
a bright blob, and pixel noise. Random crops keep the orientation and colour, so SimCLR learns them.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

__all__ = ["write_fake_cifar10", "fake_cifar_images", "CLASSES"]


def fake_cifar_images(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """(n, 3, size, size) uint8 images whose structure depends on ``labels`` (n,) in 0..9."""
    n = labels.shape[0]
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")  # (size, size)
    theta = labels * np.pi / 10  # (n,) class orientation
    freq = 2 * np.pi / (4 + 2 * (labels % 3))  # (n,) class stripe frequency
    phase = rng.uniform(0, 2 * np.pi, n)  # (n,) random
    proj = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy  # (n, size, size)
    grating = 0.5 + 0.5 * np.sin(freq[:, None, None] * proj + phase[:, None, None])  # (n, size, size) in [0, 1]
    tint = np.stack([(labels % 2), (labels // 2) % 2, (labels // 4) % 2 * 0.5 + (labels % 3 == 0) * 0.5], 1)  # (n, 3)
    tint = 0.35 + 0.65 * tint  # (n, 3)
    img = grating[:, None] * tint[:, :, None, None]  # (n, 3, size, size)
    cy, cx = rng.uniform(6, size - 6, (2, n))  # (n,) blob centre, random (not class-dependent)
    blob = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / 18.0)  # (n, size, size)
    img = 0.8 * img + 0.2 * blob[:, None] + rng.normal(0, 0.06, img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_fake_cifar10(root, n_train: int = 500, n_test: int = 100, seed: int = 0) -> Path:
    """Write ``root/cifar-10-batches-py`` with n_train images over 5 batches and n_test in test_batch.

    Labels are balanced (i % 10, then shuffled). Returns ``root`` as a Path (pass it as --data-root).
    """
    if n_train < 5 or n_test < 1:
        raise ValueError(f"need n_train >= 5 (5 batches) and n_test >= 1, got {n_train}, {n_test}")
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(n: int, label: str) -> dict:
        labels = rng.permutation(np.arange(n) % 10)  # (n,) balanced
        x = fake_cifar_images(labels, rng)  # (n, 3, 32, 32)
        return {
            "batch_label": label,
            "labels": [int(v) for v in labels],
            "data": x.reshape(n, 3 * 32 * 32),  # (n, 3072): R plane, G plane, B plane, like the real files
            "filenames": [f"fake_{label.replace(' ', '_')}_{i}.png" for i in range(n)],
        }

    sizes = [n_train // 5 + (1 if i < n_train % 5 else 0) for i in range(5)]
    for i, n in enumerate(sizes, 1):
        _dump(folder / f"data_batch_{i}", batch(n, f"training batch {i} of 5"))
    _dump(folder / "test_batch", batch(n_test, "testing batch 1 of 1"))
    _dump(folder / "batches.meta", {"num_cases_per_batch": sizes[0], "label_names": list(CLASSES), "num_vis": 3072})
    return root

"""Datasets: CIFAR-10 through torchvision's own class on a test-written CIFAR-format folder, Fashion-MNIST
idx files, and the offline-missing error message."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from simclr_core.data.augment import AugmentConfig, SimCLRAugment
from simclr_core.data.datasets import DatasetUnavailable, load_dataset, read_idx
from simclr_core.data.synthetic import write_fake_cifar10


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_cifar10_through_torchvision_class(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    root = write_fake_cifar10(tmp_path, n_train=50, n_test=20, seed=1)
    folder = root / "cifar-10-batches-py"
    # torchvision verifies the real archive's md5 sums; point it at the test files' sums so that its own
    # class (not a fallback) reads them
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", _md5(folder / f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": _md5(folder / "batches.meta")})
    calls = []
    real_init = CIFAR10.__init__
    monkeypatch.setattr(CIFAR10, "__init__", lambda self, *a, **k: (calls.append(a), real_init(self, *a, **k))[1])

    train = load_dataset("cifar10", root, train=True)
    test = load_dataset("cifar10", root, train=False)
    assert calls, "torchvision's CIFAR10 class was not used"
    assert train.images.shape == (50, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (20, 3, 32, 32) and len(test) == 20
    assert train.classes[0] == "airplane" and set(train.targets.tolist()) == set(range(10))
    # pixel order: the pickles hold (n, 3072) as R, G, B planes; torchvision gives HWC, we give CHW
    import pickle

    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    first = np.asarray(raw["data"][0], dtype=np.uint8).reshape(3, 32, 32)
    assert np.array_equal(train.images[0].numpy(), first) and train.targets[0] == raw["labels"][0]
    # items are accepted by the augmentation
    img, label = train[0]
    view = SimCLRAugment(AugmentConfig())(img)
    assert view.shape == (3, 32, 32) and isinstance(label, int)


def test_cifar10_missing_offline_error_names_folder_and_options(tmp_path):
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("cifar10", tmp_path / "nowhere", download=False)
    msg = str(info.value)
    assert str(tmp_path / "nowhere") in msg and "download" in msg and "fashion-mnist" in msg


def test_cifar10_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    import urllib.request

    def no_network(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", no_network)
    with pytest.raises(DatasetUnavailable, match="the download failed") as info:
        load_dataset("cifar10", tmp_path, download=True)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    msg = str(info.value)
    assert "URLError" in msg and str(tmp_path) in msg
    assert "download=True" not in msg and "--download" not in msg  # it was tried: not suggested again
    assert "--data-root /usr/share/datasets/fashion-mnist --out runs/fashion-mnist" in msg  # pastes as it is
    with pytest.raises(DatasetUnavailable, match="was not downloaded") as info:
        load_dataset("cifar10", tmp_path)
    assert "--download" in str(info.value)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_from_a_folder_of_idx_gz(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 28, 28))
    labels = rng.integers(0, 10, 7)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    ds = load_dataset("fashion-mnist", tmp_path, train=False)
    assert ds.images.shape == (7, 1, 28, 28)
    assert np.array_equal(ds.images[:, 0].numpy(), imgs) and np.array_equal(ds.targets.numpy(), labels)
    with pytest.raises(DatasetUnavailable, match="train-images-idx3-ubyte.gz"):
        load_dataset("fashion-mnist", tmp_path, train=True)


def test_truncated_idx_file_is_an_error(tmp_path):
    _write_idx(tmp_path / "x.gz", np.zeros((4, 2, 2)))
    data = gzip.decompress((tmp_path / "x.gz").read_bytes())[:-3]
    (tmp_path / "y.gz").write_bytes(gzip.compress(data))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "y.gz")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian_package():
    ds = load_dataset("fashion-mnist", train=False)
    assert ds.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.targets).tolist() == [1000] * 10  # the test split is balanced


def test_unknown_dataset_and_bad_subset(tmp_path):
    with pytest.raises(ValueError, match="mnist.*valid"):
        load_dataset("mnist")
    ds = load_dataset("cifar10", write_fake_cifar10(tmp_path, 10, 5))
    assert len(ds.subset(4)) == 4 and torch.equal(ds.subset(4).images, ds.subset(4).images)
    with pytest.raises(ValueError, match="1..10"):
        ds.subset(11)


@pytest.mark.parametrize("bad", [10, -1])
def test_a_label_that_is_no_class_is_refused_with_its_value(bad):
    from simclr_core.data.datasets import ImageDataset

    images = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    ImageDataset(images, torch.tensor([0, 9, 3]), tuple("abcdefghij"))  # 10 classes: 0..9 are fine
    with pytest.raises(ValueError, match=rf"targets: label {bad} at position 1 is not a class index in 0..9 \(num_classes=10\)"):
        ImageDataset(images, torch.tensor([0, bad, 3]), tuple("abcdefghij"))

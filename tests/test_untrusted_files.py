"""Files from others are data, never code: CIFAR batches that would run a command, hold float labels or out-of-range
pixels; run folders and exported models whose files are symlinks, whose configs ask for gigabytes, whose JSON is
nested 200,000 deep, or whose digest was forged. Each is refused with a message naming the file and the problem,
before anything is run, written through a link, or allocated."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from simclr_core.data.cifar_pickle import UnsafePickle, load_cifar_pickle
from simclr_core.data.datasets import load_dataset
from simclr_core.data.synthetic import write_fake_cifar10

BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@pytest.fixture()
def fake(tmp_path):
    return write_fake_cifar10(tmp_path / "data", n_train=20, n_test=10, seed=0)


def _folder(root) -> Path:
    return Path(root) / "cifar-10-batches-py"


class _RunsACommand:
    """Unpickling this calls os.system, which creates the marker file: what an attacker's data_batch_1 does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _dump(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def test_a_malicious_batch_is_refused_and_runs_nothing(fake, tmp_path):
    marker = tmp_path / "pwned"
    # the payload works: plain pickle.load runs it (the unsafe way these files used to be read)
    pickle.loads(pickle.dumps(_RunsACommand(marker)))
    assert marker.exists()
    marker.unlink()

    entry = {"data": np.zeros((4, 3072), np.uint8), "labels": [0, 1, 2, 3], "evil": _RunsACommand(marker)}
    _dump(_folder(fake) / "data_batch_1", entry)
    with pytest.raises(UnsafePickle, match=r"data_batch_1 was refused: it names posix\.system"):
        load_dataset("cifar10", fake, train=True)
    assert not marker.exists()


@pytest.mark.parametrize("payload,needle", [
    ((np.ndarray, ((10**6, 10**6),)), r"a call of numpy\.ndarray"),  # would allocate 8 TB
    ((getattr, ("text", "upper")), r"names (__builtin__|builtins)\.getattr"),
    ((np.dtype, ("O8",)), "not a plain numeric type"),
])
def test_other_names_and_calls_are_refused(fake, payload, needle):
    class Evil:
        def __reduce__(self):
            return payload

    path = _folder(fake) / "test_batch"
    _dump(path, {"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": Evil()})
    with pytest.raises(UnsafePickle, match=needle):
        load_cifar_pickle(path)


def test_genuine_cifar_format_files_still_load(fake):
    train, test = load_dataset("cifar10", fake, train=True), load_dataset("cifar10", fake, train=False)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8 and len(test) == 10
    # the same values plain pickle reads (an independent reference)
    with open(_folder(fake) / "data_batch_1", "rb") as f:
        ref = pickle.load(f, encoding="latin1")
    n = len(ref["labels"])
    assert torch.equal(train.images[:n], torch.from_numpy(ref["data"].reshape(-1, 3, 32, 32)))
    assert train.targets[:n].tolist() == ref["labels"]
    assert train.classes[0] == "airplane"


def test_a_python2_style_batch_loads(fake):
    """The real archive was written by Python 2: byte strings (SHORT_BINSTRING) and numpy.core paths."""
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    raw = data.tobytes().decode("latin1")
    # hand-assembled protocol-2 stream as Python 2 numpy writes it
    s = (b"\x80\x02}q\x00(U\x04dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85"
         b"U\x01b\x87Rq\x04(K\x01K\x02M\x00\x0c\x86cnumpy\ndtype\nq\x05U\x02u1K\x00K\x01\x87Rq\x06(K\x03U\x01|NNNJ"
         b"\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T" + len(raw).to_bytes(4, "little") + raw.encode("latin1")
         + b"tbU\x06labelsq\x07]q\x08(K\x03K\x04eu.")
    path = _folder(fake) / "test_batch"
    path.write_bytes(s)
    assert pickle.loads(s, encoding="latin1")["labels"] == [3, 4]  # the stream is what plain pickle reads too
    entry = load_cifar_pickle(path)
    assert np.array_equal(entry["data"], data) and entry["labels"] == [3, 4]
    test = load_dataset("cifar10", fake, train=False)
    assert test.targets.tolist() == [3, 4]


@pytest.mark.parametrize("edit,needle", [
    (lambda e: e.update(labels=[1.7] + e["labels"][1:]), "label 0 is 1.7; labels must be integer class indices 0..9"),
    (lambda e: e.update(labels=[10] + e["labels"][1:]), "label 10 of image 0 is not a class index in 0..9"),
    (lambda e: e.update(labels=[-1] + e["labels"][1:]), "label -1 of image 0"),
    (lambda e: e.update(labels=[True] + e["labels"][1:]), "label 0 is True"),
    (lambda e: e.update(data=(np.arange(e["data"].size) % 256 + 300).astype(np.int64).reshape(e["data"].shape)),
     r"pixel values must be in 0\.\.255, found 300\.\.555 \(dtype int64\)"),
    (lambda e: e.update(data=e["data"].astype(np.float32) / 255), "pixels must be integers in 0..255 .uint8., got dtype float32"),
    (lambda e: e.update(data=e["data"][:, :100]), r"must be \(n, 3072\)"),
    (lambda e: e.update(labels=e["labels"][:-1]), "images but"),
])
def test_bad_labels_and_pixels_are_named(fake, edit, needle):
    path = _folder(fake) / "test_batch"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    edit(entry)
    _dump(path, entry)
    with pytest.raises(ValueError, match=needle):
        load_dataset("cifar10", fake, train=False)


def test_integer_pixels_in_range_of_another_dtype_are_kept(fake):
    path = _folder(fake) / "test_batch"
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    ref = entry["data"].copy()
    _dump(path, {**entry, "data": ref.astype(np.int64)})
    assert torch.equal(load_dataset("cifar10", fake, train=False).images, torch.from_numpy(ref.reshape(-1, 3, 32, 32)))


def test_an_empty_data_root_is_an_error_not_the_current_folder(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="empty"):
        load_dataset("cifar10", "", train=False)
    monkeypatch.setenv("SIMCLR_DATA", "")
    with pytest.raises(ValueError, match="SIMCLR_DATA is set but empty"):
        load_dataset("cifar10", None, train=False)

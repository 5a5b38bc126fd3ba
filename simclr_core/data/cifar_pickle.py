"""Reading CIFAR-10 batch files (Python pickles) as data, never as code.

A pickle is a small program: unpickling a file may call any function it names (``os.system`` included). The
CIFAR-10 batches only ever name numpy's array reconstruction, numpy's dtype, and (in pickles written by Python 3
with protocol 2) ``_codecs.encode`` for raw bytes. ``load_cifar_pickle`` admits exactly those, each through a
wrapper that accepts only the arguments the format uses (an empty ``ndarray`` to be filled by its state, a plain
numeric dtype, latin-1 encoding); every other name is refused with ``UnsafePickle`` naming it. Dicts, lists,
strings, bytes, numbers and tuples need no names and load as usual.

``batch_arrays`` then checks what a batch holds: pixels of an integer dtype in 0..255 (not wrapped modulo 256),
integer labels in the class range (1.7 is not class 1), and matching lengths.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from .. import checks

__all__ = ["UnsafePickle", "load_cifar_pickle", "batch_arrays", "class_names", "MAX_BATCH_BYTES"]

MAX_BATCH_BYTES = 512 * 1024 * 1024  # a real batch is 31 MB; refuse to read a multi-gigabyte file into memory
_NUMERIC = {"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"}  # what a batch may hold


class UnsafePickle(ValueError):
    """A CIFAR-10 batch file names something the format never uses (a function, a class): refused."""


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` inside the stream: only ``_reconstruct`` accepts it, calling it builds nothing."""

    def __call__(self, *args, **kwargs):
        raise UnsafePickle(f"a call of numpy.ndarray{args!r:.80}, which a CIFAR-10 batch never makes")


_NDARRAY = _NdarrayMarker()


def _reconstruct(subtype, shape, dtype_code):
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty array that the BUILD step fills from its state."""
    if subtype is not _NDARRAY or tuple(shape) != (0,) or dtype_code not in (b"b", "b"):
        raise UnsafePickle(f"array reconstruction with unexpected arguments ({type(subtype).__name__}, {shape!r}, "
                           f"{dtype_code!r})")
    return np.empty((0,), dtype=np.int8)


def _dtype(spec, align=False, copy=True):
    if not isinstance(spec, str) or spec not in _NUMERIC:
        raise UnsafePickle(f"array dtype {spec!r} is not a plain numeric type (valid: {sorted(_NUMERIC)})")
    return np.dtype(spec)


def _scalar(dtype, data):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, str)):
        raise UnsafePickle(f"numpy scalar with unexpected arguments ({dtype!r})")
    raw = data.encode("latin1") if isinstance(data, str) else data
    if len(raw) != dtype.itemsize:
        raise UnsafePickle(f"numpy scalar of {dtype} with {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype)[0]


def _encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle(f"_codecs.encode with encoding {encoding!r} (only latin1 holds raw bytes)")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("_codecs", "encode"): _encode,
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(f"it names {module}.{name}, which a CIFAR-10 batch never holds") from None

    def persistent_load(self, pid):
        raise UnsafePickle("it holds a persistent reference, which a CIFAR-10 batch never holds")


def load_cifar_pickle(path: Path) -> dict:
    """The dict stored in the CIFAR-10 batch (or meta) file ``path``, unpickled with only the names the format uses.

    Raises ``UnsafePickle`` for a file that names anything else (nothing it names is called), ``ValueError`` for a
    file that is not a readable pickle of a dict."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BATCH_BYTES:
        raise ValueError(f"{path} is {size / 2**20:.0f} MiB; a CIFAR-10 batch is about 30 MiB: not read")
    data = path.read_bytes()
    try:
        obj = _CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickle as err:
        raise UnsafePickle(f"{path} was refused: {err}. A CIFAR-10 batch holds only arrays, lists and strings; this "
                           f"file may be malicious. Get CIFAR-10 from https://www.cs.toronto.edu/~kriz/cifar.html "
                           f"(or --download)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError, MemoryError, OverflowError, UnicodeError) as err:
        raise ValueError(f"{path} is not a readable CIFAR-10 batch file ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch file: it holds a {type(obj).__name__}, not a dict")
    return obj


def _pixels(data, path: Path) -> np.ndarray:
    if not isinstance(data, np.ndarray) or data.dtype.fields is not None or data.dtype.hasobject:
        raise ValueError(f"{path}: 'data' must be a numpy array of uint8 pixels, got {type(data).__name__}")
    if data.dtype.kind not in "iu":
        raise ValueError(f"{path}: pixels must be integers in 0..255 (uint8), got dtype {data.dtype}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' must be (n, 3072) (32x32 RGB rows), got shape {data.shape}")
    if data.dtype != np.uint8 and data.size:
        lo, hi = int(data.min()), int(data.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{path}: pixel values must be in 0..255, found {lo}..{hi} (dtype {data.dtype})")
    return data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32)


def _labels(raw, n_classes: int, path: Path) -> np.ndarray:
    if not isinstance(raw, (list, np.ndarray)):
        raise ValueError(f"{path}: 'labels' must be a list of class indices, got {type(raw).__name__}")
    for i, v in enumerate(raw):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{path}: label {i} is {v!r}; labels must be integer class indices 0..{n_classes - 1}")
    labels = np.asarray(raw, dtype=np.int64).reshape(-1)
    return checks.class_indices(str(path), labels, len(labels), n_classes)


def batch_arrays(entry: dict, n_classes: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8, labels (n,) int64) of one unpickled batch, every value checked."""
    if "data" not in entry or not ("labels" in entry or "fine_labels" in entry):
        raise ValueError(f"{path}: a CIFAR-10 batch needs the keys 'data' and 'labels', found {sorted(map(str, entry))[:10]}")
    images = _pixels(entry["data"], path)
    labels = _labels(entry["labels"] if "labels" in entry else entry["fine_labels"], n_classes, path)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def class_names(meta: dict, path: Path, expected: int = 10) -> tuple[str, ...]:
    """The ``label_names`` of a batches.meta dict: ``expected`` strings."""
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != expected or not all(isinstance(s, str) and len(s) < 100 for s in names):
        raise ValueError(f"{path}: 'label_names' must be a list of {expected} class names, got {str(names)[:200]}")
    return tuple(names)

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



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the probes' small L-BFGS steps are ~40x slower with two threads on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    (lambda e: e.update(labels=[10] + e["labels"][1:]), "label 10 at position 0 is not a class index in 0..9"),
    (lambda e: e.update(labels=[-1] + e["labels"][1:]), "label -1 at position 0"),
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


# ---------------------------------------------------------------- run folders and exported models from others

from simclr_core.cli import main  # noqa: E402
from simclr_core.train import runfolder  # noqa: E402
from simclr_core.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from simclr_core.train.pretrained import export_pretrained, load_pretrained  # noqa: E402
from simclr_core.train.probe import probe_run  # noqa: E402
from simclr_core.train.runfolder import LOCK, RunFolderError  # noqa: E402
from simclr_core.train.runs import load_run, pretrain  # noqa: E402
from tests.trainer_helpers import tiny  # noqa: E402

NESTED = "[" * 200_000 + "]" * 200_000  # json.loads raises RecursionError on it


@pytest.fixture(scope="module")
def finished(cifar_root, tmp_path_factory):
    """A finished 1-epoch run of the tiny CNN (4 steps), and its export; tests work on copies."""
    out = tmp_path_factory.mktemp("received") / "run"
    pretrain(*tiny(cifar_root, out, epochs=1))
    export_pretrained(out, out.parent / "model")
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _forge_checkpoint(run: Path, **recipe_changes) -> None:
    """Rewrite config.json and checkpoint.pt consistently (the checkpoint's SHA-256 is recomputed, as anyone can)."""
    cfg = json.loads((run / "config.json").read_text())
    cfg["recipe"].update(recipe_changes)
    (run / "config.json").write_text(json.dumps(cfg))
    state = load_checkpoint(run / "checkpoint.pt")
    state["config"].update(recipe_changes)
    save_checkpoint(run / "checkpoint.pt", {k: v for k, v in state.items() if k != "format"})


def test_a_received_runs_data_root_is_not_followed(finished, cifar_root, tmp_path, monkeypatch, capsys):
    run = _copy(finished, tmp_path / "run")
    evil = write_fake_cifar10(tmp_path / "evil", n_train=20, n_test=10)
    marker = tmp_path / "pwned"
    _dump(_folder(evil) / "data_batch_1", {"x": _RunsACommand(marker)})
    _dump(_folder(evil) / "test_batch", {"x": _RunsACommand(marker)})
    cfg = json.loads((run / "config.json").read_text())
    cfg["options"]["data_root"] = str(evil)
    (run / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setenv("SIMCLR_DATA", str(cifar_root))  # the user's own default data
    result = probe_run(run, device="cpu", k=5, progress=False)
    assert result["n_train"] == 200 and not marker.exists()
    err = capsys.readouterr().err
    assert f"the run was trained with --data-root {str(evil)!r}" in err
    assert f"the default dataset folder {str(cifar_root)!r}" in err
    # traversal: the recorded path is only named, never read
    cfg["options"]["data_root"] = "../../etc"
    (run / "config.json").write_text(json.dumps(cfg))
    probe_run(run, device="cpu", k=5, progress=False)
    assert "'../../etc'" in capsys.readouterr().err
    for odd in ("~nobody_here/x", "a\x00b", 5):  # names no folder here, or is not a path: named or ignored, no crash
        cfg["options"]["data_root"] = odd
        (run / "config.json").write_text(json.dumps(cfg))
        probe_run(run, device="cpu", k=5, progress=False)
    # the recorded folder is also the default one: no note
    cfg["options"]["data_root"] = str(cifar_root)
    (run / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    probe_run(run, device="cpu", k=5, progress=False)
    assert "note" not in capsys.readouterr().err
    # the folder the run recorded, given by the user: no note
    cfg["options"]["data_root"] = str(cifar_root)
    (run / "config.json").write_text(json.dumps(cfg))
    probe_run(run, device="cpu", k=5, progress=False, data_root=str(cifar_root))
    assert "note" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "checkpoint.pt", LOCK])
def test_a_symlinked_file_of_a_received_run_is_never_written_through(finished, cifar_root, tmp_path, name):
    run = _copy(finished, tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file")
    if name == "checkpoint.pt":  # keep a checkpoint to resume from, but behind a link
        (run / name).rename(tmp_path / "real.pt")
        (run / name).symlink_to(tmp_path / "real.pt")
        victim = tmp_path / "real.pt"
    else:
        (run / name).unlink()
        (run / name).symlink_to(victim)
    before = victim.read_bytes()
    with pytest.raises(RunFolderError, match=f"{name} is a symbolic link"):
        pretrain(*tiny(cifar_root, run, epochs=2, resume=True))
    assert victim.read_bytes() == before


def test_a_symlinked_probe_json_is_refused_before_the_probe(finished, cifar_root, tmp_path):
    run = _copy(finished, tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file")
    (run / "probe.json").symlink_to(victim)
    with pytest.raises(RunFolderError, match="probe.json is a symbolic link"):
        probe_run(run, device="cpu", k=5, progress=False, data_root=str(cifar_root))
    assert victim.read_text() == "the user's file"


def test_the_atomic_writer_refuses_links_and_special_files(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(RunFolderError, match="link is a symbolic link"):
        runfolder.write_text_atomic(tmp_path / "link", "x")
    (tmp_path / "dir").mkdir()
    with pytest.raises(RunFolderError, match="not a regular file"):
        runfolder.write_text_atomic(tmp_path / "dir", "x")
    assert victim.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["dir", "link", "victim"]
    runfolder.write_text_atomic(tmp_path / "new.json", "{}")
    assert (tmp_path / "new.json").read_text() == "{}"


@pytest.mark.parametrize("changes,needle", [
    ({"proj_dim": 10**9}, "proj_dim must be at most 16,384, got 1000000000"),
    ({"widths": [100000, 100000]}, "widths must be at most 16 blocks of at most 8192 channels"),
    ({"widths": [8192] * 4}, "parameters, more than the 100,000,000 allowed"),
    ({"batch_size": 10**12}, "batch_size must be at most"),
])
def test_memory_bombs_in_a_forged_run_config_are_refused_before_allocation(finished, tmp_path, changes, needle):
    run = _copy(finished, tmp_path / "run")
    _forge_checkpoint(run, **changes)  # consistent: the checksum alone cannot tell
    with pytest.raises(ValueError, match=needle):
        load_run(run)
    assert main(["probe", str(run), "--device", "cpu"]) == 2


def test_malformed_json_is_a_clear_error(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path / "run")
    for text, needle in [(NESTED, "nested too deeply"), ("{", "Expecting property name"), ("[1, 2]", "not an object"),
                         (b"\xff\xfe".decode("latin1"), "not a valid run config")]:
        (run / "config.json").write_text(text, encoding="latin1" if text.startswith("\xff") else "utf-8")
        with pytest.raises(RunFolderError, match=needle):
            load_run(run)
        assert main(["probe", str(run)]) == 2
        err = capsys.readouterr().err
        assert "config.json" in err and "Traceback" not in err
    model = _copy(finished.parent / "model", tmp_path / "model")
    (model / "probe.json").write_text(NESTED)
    _resum(model)
    with pytest.raises(RunFolderError, match="probe.json is not a valid probe result: its JSON is nested too deeply"):
        load_pretrained(model)


def _resum(model: Path) -> None:
    """Recompute SHA256SUMS, as a forger would."""
    import hashlib

    names = [n for n in ("config.json", "metrics.jsonl", "model.pt", "probe.json") if (model / n).exists()]
    (model / "SHA256SUMS").write_text("".join(f"{hashlib.sha256((model / n).read_bytes()).hexdigest()}  {n}\n"
                                              for n in names))


def test_an_exported_model_checks_its_config_digest_and_sizes(finished, tmp_path):
    model = _copy(finished.parent / "model", tmp_path / "model")
    assert load_pretrained(model).recipe.widths == (8, 16)
    cfg = json.loads((model / "config.json").read_text())
    cfg["recipe"]["augment"]["mean"] = [0.9, 0.9, 0.9]  # silently other features, weights untouched
    cfg["recipe"]["augment"]["normalize"] = True
    cfg["recipe"]["augment"]["std"] = [0.1, 0.1, 0.1]
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="config.json does not match the SHA-256 recorded in .*SHA256SUMS"):
        load_pretrained(model)
    cfg["recipe"]["proj_dim"] = 10**9  # forged digests too: the sizes still stop it
    (model / "config.json").write_text(json.dumps(cfg))
    _resum(model)
    with pytest.raises(ValueError, match="proj_dim must be at most"):
        load_pretrained(model)
    (model / "SHA256SUMS").unlink()
    with pytest.raises(ValueError, match="re-export it with `simclr export RUN_DIR"):
        load_pretrained(model)
    (model / "SHA256SUMS").write_text("0" * 64 + "  ../../etc/passwd\n")
    with pytest.raises(ValueError, match="is not '<sha256>  <file>'"):
        load_pretrained(model)

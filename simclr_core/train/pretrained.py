"""A pretrained model small enough to ship: ``export_pretrained`` (run folder -> model folder) and ``load_pretrained``.

A model folder holds

- ``model.pt``: the state dict of f and g (``SimCLR``) in float16, loaded with ``weights_only=True``;
- ``config.json``: the recipe (the exact network and training settings), how long it trained, the command that made
  it, and the SHA-256 of model.pt;
- ``probe.json``: the run's linear-evaluation table (``simclr probe``), when the run was probed;
- ``metrics.jsonl``: the run's per-epoch records;
- ``SHA256SUMS``: the SHA-256 of every other file, config.json included, in ``sha256sum`` format. A folder from
  someone else is checked against it and its recipe's sizes are checked (``Recipe.validate``) before anything is
  built; an export without it is refused with the advice to re-export.

float16 halves the file against float32 and changes no accuracy figure measurably (features agree to ~1e-3); the
weights are cast back to float32 on loading. The workbook ships one such folder, ``notebooks/pretrained/fashion_mnist_cpu``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..nn.models import SimCLR
from .config import Recipe, recipe_from_dict
from .probe import epochs_trained
from .runfolder import (CONFIG, METRICS, PROBE, claim_folder, read_json_object, refuse_links, write_bytes_atomic,
                        write_text_atomic)
from .saved_run import load_run, read_run_config
from .step import build_model

__all__ = ["export_pretrained", "load_pretrained", "Pretrained", "MODEL_FILE", "DIGESTS", "MAX_BYTES"]

MODEL_FILE = "model.pt"
DIGESTS = "SHA256SUMS"  # `sha256sum -c SHA256SUMS` checks the folder too
EXPORT_FILES = (MODEL_FILE, CONFIG, PROBE, METRICS, DIGESTS)
MAX_BYTES = 5 * 1024 * 1024  # what a repository should carry: 5 MiB


@dataclass
class Pretrained:
    """What ``load_pretrained`` returns: the model (f and g, float32, eval mode), its recipe and its records."""

    model: SimCLR
    recipe: Recipe
    info: dict        # config.json: steps, epochs, command, ...
    probe: dict | None  # probe.json, when present

    @property
    def encoder(self) -> torch.nn.Module:
        return self.model.encoder

    def random_init(self) -> "Pretrained":
        """The same network at the weights this model started from (``build_model`` of its recipe and seed)."""
        return Pretrained(build_model(self.recipe).eval(), self.recipe, {**self.info, "steps_trained": 0}, None)

    def features(self, images_uint8: torch.Tensor, space: str = "h", batch_size: int = 1024) -> torch.Tensor:
        """h = f(x) (or z = g(f(x)) with space="z") of uint8 images (n, C, H, W), standardised as in training:
        (n, d) float32 on the CPU."""
        from ..eval.features import extract_features

        if space not in ("h", "z"):
            raise ValueError(f"space must be 'h' (the encoder's output) or 'z' (after the head), got {space!r}")
        net = self.model.encoder if space == "h" else torch.nn.Sequential(self.model.encoder, self.model.head)
        a = self.recipe.augment
        mean, std = (a.mean, a.std) if a.normalize else (None, None)
        return extract_features(net, images_uint8, batch_size, None, mean, std)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_export(folder: Path) -> bool:
    """A folder ``export_pretrained`` wrote (its digest list and config.json are there)."""
    return all((folder / n).is_file() and not (folder / n).is_symlink() for n in (DIGESTS, CONFIG))


def _claim(out: Path, run_dir: Path) -> None:
    if out.exists() and run_dir.exists() and out.resolve() == run_dir.resolve():
        raise ValueError(f"--out {out} is the run folder itself; give a new folder for the exported model")
    claim_folder(out, force=False, own=EXPORT_FILES, is_ours=_is_export)
    refuse_links(out, EXPORT_FILES)


def export_pretrained(run_dir, out, command: str = "", max_bytes: int = MAX_BYTES) -> Path:
    """Write the model folder ``out`` from the run folder ``run_dir`` (finished or interrupted); returns ``out``.

    ``out`` must be new, empty or an earlier export. Refuses (ValueError) when the float16 weights exceed
    ``max_bytes``: choose a smaller network then."""
    run_dir, out = Path(run_dir), Path(out)
    recipe, model, state = load_run(run_dir)
    _claim(out, run_dir)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(weights, buf)
    if buf.tell() > max_bytes:
        raise ValueError(f"the float16 weights of {run_dir} take {buf.tell() / 2**20:.1f} MiB, more than the "
                         f"{max_bytes / 2**20:.1f} MiB allowed; export a smaller network (e.g. --widths)")
    files = {MODEL_FILE: buf.getvalue()}
    history = state.get("history", [])
    info = {"recipe": recipe.to_dict(), "epochs_trained": epochs_trained(state),
            "steps_trained": sum(int(h.get("steps", 0)) for h in history),
            "train_seconds": round(sum(float(h.get("train_seconds", 0.0)) for h in history), 1),
            "final_loss": history[-1].get("loss") if history else None,
            "data": read_run_config(run_dir).get("data"), "dtype": "float16", "bytes": len(files[MODEL_FILE]),
            "sha256": hashlib.sha256(files[MODEL_FILE]).hexdigest(), "command": command}
    files[CONFIG] = (json.dumps(info, indent=1) + "\n").encode()
    if (run_dir / PROBE).is_file():
        probe = read_json_object(run_dir / PROBE, "probe result")
        probe.pop("run", None)  # a path on the machine that trained it
        files[PROBE] = (json.dumps(probe, indent=1) + "\n").encode()
    if (run_dir / METRICS).is_file():
        files[METRICS] = (run_dir / METRICS).read_bytes()
    for name, data in files.items():
        write_bytes_atomic(out / name, data)
    write_text_atomic(out / DIGESTS, "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(files.items())))
    return out


def _read_digests(folder: Path) -> dict[str, str]:
    """name -> SHA-256 of the folder's SHA256SUMS (``sha256sum`` format); config.json and model.pt must be listed."""
    path = folder / DIGESTS
    if not path.is_file():
        raise ValueError(f"{folder} holds no {DIGESTS}: it was exported before model folders carried a digest of "
                         f"config.json, so its config cannot be checked; re-export it with `simclr export RUN_DIR "
                         f"--out {folder}`")
    digests = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[:20]:
        m = re.fullmatch(r"([0-9a-f]{64}) [ *]([A-Za-z0-9_.-]+)", line.strip())
        if m is None or m.group(2) not in EXPORT_FILES:
            raise ValueError(f"{path}: line {line[:100]!r} is not '<sha256>  <file>' for one of {EXPORT_FILES}")
        digests[m.group(2)] = m.group(1)
    missing = [n for n in (CONFIG, MODEL_FILE) if n not in digests]
    if missing:
        raise ValueError(f"{path} lists no digest for {', '.join(missing)}; re-export the model")
    return digests


def _check_digests(folder: Path) -> None:
    for name, digest in _read_digests(folder).items():
        p = folder / name
        if not p.is_file():
            raise FileNotFoundError(f"{folder} is not a complete pretrained-model folder: {name} is missing")
        if _sha256(p) != digest:
            raise ValueError(f"{p} does not match the SHA-256 recorded in {folder / DIGESTS}: the file is damaged, "
                             f"was edited or replaced after export (git lfs / a partial download?)")


def load_pretrained(folder, device="cpu") -> Pretrained:
    """The model of a folder written by ``export_pretrained`` (float32, eval mode, on ``device``).

    Every file is checked against SHA256SUMS and the recipe's sizes are checked before the network is built."""
    folder = Path(folder)
    cfg_path, weights_path = folder / CONFIG, folder / MODEL_FILE
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"{folder} is not a pretrained-model folder: {p.name} is missing "
                                    f"(make one with `simclr export RUN_DIR --out {folder}`)")
    _check_digests(folder)
    info = read_json_object(cfg_path, "pretrained-model config", 1024 * 1024)
    try:
        recipe = recipe_from_dict(info["recipe"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{cfg_path} is not a valid pretrained-model config: {err}") from None
    model = build_model(recipe)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (RuntimeError, AttributeError) as err:
        raise ValueError(f"{weights_path} does not fit the network of {cfg_path}: {str(err)[:300]}") from None
    probe_path = folder / PROBE
    probe = read_json_object(probe_path, "probe result") if probe_path.is_file() else None
    return Pretrained(model.to(device).eval(), recipe, info, probe)

"""A pretrained model small enough to ship: ``export_pretrained`` (run folder -> model folder) and ``load_pretrained``.

A model folder holds

- ``model.pt``: the state dict of f and g (``SimCLR``) in float16, loaded with ``weights_only=True``;
- ``config.json``: the recipe (the exact network and training settings), how long it trained, the command that made
  it, and the SHA-256 of model.pt;
- ``probe.json``: the run's linear-evaluation table (``simclr probe``), when the run was probed.

float16 halves the file against float32 and changes no accuracy figure measurably (features agree to ~1e-3); the
weights are cast back to float32 on loading. The workbook ships one such folder, ``notebooks/pretrained/fashion_mnist_cpu``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..nn.models import SimCLR
from .config import Recipe, recipe_from_dict
from .runs import CONFIG, METRICS, load_run
from .step import build_model

__all__ = ["export_pretrained", "load_pretrained", "Pretrained", "MODEL_FILE", "MAX_BYTES"]

MODEL_FILE = "model.pt"
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


def export_pretrained(run_dir, out, command: str = "", max_bytes: int = MAX_BYTES) -> Path:
    """Write the model folder ``out`` from the run folder ``run_dir`` (finished or interrupted); returns ``out``.

    Refuses (ValueError) when the float16 weights exceed ``max_bytes``: choose a smaller network then."""
    run_dir, out = Path(run_dir), Path(out)
    recipe, model, state = load_run(run_dir)
    if out.resolve() == run_dir.resolve():
        raise ValueError(f"--out {out} is the run folder itself; give a new folder for the exported model")
    weights = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MODEL_FILE + ".tmp")
    torch.save(weights, tmp)
    size = tmp.stat().st_size
    if size > max_bytes:
        tmp.unlink()
        raise ValueError(f"the float16 weights of {run_dir} take {size / 2**20:.1f} MiB, more than the "
                         f"{max_bytes / 2**20:.1f} MiB allowed; export a smaller network (e.g. --widths)")
    os.replace(tmp, out / MODEL_FILE)
    history = state.get("history", [])
    run_cfg = json.loads((run_dir / CONFIG).read_text())
    info = {"recipe": recipe.to_dict(), "epochs_trained": int(state["epoch"]) + 1,
            "steps_trained": sum(int(h.get("steps", 0)) for h in history),
            "train_seconds": round(sum(float(h.get("train_seconds", 0.0)) for h in history), 1),
            "final_loss": history[-1].get("loss") if history else None,
            "data": run_cfg.get("data"), "dtype": "float16", "bytes": size,
            "sha256": _sha256(out / MODEL_FILE), "command": command}
    (out / CONFIG).write_text(json.dumps(info, indent=1) + "\n")
    if (run_dir / "probe.json").is_file():
        probe = json.loads((run_dir / "probe.json").read_text())
        probe.pop("run", None)  # a path on the machine that trained it
        (out / "probe.json").write_text(json.dumps(probe, indent=1) + "\n")
    if (run_dir / METRICS).is_file():
        shutil.copyfile(run_dir / METRICS, out / METRICS)
    return out


def load_pretrained(folder, device="cpu") -> Pretrained:
    """The model of a folder written by ``export_pretrained`` (float32, eval mode, on ``device``)."""
    folder = Path(folder)
    cfg_path, weights_path = folder / CONFIG, folder / MODEL_FILE
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"{folder} is not a pretrained-model folder: {p.name} is missing "
                                    f"(make one with `simclr export RUN_DIR --out {folder}`)")
    try:
        info = json.loads(cfg_path.read_text())
        recipe = recipe_from_dict(info["recipe"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{cfg_path} is not a valid pretrained-model config: {err}") from None
    if info.get("sha256") and _sha256(weights_path) != info["sha256"]:
        raise ValueError(f"{weights_path} does not match the SHA-256 recorded in {cfg_path}: the file is damaged "
                         f"or was replaced (git lfs / a partial download?)")
    model = build_model(recipe)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as err:
        raise ValueError(f"{weights_path} does not fit the network of {cfg_path}: {str(err)[:300]}") from None
    probe_path = folder / "probe.json"
    probe = json.loads(probe_path.read_text()) if probe_path.is_file() else None
    return Pretrained(model.to(device).eval(), recipe, info, probe)

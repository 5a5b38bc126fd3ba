"""A run folder read back: its config.json (``read_run_config``), and its recipe and trained model (``load_run``).

``train.runs`` writes run folders; ``train.probe`` and ``train.pretrained`` read them through here. The recipe is
checked, sizes included, before a network is built, and the checkpoint's fingerprint must match the recipe.
"""

from __future__ import annotations

from pathlib import Path

from ..nn.models import SimCLR
from .checkpoint import CheckpointError, check_fingerprint, load_checkpoint
from .config import Recipe, recipe_from_dict
from .runfolder import CHECKPOINT, CONFIG, read_json_object
from .step import build_model

__all__ = ["read_run_config", "load_run"]


def read_run_config(run_dir) -> dict:
    """A run folder's config.json as a dict (``RunFolderError`` naming the file when it is malformed)."""
    cfg_path = Path(run_dir) / CONFIG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {cfg_path} is missing (run `simclr pretrain --out "
                                f"{run_dir}` first)")
    return read_json_object(cfg_path, "run config", 1024 * 1024)


def load_run(run_dir, device="cpu") -> tuple[Recipe, SimCLR, dict]:
    """(recipe, model with the last checkpoint's weights, checkpoint state) of a finished or interrupted run.

    The recipe is checked (sizes included) before the network is built, so a forged config.json cannot make it
    allocate more than a sane network."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG
    cfg = read_run_config(run_dir)
    try:
        recipe = recipe_from_dict(cfg["recipe"])
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{cfg_path} is not a valid run config: {err}") from None
    state = load_checkpoint(run_dir / CHECKPOINT)
    # config.json holds no data digest: the recipe must match, the data fields are taken as stored
    check_fingerprint(run_dir / CHECKPOINT, state, {**state["config"], **recipe.to_dict()})
    model = build_model(recipe)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {run_dir / CHECKPOINT} does not fit the model of {cfg_path}: {str(err)[:500]}") from None
    return recipe, model.to(device), state

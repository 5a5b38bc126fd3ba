"""Small, real experiments behind the application notebooks 06-09 (exercise Q4-Q6, lecture 13).

Every pretraining here runs through the library's one loop (``simclr_core.train.loop.Trainer``, via
``train.runs.pretrain``) with the Fashion-MNIST ``cpu`` preset's recipe; only the network size, batch, steps and the
objective change (``short_run.ShortRun``). Modules:

- ``short_run``: ``ShortRun`` + ``pretrain_short`` (one run; a queue and momentum encoder (MoCo), a memory bank
  (PIRL), re-encoded or not, or no negatives at all are objectives of the trainer) and the run cache;
- ``common``: ``finetune`` (the supervised baseline of Q6, the library's ``train.supervised`` loop), ``Preset``
  (experiment sizes), data, probes and the record of a result;
- ``fig5``, ``small_batch``, ``visualize``, ``vs_supervised``: the experiments of notebooks 06, 07, 08 and 09. Each
  returns a JSON-able dict that records the command, the config, the device, the probe protocol
  (``simclr_core.eval.probe``) and the measured numbers;
  ``python -m simclr_core.experiments NAME --preset P --out notebooks/results`` writes NAME.json, which the
  notebooks read instead of re-training. The figure-5 operators are ``simclr_core.data.fig5``;
- ``negatives``, ``temperature``, ``pretraining``, ``composition``: phenomena P3 (more negatives at a fixed N images
  per step: NT-Xent within groups of m pairs), P5 (pretraining at several tau; notebook 02), P1 at length (one long
  run per seed, probed along the way; notebook 08) and P2 at the main runs' length (crop, colour, crop then colour
  and the default policy; notebook 06), which the notebooks' own experiments do not vary; their JSONs also feed
  the phenomena table;
- ``phenomena`` / ``phenomena_table``: from those JSONs, the paired per-seed verdict on each phenomenon of the
  paper (``python -m simclr_core.experiments phenomena`` writes phenomena.json and the results README's table;
  it reads negatives.json and temperature.json when present, and keeps P3 and P5 ``not measured`` until then).

Presets (``common.PRESETS``, every size with its reason): ``smoke`` (CI, seconds), ``cpu`` (a 2-core laptop: 10,000
images, 3 seeds; the four notebook experiments in about 2.5 hours, the cached numbers in notebooks/results were made
with it; ``negatives`` and ``temperature`` add 9 and 12 runs of the main size, about 35 and 45 minutes, their
plain-SimCLR arm being the cached run; ``pretraining`` three runs of five times the steps, about 40 minutes;
``composition`` nine runs of the main size, its default-policy arm the cached run),
``gpu`` (one GPU: all 60,000 images, all seven Figure-5 operators, longer runs). Every number is a mean +- sd over the preset's seeds (``stats``), next to random init and raw pixels.
Finished pretraining runs are kept in a cache folder (``--cache``), so experiments that share a run train it once.
Data: Fashion-MNIST (offline, 28x28 grayscale) unless CIFAR-10 is on disk and ``--dataset cifar10`` is given.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..precision import parse_device, resolve_device
from ..train.runfolder import write_text_atomic
from .common import FIG5_OPS, PRESETS, Preset, compose, default_views, finetune, load_data, probe_of, simclr_views
from .short_run import ShortRun, build_model, pretrain_short
from .composition import run_composition
from .fig5 import run_fig5
from .negatives import run_negatives
from .phenomena_table import write_phenomena
from .pretraining import run_pretraining
from .small_batch import run_small_batch, variants as small_batch_variants
from .temperature import run_temperature
from .visualize import VISUALIZE_VARIANTS, run_visualize
from .vs_supervised import run_vs_supervised

__all__ = ["FIG5_OPS", "compose", "ShortRun", "pretrain_short", "finetune", "Preset", "PRESETS", "load_data",
           "run_composition", "run_fig5", "run_negatives", "run_pretraining", "run_temperature", "run_small_batch", "run_visualize",
           "run_vs_supervised", "EXPERIMENTS", "load_result", "save_result", "load_or_run", "build_model", "default_views", "probe_of",
           "small_batch_variants", "VISUALIZE_VARIANTS", "simclr_views", "write_phenomena"]


DEFAULT_CACHE = Path("~/.cache/simclr-workbook/experiment-runs")

EXPERIMENTS = {"fig5": run_fig5, "small_batch": run_small_batch, "visualize": run_visualize,
               "vs_supervised": run_vs_supervised, "negatives": run_negatives, "temperature": run_temperature,
               "pretraining": run_pretraining, "composition": run_composition}


def load_result(name: str, folder) -> dict | None:
    """The cached result <folder>/<name>.json (the workbook's is notebooks/results), or None when there is none."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {list(EXPERIMENTS)}")
    path = Path(folder) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def save_result(result: dict, folder) -> Path:
    """Write <folder>/<experiment>.json atomically (temporary file, then rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(folder / f"{result['experiment']}.json", json.dumps(result, indent=1) + "\n")


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m simclr_core.experiments", description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="+", choices=[*EXPERIMENTS, "all", "phenomena"],
                    help="experiments to run ('all': every one); 'phenomena': phenomena.json and the README's table "
                         "from the cached results in --out (reads JSON only, seconds; after the experiments named)")
    ap.add_argument("--preset", default=None, choices=list(PRESETS),
                    help="experiment sizes (default: gpu when the device is a CUDA GPU, else cpu)")
    ap.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "cifar10"])
    ap.add_argument("--device", default="auto", type=_device, help="auto, cpu, cuda, cuda:<i> or mps (default: auto)")
    ap.add_argument("--out", default="notebooks/results", help="folder for <name>.json (the workbook reads notebooks/results)")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE),
                    help="folder that keeps finished pretraining runs, so that experiments sharing a run train it "
                         "once and a re-run only trains what changed (default: %(default)s)")
    ap.add_argument("--no-cache", action="store_true", help="train every run afresh and keep nothing")
    args = ap.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        ap.error(str(err))
    preset = args.preset or ("gpu" if device.type == "cuda" else "cpu")
    names = list(EXPERIMENTS) if "all" in args.names else [n for n in args.names if n in EXPERIMENTS]
    cache = None if args.no_cache else Path(args.cache).expanduser()
    total = 0.0
    for name in names:
        res = EXPERIMENTS[name](PRESETS[preset], args.dataset, device, progress=True, cache=cache)
        total += res["wall_s"]
        print(f"{name}: {res['wall_s']} s -> {save_result(res, args.out)}", flush=True)
    if names:
        print(f"total: {total / 60:.1f} minutes", flush=True)
    if "phenomena" in args.names or "all" in args.names:
        try:
            print(f"phenomena -> {write_phenomena(args.out)}", flush=True)
        except ValueError as err:
            ap.error(str(err))


def _device(s: str) -> str:
    """argparse type of --device: the spelling checked by ``simclr_core.precision.parse_device``."""
    import argparse

    try:
        return parse_device(s)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def load_or_run(name: str, preset: Preset, dataset: str, device, folder, recompute: bool = False,
                progress: bool = True) -> dict:
    """What the notebooks call: the cached <folder>/<name>.json when it exists for this dataset,
    else run the experiment (and cache it, except in the smoke preset, which never touches the cache)."""
    if preset.name != "smoke" and not recompute:
        cached = load_result(name, folder)
        if cached is not None and cached.get("dataset") == dataset:
            print(f"cached result: {name}.json ({cached['preset']['name']} preset, {cached['device']}, "
                  f"{cached['wall_s']} s; re-create with: {cached['command']})")
            return cached
    if preset.name != "smoke":
        print(f"no cached {name}.json for {dataset}: running the experiment now ({preset.name} preset, "
              f"{len(preset.seeds)} seeds; this takes a while on a CPU, progress below)")
    result = EXPERIMENTS[name](preset, dataset, device, progress=progress)
    if preset.name != "smoke":
        print("saved", save_result(result, folder))
    return result

"""Build the rendered workbook: a static HTML site of every notebook, executed, and the problem sets.

    python scripts/build_site.py                 # full build: open build/site/html/index.html
    python scripts/build_site.py --smoke         # SIMCLR_SMOKE=1: every notebook on tiny data (CI)
    python scripts/build_site.py --out /tmp/site # elsewhere
    python scripts/build_site.py --jobs 1        # one notebook at a time (default: 2 side by side)

Everything goes under the output folder: ``html/`` (the site), ``src/`` (the staged sources, the notebooks among
them executed in place) and ``jupyter_execute/`` (the notebooks again, as MyST-NB writes them beside its HTML).

Sphinx + MyST-NB (``site/conf.py``). The sources are staged into one tree, ``src/``:

    site/*                     the landing page, "run it live", conf.py, CSS
    notebooks/*.ipynb          executed here with nbclient in notebooks/ (as a student runs them), reading
    notebooks/results/         ... their cached experiment results from here
    notebooks/pretrained/      ... the shipped encoder, from here
    exercises/<ps>/<ps>.ipynb  the problem sets as handed out (not executed: unanswered cells raise by design)
    workbook_map.md            generated: one row per notebook, from its own headings, so the map cannot drift
    problem_sets_map.md        generated: the same for the problem sets

Staging keeps the build from writing anything into the checkout (a notebook's runs/ go under the staging
tree). Notebooks run ``--jobs`` at a time, each in its own kernel (Sphinx's own parallel read is unavailable:
sphinx-mathjax-offline is not declared parallel-safe), then Sphinx renders them without executing anything. The build
fails when a notebook cell raises. ``build_info.json`` in the output records the mode, the
pages and the build time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXPLORER_CALL = re.compile(r"\b(temperature|batch_size|augmentation)_explorer\(")
NUMBER_PREFIX = re.compile(r"^\d\d\s*·\s*")


def headings(nb_path: Path) -> tuple[str, str | None]:
    """(English title, Chinese title or None) from the first cell's level-1 headings."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    first = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    h1 = [line[2:].strip() for line in ("".join(first["source"]) if first else "").splitlines() if line.startswith("# ")]
    if not h1:
        raise SystemExit(f"{nb_path.relative_to(REPO)}: the first markdown cell has no '# title' heading; the site needs one")
    english = h1[0]
    chinese = next((h for h in h1[1:] if re.search(r"[\u4e00-\u9fff]", h)), None)
    return english, chinese


def explorers_in(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return sorted(set(EXPLORER_CALL.findall(code)))


def map_table(paths: list[Path], root: Path) -> str:
    rows = ["| page | title · 标题 | explorer |", "| --- | --- | --- |"]
    for p in paths:
        english, chinese = headings(p)
        rel = p.relative_to(root).as_posix()
        title = NUMBER_PREFIX.sub("", english) + (f"<br>{NUMBER_PREFIX.sub('', chinese)}" if chinese else "")
        explorers = ", ".join(f"{name.replace('_', ' ')} (snapshot)" for name in explorers_in(p)) or "–"
        rows.append(f"| [{p.stem}]({rel}) | {title} | {explorers} |")
    return "\n".join(rows) + "\n"


def stage(src: Path) -> tuple[list[Path], list[Path]]:
    """Copy the site's sources into ``src`` (emptied first); returns (notebooks, problem sets) there."""
    if src.exists():
        shutil.rmtree(src)
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
    shutil.copytree(REPO / "site", src, ignore=ignore)
    (src / "notebooks").mkdir()
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        shutil.copy2(nb, src / "notebooks" / nb.name)
    for sub in ("results", "pretrained"):  # cached experiment results; the shipped encoder 05, 08 and 09 load
        if (REPO / "notebooks" / sub).is_dir():
            shutil.copytree(REPO / "notebooks" / sub, src / "notebooks" / sub, ignore=ignore)
    for ps in sorted(p for p in (REPO / "exercises").iterdir() if p.is_dir()):
        shutil.copytree(ps, src / "exercises" / ps.name, ignore=ignore)
    notebooks = sorted((src / "notebooks").glob("*.ipynb"))
    problem_sets = sorted((src / "exercises").glob("*/*.ipynb"))
    if not notebooks:
        raise SystemExit(f"no notebooks found in {REPO / 'notebooks'}")
    (src / "workbook_map.md").write_text(map_table(notebooks, src), encoding="utf-8")
    (src / "problem_sets_map.md").write_text(map_table(problem_sets, src), encoding="utf-8")
    return notebooks, problem_sets


def execute(path: Path, cell_timeout: int) -> tuple[str, float, str | None]:
    """Run one staged notebook in place, in its own folder (as a student runs it: cwd = notebooks/);
    returns (name, seconds, None) or (name, seconds, the failing cell's traceback)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from traitlets.config import Config

    t0 = time.monotonic()
    nb = nbformat.read(path, as_version=4)
    # the kernel's traffic encrypted with CurveZMQ keys the manager provisions (ipykernel declares support in its
    # kernelspec): the kernel then does not print its warning about plain TCP into the build log, once per notebook
    encrypted = Config({"KernelManager": {"transport_encryption": "auto"}})
    try:
        NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", config=encrypted,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as err:
        return path.name, time.monotonic() - t0, str(err)
    except (CellTimeoutError, DeadKernelError) as err:  # a cell over --cell-timeout, a kernel that died
        return path.name, time.monotonic() - t0, f"{type(err).__name__}: {err}"
    nbformat.write(nb, path)
    return path.name, time.monotonic() - t0, None


def execute_all(notebooks: list[Path], jobs: int, cell_timeout: int, last: dict[str, float]) -> tuple[list[str], dict]:
    """Execute every notebook, ``jobs`` at a time, the longest of the last build (``last``: name -> seconds) first, so
    that no long one starts at the end; print each as it finishes. Returns (names that failed, name -> seconds)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(notebooks, key=lambda nb: -last.get(nb.name, 0.0))  # stable: alphabetical without a last build
    failed, seconds = [], {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(execute, nb, cell_timeout) for nb in order]
        for k, fut in enumerate(as_completed(futures), 1):
            name, took, error = fut.result()
            seconds[name] = round(took, 1)
            print(f"[site] {k}/{len(notebooks)} {name}: {'FAILED' if error else 'ran'} in {took:.0f} s", flush=True)
            if error:
                print(error, file=sys.stderr, flush=True)
                failed.append(name)
    return failed, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="run the notebooks in smoke mode (SIMCLR_SMOKE=1: tiny data, seconds each)")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "site",
                    help="build folder, emptied first; the site is its html/ (default: build/site)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="notebooks executed at a time, each in its own kernel (default: %(default)s)")
    # 05's training cell runs for its 8-minute time budget plus the kNN monitor passes: about 10 minutes on a quiet
    # 2-core machine, more on a busy one
    ap.add_argument("--cell-timeout", type=int, default=1800, help="seconds one cell may run (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.cell_timeout < 1:
        ap.error(f"--cell-timeout must be at least 1 second, got {args.cell_timeout}")
    out = args.out.resolve()
    src, html = out / "src", out / "html"

    t0 = time.monotonic()
    last = {}  # the previous build's time per notebook, for the order of this one
    if (out / "html" / "build_info.json").is_file():
        last = json.loads((out / "html" / "build_info.json").read_text()).get("notebook_seconds", {})
    if out.exists():
        shutil.rmtree(out)
    notebooks, problem_sets = stage(src)
    # the kernels inherit this process's environment
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    os.environ.pop("MPLBACKEND", None)  # a kernel's figures need its inline backend; Agg (as tests set it) would drop them
    os.environ["SIMCLR_SMOKE"] = "1" if args.smoke else os.environ.get("SIMCLR_SMOKE", "0")
    # the kernels import simclr_core from this checkout even where the editable install points elsewhere
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    mode = "smoke" if os.environ["SIMCLR_SMOKE"] == "1" else "full"
    # smoke kernels' tensors are tiny: threads would only contend. A full build's long notebooks (05 trains) keep
    # every core, since most of the time they run beside short ones.
    if mode == "smoke" and args.jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    print(f"[site] executing {len(notebooks)} notebooks ({mode} mode, {args.jobs} at a time), then rendering them and "
          f"{len(problem_sets)} problem sets into {html}", flush=True)
    failed, notebook_seconds = execute_all(notebooks, args.jobs, args.cell_timeout, last)
    if failed:
        print(f"[site] {len(failed)} notebook(s) failed after {time.monotonic() - t0:.0f} s: {', '.join(failed)}; "
              f"the sources are staged in {src}", file=sys.stderr)
        return 1
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(out / "doctrees"), str(src), str(html)]
    rc = subprocess.call(cmd, cwd=src)
    seconds = time.monotonic() - t0
    if rc != 0:
        print(f"[site] sphinx-build failed (exit {rc}) after {seconds:.0f} s; the sources are staged in {src}", file=sys.stderr)
        return rc
    pages = [p.relative_to(src).with_suffix(".html").as_posix() for p in notebooks + problem_sets]
    info = {"mode": mode, "seconds": round(seconds, 1), "jobs": args.jobs, "notebook_seconds": notebook_seconds,
            "pages": ["index.html", "run_it_live.html", *pages]}
    (html / "build_info.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"[site] done in {seconds:.0f} s: open {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

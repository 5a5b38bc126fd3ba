"""What students receive, built from explicit allow-lists: nothing that holds or computes answers leaves this side.

The instructor's repository holds the answers: ``solutions/`` (nbgrader's source: model answers, hidden tests,
mark schemes), ``grader/`` (references, mistake detectors, every student's model answers), ``grader_probe/``,
``scripts/course.py`` (``variant`` prints a student's answers), the tests and their reference submissions. Students
get one of two things, each made by one command and refused when anything in it looks like an answer:

* ``bundle(out)``: a zip of the released problem sets, ``exercises/<ps>/<ps>.ipynb`` and a README;
* ``student_repo(dest)``: a fresh git repository (one commit) with the workbook, the exercises, the library and
  the student tooling (``STUDENT_TREE``): what a class clones.

A path is included only when an allow-list names it (a new instructor-only folder stays out by default); each file
is then scanned for nbgrader's solution and hidden-test markers, mark schemes, and imports of the grading packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

# folders (trailing /) and files of the instructor's repository that a student copy holds
STUDENT_TREE = (
    "simclr_core/", "notebooks/", "exercises/", "lecture/", "jupyter_config/student/",
    "scripts/setup_env.sh", "scripts/setup_system.sh", "scripts/validate.py", "scripts/normalize_notebooks.py",
    "scripts/install_lightly.sh", "docs/benchmarks.md", "docs/tuning.md",
    "pyproject.toml", "environment.yml", "Makefile", "nbgrader_config.py", ".gitattributes", ".gitignore", "LICENSE",
)
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
                "BEGIN MARK SCHEME", "**Model answer.**", "**Mark scheme")
GRADING_IMPORT = re.compile(r"(^|\"|\n)\s*(from|import)\s+(grader|grader_probe)\b", re.M)
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed: the same inputs give the same zip

BUNDLE_README = """SimCLR Workbook - problem sets
================================

Open each notebook in exercises/<problem set>/ in Jupyter (JupyterLab 4 or Notebook 7), type your student id in
its first code cell (problem sets 1-3: your numbers are chosen from it), replace every
`raise NotImplementedError()` with your code and every "YOUR ANSWER HERE" with your answer, and run the tests
below each answer. Check a whole notebook with the Validate button, or in a terminal:

    nbgrader validate exercises/ps1_similarity_matrix/ps1_similarity_matrix.ipynb

(with the workbook's environment: ~/.cache/simclr-workbook/venv/bin/nbgrader). The visible tests check the format
of your answers, not their values: nbgrader's "Success! Your notebook passes all the tests" means only that they
pass. Every point is decided when the notebook is graded, by checks that are not in the notebook.
Submit the notebook file(s) of a problem set, unchanged in name.
"""

STUDENT_README = """# The SimCLR Workbook (student edition)

An interactive workbook for learning SimCLR (Chen, Kornblith, Norouzi, Hinton 2020, arXiv:2002.05709): eleven
notebooks from the NT-Xent loss worked by hand to a real pretraining with a linear probe, explorers for
temperature, batch size and augmentation, four problem sets, and `simclr_core`, the library behind them.

On Linux or macOS with Python >= 3.10 and `make`, from this folder:

```bash
make lab        # sets everything up if needed (a virtual environment in ~/.cache/simclr-workbook/venv), then opens
                # the workbook in JupyterLab
make notebook   # the same in Notebook 7
make lecture    # the explorers one per page, sized for a projector
make validate PS=ps1_similarity_matrix   # run a problem set's visible tests (plain `make validate`: all four)
```

Start with `notebooks/00_start_here.ipynb`. The problem sets are in `exercises/<problem set>/`: type your student
id in the first code cell, answer each question, and check with the **Validate** button in the notebook's toolbar.
Hidden tests run when your notebook is graded. Submit each problem set's notebook file, unchanged in name.

With conda instead: `conda env create -f environment.yml && conda activate simclr-workbook`, then
`JUPYTER_CONFIG_PATH=$PWD/jupyter_config/student jupyter lab notebooks/00_start_here.ipynb`.
"""


def _listed(root: Path) -> list[str]:
    """Files of ``root`` as paths relative to it: in a checkout the files git tracks or would track (not ignored
    ones: grading/, runs/, caches), else every file."""
    if (root / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout
        return sorted(p for p in out.decode().split("\0") if p)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def student_paths(root: Path) -> list[str]:
    """The allow-listed files of the student repository (relative paths)."""
    keep = []
    for rel in _listed(root):
        if SKIPPED_PARTS & set(rel.split("/")) or not (root / rel).exists():
            continue
        if any(rel == entry or (entry.endswith("/") and rel.startswith(entry)) for entry in STUDENT_TREE):
            keep.append(rel)
    return keep


def leaks(text: str) -> list[str]:
    """The answer markers and grading imports in ``text``."""
    found = [m for m in LEAK_MARKERS if m in text]
    found += [f"imports {m.group(3)}" for m in GRADING_IMPORT.finditer(text)]
    return sorted(set(found))


def refuse_leaks(root: Path, rels: list[str]) -> None:
    """SystemExit naming the first file that is a link or holds a leak."""
    for rel in rels:
        path = root / rel
        if path.is_symlink() or not path.is_file():
            raise SystemExit(f"refusing to hand out {rel}: not a regular file")
        found = leaks(path.read_bytes().decode("utf-8", errors="replace"))
        if found:
            raise SystemExit(f"refusing to hand out {rel}: it contains {found}")


def exercise_notebooks(root: Path) -> list[str]:
    """``exercises/<ps>/<ps>.ipynb`` for every released problem set (nothing else from exercises/)."""
    ex = root / "exercises"
    rels = [f"exercises/{d.name}/{d.name}.ipynb" for d in sorted(ex.iterdir()) if d.is_dir()] if ex.is_dir() else []
    rels = [r for r in rels if (root / r).is_file()]
    if not rels:
        raise SystemExit(f"no notebooks under {ex}; run `python scripts/course.py generate` first")
    return rels


def bundle(out: Path, root: Path) -> list[str]:
    """Write the student zip (released notebooks + README.txt) to ``out``; return the names in it."""
    rels = exercise_notebooks(root)
    refuse_leaks(root, rels)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    names = []
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in [(r, (root / r).read_bytes()) for r in rels] + [("README.txt", BUNDLE_README.encode())]:
            info = zipfile.ZipInfo("simclr-workbook-exercises/" + name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
            names.append(info.filename)
    os.replace(tmp, out)  # a half-written zip never takes the name
    return names


def student_repo(dest: Path, root: Path) -> list[str]:
    """Create ``dest`` (absent or empty) as a git repository with the student tree in one commit; return its files."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise SystemExit(f"{dest} exists and is not empty; give a new folder for the student repository")
    rels = student_paths(root)
    missing = [e for e in ("simclr_core/", "notebooks/", "exercises/") if not any(r.startswith(e) for r in rels)]
    if missing:
        raise SystemExit(f"{root} has no {missing}: run this from the instructor's repository")
    refuse_leaks(root, rels)
    dest.mkdir(parents=True, exist_ok=True)
    for rel in rels:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
    (dest / "README.md").write_text(STUDENT_README, encoding="utf-8")
    files = sorted(rels + ["README.md"])
    git = ["git", "-C", str(dest), "-c", "user.name=SimCLR Workbook", "-c", "user.email=workbook@localhost",
           "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
    subprocess.run(git + ["add", "--", *files], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "SimCLR Workbook, student edition"], check=True)
    return files

"""Instructor helper for the problem sets: regenerate the student versions and build the student bundle.

    python scripts/course.py generate [ASSIGNMENT ...]   solutions/<a>/ -> exercises/<a>/ (nbgrader generate_assignment)
    python scripts/course.py bundle OUT.zip              zip of exercises/ only, refused if anything leaks
    python scripts/course.py student-repo DEST           a new git repository for students: no answers in it
    python scripts/course.py check                       exercises/ is exactly what `generate` produces
    python scripts/course.py variant STUDENT_ID [PS ...]  that student's numbers and model answers (ps1-ps3)

`generate` runs nbgrader's GenerateAssignment converter in-process (solutions/ is nbgrader's source directory and
exercises/ its release directory, see nbgrader_config.py) and then normalises every released notebook (no outputs,
nbformat 4.5, sorted keys, one trailing newline) so that regenerating gives byte-identical files. The gradebook
(grading/gradebook.db, git-ignored) learns the assignments, cells and hidden tests on the way; autograding needs it.
`variant` prints what a student of problem sets 1-3 was given (her numbers derive from her student id, see
simclr_core/teaching/variants.py) and the values her numeric answers must have; PS is a name or its prefix (ps2).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def _with_venv_on_path() -> None:
    """nbgrader's gradebook shells out to `alembic`: make the one next to this Python findable."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def assignments(root: Path = ROOT) -> list[str]:
    src = root / "solutions"
    return sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def _kernel_metadata() -> dict:
    """kernelspec and language_info as scripts/normalize_notebooks.py stores them: what ipykernel writes on start, so
    that JupyterLab opens a problem set without marking it modified."""
    spec = importlib.util.spec_from_file_location("normalize_notebooks", Path(__file__).with_name("normalize_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"kernelspec": module.KERNELSPEC, "language_info": module.LANGUAGE_INFO}


def normalise(path: Path) -> None:
    """Rewrite a notebook in a canonical form: no outputs/execution counts, nbformat 4.5, stable JSON."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
    nb.metadata.pop("widgets", None)
    nb.metadata.update(_kernel_metadata())
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    text = nbformat.writes(nb) + "\n"
    path.write_text(text, encoding="utf-8")


def generate(names: list[str] | None = None, root: Path = ROOT) -> list[Path]:
    """Regenerate exercises/<a>/ from solutions/<a>/ for each assignment; return the written notebooks."""
    _with_venv_on_path()
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    known = assignments(root)
    names = names or known
    for a in names:
        if a not in known:
            raise ValueError(f"unknown assignment {a!r}; solutions/ holds {known}")
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    written = []
    for a in names:
        coursedir = CourseDirectory(config=cfg)
        coursedir.assignment_id = a
        converter = GenerateAssignment(coursedir=coursedir, config=cfg)
        converter.force = True
        converter.create_assignment = True
        converter.start()  # raises NbGraderException if the source notebook is malformed
        for nb_path in sorted((root / "exercises" / a).glob("*.ipynb")):
            normalise(nb_path)
            written.append(nb_path)
    return written


def _distribution():
    """grader.distribution, which builds what students receive from explicit allow-lists."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from grader import distribution

    return distribution


def bundle(out: Path, root: Path = ROOT) -> list[str]:
    """Write the student zip: exercises/<ps>/<ps>.ipynb and a README; refused if any of them holds an answer."""
    return _distribution().bundle(out, root)


def student_repo(dest: Path, root: Path = ROOT) -> list[str]:
    """Create the student repository in ``dest`` (a new git repository: workbook, exercises, library; no answers)."""
    return _distribution().student_repo(dest, root)


def check(root: Path = ROOT) -> list[str]:
    """Regenerate into a temporary copy and list committed exercise notebooks that differ (empty = no drift)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for name in ("nbgrader_config.py",):
            shutil.copy(root / name, t / name)
        shutil.copytree(root / "solutions", t / "solutions")
        generate(root=t)
        committed = {p.relative_to(root / "exercises") for p in (root / "exercises").rglob("*.ipynb")}
        fresh = {p.relative_to(t / "exercises") for p in (t / "exercises").rglob("*.ipynb")}
        drift = sorted(str(p) for p in committed ^ fresh)
        drift += sorted(str(p) for p in committed & fresh
                        if (root / "exercises" / p).read_bytes() != (t / "exercises" / p).read_bytes())
    return drift


def variant_report(student: str, names: list[str] | None = None, root: Path = ROOT) -> str:
    """The numbers and model answers of ``student`` for the problem sets ``names`` (names or prefixes; default
    all that have variants). ValueError for an unknown problem set or an invalid student id."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from grader.problems import VARIANT_ASSIGNMENTS, describe

    if not student.strip():
        raise ValueError("give a student id, e.g. `python scripts/course.py variant alice ps1`")
    chosen = []
    for n in names or VARIANT_ASSIGNMENTS:
        hits = [a for a in VARIANT_ASSIGNMENTS if a == n or a.startswith(n + "_")]
        if len(hits) != 1:
            raise ValueError(f"no problem set {n!r} with per-student numbers; choose from {list(VARIANT_ASSIGNMENTS)}")
        chosen += hits
    return describe(student, chosen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="regenerate exercises/ from solutions/")
    g.add_argument("assignments", nargs="*", help="default: all in solutions/")
    b = sub.add_parser("bundle", help="zip exercises/ for students")
    b.add_argument("out", type=Path)
    r = sub.add_parser("student-repo", help="create the student repository (workbook, exercises, library) in DEST")
    r.add_argument("dest", type=Path, help="a new or empty folder")
    sub.add_parser("check", help="fail if exercises/ differs from a fresh generate")
    v = sub.add_parser("variant", help="print a student's numbers and the model answers on them")
    v.add_argument("student", help="the student id, as nbgrader grades it (grading/submitted/<student_id>/)")
    v.add_argument("assignments", nargs="*", help="ps1_similarity_matrix, ps2_temperature, ps3_batch_size or a "
                                                  "prefix (ps2); default: all three")
    args = ap.parse_args(argv)
    if args.cmd == "generate":
        for p in generate(args.assignments or None):
            print(f"wrote {p.relative_to(ROOT)}")
    elif args.cmd == "variant":
        try:
            print(variant_report(args.student, args.assignments))
        except ValueError as e:
            print(f"course.py variant: {e}", file=sys.stderr)
            return 2
    elif args.cmd == "bundle":
        names = bundle(args.out)
        print(f"wrote {args.out} ({len(names)} files, no solutions)")
    elif args.cmd == "student-repo":
        files = student_repo(args.dest)
        print(f"created the student repository {args.dest} ({len(files)} files, one commit, no answers)")
    else:
        drift = check()
        if drift:
            print("exercises/ differs from `generate`:", *drift, sep="\n  ")
            return 1
        print("exercises/ matches a fresh `generate`")
    return 0


if __name__ == "__main__":
    sys.exit(main())

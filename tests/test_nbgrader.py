"""The nbgrader problem sets: source -> release without leaks or drift, validate, autograde under abuse.

Everything runs on a temporary copy of the course (tmp_path), never in the repository's grading/ folder.
The expensive parts (a generated course, one autograde run over many submissions) are module-scoped fixtures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ["ps1_similarity_matrix", "ps2_temperature", "ps3_batch_size", "ps4_applications"]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # nbgrader shells out to alembic
MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME",
           "Model answer", "Mark scheme", "grader_probe"]


def _load_course_module():
    spec = importlib.util.spec_from_file_location("course", ROOT / "scripts" / "course.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


course = _load_course_module()


def _copy_course(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", dst / "nbgrader_config.py")
    shutil.copytree(ROOT / "solutions", dst / "solutions")
    return dst


def _nbgrader(*args, cwd: Path, timeout=600):
    return subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _split_regions(text: str) -> tuple[list[str], list[str]]:
    """(lines strictly inside ### BEGIN/END SOLUTION or hidden-test regions, lines outside every such region)."""
    inside_lines, outside_lines, inside = [], [], False
    for line in text.split("\n"):
        if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
            inside = False
        else:
            (inside_lines if inside else outside_lines).append(line)
    return inside_lines, outside_lines


def _solution_regions(text: str) -> list[str]:
    """Lines strictly inside ### BEGIN SOLUTION / ### END SOLUTION (or hidden-test) regions."""
    return _split_regions(text)[0]


def _public_lines(text: str) -> list[str]:
    """Lines outside every solution / hidden-test region."""
    return _split_regions(text)[1]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A temporary course with exercises/ regenerated from solutions/ (and a gradebook that knows them)."""
    root = _copy_course(tmp_path_factory.mktemp("course"))
    course.generate(root=root)
    return root


# ------------------------------------------------------------------------------------------ structure / leaks
def test_solutions_are_well_formed_nbgrader_sources():
    for a in ASSIGNMENTS:
        paths = list((ROOT / "solutions" / a).glob("*.ipynb"))
        assert [p.name for p in paths] == [f"{a}.ipynb"], paths
        nb = nbformat.read(paths[0], as_version=4)
        nbformat.validate(nb)
        ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
        assert len(ids) == len(set(ids)), f"duplicate grade ids in {a}"
        tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
        assert tests, f"{a} has no autograded test cell"
        assert all(c.metadata["nbgrader"]["locked"] for c in tests)
        manual = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "markdown"]
        for c in manual:  # every manually graded answer carries a model answer and a mark scheme
            assert "### BEGIN SOLUTION" in c.source and "**Mark scheme (" in c.source, c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells:  # committed without outputs
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None
        # the questions are bilingual: some CJK text in the question prose
        prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown" and "nbgrader" not in c.metadata)
        assert re.search(r"[\u4e00-\u9fff]", prose), f"{a} has no Chinese question text"
    manual_ids = {c.metadata["nbgrader"]["grade_id"]
                  for a in ASSIGNMENTS for c in nbformat.read(ROOT / "solutions" / a / f"{a}.ipynb", 4).cells
                  if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")}
    # the explain parts of the brief are manually graded
    assert {"q2_2_explain", "q3_1c_explain", "q3_2b_explain", "q4_1", "q4_2", "q5_1", "q5_2", "q5_3",
            "q6_1", "q6_2"} <= manual_ids


PS4 = ROOT / "solutions" / "ps4_applications" / "ps4_applications.ipynb"
# the paper's numbers ps4's model answers quote (Chen et al. 2020), each with the model and metric it belongs to
PS4_PAPER = {
    "56.3", "33.1",  # Figure 5: ResNet-50, ImageNet linear evaluation top-1: crop then colour, crop alone
    "48.3", "65.6", "25.4", "56.4",  # Table 7: ResNet-50 fine-tuned on 1% / 10% of the labels, top-1; supervised
    "69.3", "76.5",  # Table 6 / Figure 1: linear evaluation top-1, ResNet-50; ResNet-50 (4x) = supervised ResNet-50
    "0.99", "0.999",  # MoCo's momentum (He et al. 2020), a setting
}


def _ps4_solutions() -> dict[str, str]:
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(PS4, 4).cells
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")}


def test_ps4_quotes_only_what_notebooks_06_09_measured_and_the_papers_numbers():
    """Every mean ± sd and decimal a model answer of problem set 4 quotes is a value of the cached results the
    application notebooks read (formatted as they format it), a paired difference of the phenomena table, or one of
    the paper's numbers listed above; so a mark scheme cannot drift from what the workbook measures."""
    from .test_results_prose import DECIMAL, NOTEBOOKS, PLUS_MINUS, _leaves, _paired, _quotable, _results

    quotable = set(PS4_PAPER) | _paired()
    for name in NOTEBOOKS:
        for result in _results(name):
            quotable |= _quotable(result) | _leaves(result)
    for gid, source in _ps4_solutions().items():
        pairs = {f"{m} ± {s}" for m, s in PLUS_MINUS.findall(source)}
        unknown = sorted(x for x in pairs | set(DECIMAL.findall(PLUS_MINUS.sub("", source))) if x not in quotable)
        assert not unknown, f"{gid} quotes numbers that no cached result or listed paper figure holds: {unknown}"


def test_ps4_model_answers_and_mark_schemes_are_in_both_languages():
    from .test_bilingual import numbers_without_chinese, stray_markers, unpaired_english

    for gid, source in _ps4_solutions().items():
        text = source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
        assert "**参考答案。**" in text and "**评分标准(" in text and "用中文或英文作答" in text, gid
        assert "An answer in Chinese or in English is marked the same" in text, gid
        assert unpaired_english(text) == [] and stray_markers(text) == [], gid
        assert numbers_without_chinese(text) == [], gid


def test_ps4_does_not_compare_numbers_of_different_models_or_metrics():
    """The 1%-label comparison is ResNet-50 with ResNet-50, top-1 with top-1 (Table 7); the ResNet-50 (4x) top-5
    figure (85.8%) is not set against the supervised ResNet-50 (48.4% top-5, 25.4% top-1)."""
    q61 = _ps4_solutions()["q6_1"]
    assert "85.8" not in q61 and "48.4" not in q61
    assert "ResNet-50, fine-tuned on 1% / 10% of the labels, top-1): SimCLR 48.3% / 65.6% against 25.4% / 56.4%" in q61


def test_exercises_leak_nothing():
    all_src = "".join((ROOT / "solutions" / a / f"{a}.ipynb").read_text(encoding="utf-8") for a in ASSIGNMENTS)
    # the check below is not vacuous: the sources do use the answer markers; the hidden-test markers and
    # grader_probe stay on the list so that none ever comes back into a released notebook (the graded checks
    # live in grader/, not in hidden test regions)
    for m in ("BEGIN SOLUTION", "END SOLUTION", "Model answer", "Mark scheme"):
        assert m in all_src, f"marker {m!r} is in no source notebook"
    for a in ASSIGNMENTS:
        src = (ROOT / "solutions" / a / f"{a}.ipynb").read_text(encoding="utf-8")
        rel = (ROOT / "exercises" / a / f"{a}.ipynb").read_text(encoding="utf-8")
        for m in MARKERS:
            assert m not in rel, f"{m!r} leaked into exercises/{a}"
        nb_src = nbformat.reads(src, 4)
        secret, public = set(), set()
        for c in nb_src.cells:
            secret.update(l.strip() for l in _solution_regions(c.source) if len(l.strip()) >= 12)
            public.update(l.strip() for l in _public_lines(c.source))
        secret -= public  # e.g. an import that the setup cell also shows is no secret
        assert len(secret) > 10, a  # not vacuous: each source holds answer lines
        rel_lines = {l.strip() for c in nbformat.reads(rel, 4).cells for l in c.source.split("\n")}
        leaked = sorted(secret & rel_lines)
        assert not leaked, f"solution/hidden-test lines in exercises/{a}: {leaked[:5]}"
        assert "raise NotImplementedError()" in rel and "YOUR ANSWER HERE" in rel or a != "ps4_applications"


# ------------------------------------------------------------------------------------------ generate / bundle
def test_regenerating_exercises_reproduces_the_committed_files(generated):
    for a in ASSIGNMENTS:
        fresh = (generated / "exercises" / a / f"{a}.ipynb").read_bytes()
        committed = (ROOT / "exercises" / a / f"{a}.ipynb").read_bytes()
        assert fresh == committed, f"exercises/{a} drifted from solutions/{a}: run `python scripts/course.py generate`"
    committed = sorted(p.relative_to(ROOT / "exercises") for p in (ROOT / "exercises").rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(generated / "exercises") for p in (generated / "exercises").rglob("*") if p.is_file())
    assert committed == fresh


def test_bundle_holds_exercises_and_no_solutions(generated, tmp_path):
    out = tmp_path / "bundle.zip"
    names = course.bundle(out, root=generated)
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(names)
        nbs = [n for n in names if n.endswith(".ipynb")]
        assert sorted(Path(n).name for n in nbs) == sorted(f"{a}.ipynb" for a in ASSIGNMENTS)
        assert not any("solutions/" in n or "grading/" in n for n in names)
        for n in names:
            text = zf.read(n).decode("utf-8")
            assert not any(m in text for m in MARKERS), n
    # the zip is built from an allow-list: a stray file next to a notebook stays out
    stray = generated / "exercises" / "ps1_similarity_matrix" / "notes.md"
    stray.write_text("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n")
    try:
        assert names == course.bundle(tmp_path / "again.zip", root=generated)
    finally:
        stray.unlink()
    # a released notebook holding an answer makes bundle refuse, and no zip is written
    nb_path = generated / "exercises" / "ps1_similarity_matrix" / "ps1_similarity_matrix.ipynb"
    original = nb_path.read_bytes()
    nb_path.write_bytes(original.replace(b"YOUR ANSWER HERE", b"**Model answer.** 42", 1))
    try:
        with pytest.raises(SystemExit, match="refusing to hand out exercises/ps1_similarity_matrix"):
            course.bundle(tmp_path / "bad.zip", root=generated)
        assert not (tmp_path / "bad.zip").exists()
    finally:
        nb_path.write_bytes(original)


# what a student copy of the repository must never hold: answers, hidden tests, mark schemes, answer generators
INSTRUCTOR_ONLY = ("solutions/", "grader/", "grader_probe/", "tests/", "benchmarks/", "grading/", "site/",
                   "scripts/course.py", "docs/instructors.md", "jupyter_config/instructor/")


# lines a solution shares with the workbook on purpose: notebook 01 works the numerator out on the sheet's numbers,
# notebook 03 and its explorer call the library's loss
TAUGHT = {"numerator = math.exp(float(S[i, j]) / tau)", "loss = nt_xent(z1, z2, temperature=tau)"}


def test_student_repo_holds_the_workbook_and_no_answers(tmp_path):
    dest = tmp_path / "student"
    files = course.student_repo(dest)
    git = lambda *a: subprocess.run(["git", "-C", str(dest), *a], capture_output=True, text=True, check=True).stdout
    assert git("ls-files").split() == files and git("status", "--porcelain") == ""
    assert len(git("log", "--format=%H").split()) == 1
    leaked = [f for f in files if f.startswith(INSTRUCTOR_ONLY)]
    assert not leaked, leaked
    for needed in ("simclr_core/nn/loss.py", "notebooks/00_start_here.ipynb", "scripts/validate.py", "Makefile",
                   "jupyter_config/student/jupyter_server_config.json", "pyproject.toml", "README.md"):
        assert needed in files, needed
    for a in ASSIGNMENTS:
        rel = f"exercises/{a}/{a}.ipynb"
        assert (dest / rel).read_bytes() == (ROOT / rel).read_bytes()
    # no file holds an answer marker or a line of a solution / hidden test (independent of the builder's scan)
    secret = set()
    for a in ASSIGNMENTS:
        for c in nbformat.read(ROOT / "solutions" / a / f"{a}.ipynb", 4).cells:
            secret.update(l.strip() for l in _solution_regions(c.source) if len(l.strip()) >= 25)
    public = {l.strip() for a in ASSIGNMENTS for l in (ROOT / "exercises" / a / f"{a}.ipynb").read_text().split("\n")}
    public |= TAUGHT
    for f in files:
        text = (dest / f).read_bytes().decode("utf-8", errors="replace")
        assert not [m for m in MARKERS if m in text], f
        assert not re.search(r"^\s*(from|import)\s+grader", text, re.M), f"{f} imports the grader"
        if f.endswith((".py", ".ipynb", ".md")):
            hits = [s for s in secret if s in text and s not in public]
            assert not hits, f"{f} holds solution lines: {hits[:3]}"
    assert "solutions/" not in (dest / "README.md").read_text()
    with pytest.raises(SystemExit, match="not empty"):  # never writes into an existing folder with files
        course.student_repo(dest)


def test_student_repo_is_built_from_the_allow_list_and_refuses_leaks(tmp_path):
    root = tmp_path / "instructor"
    for rel, text in {"simclr_core/__init__.py": "", "notebooks/00.ipynb": "{}", "exercises/ps/ps.ipynb": "{}",
                      "solutions/ps/ps.ipynb": "### BEGIN SOLUTION", "grader/problems.py": "answers",
                      "notes/private.md": "mine", "scripts/course.py": "variant"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    files = course.student_repo(tmp_path / "ok", root=root)
    assert files == ["README.md", "exercises/ps/ps.ipynb", "notebooks/00.ipynb", "simclr_core/__init__.py"]
    for planted, text in [("notebooks/01.ipynb", '"### BEGIN HIDDEN TESTS"'),
                          ("simclr_core/answers.py", "from grader.problems import describe"),
                          ("exercises/ps/notes.md", "**Mark scheme (2 pts)**")]:
        (root / planted).write_text(text)
        with pytest.raises(SystemExit, match=f"refusing to hand out {planted}"):
            course.student_repo(tmp_path / planted.replace("/", "_"), root=root)
        (root / planted).unlink()
    (root / "notebooks" / "link.ipynb").symlink_to(root / "solutions" / "ps" / "ps.ipynb")
    with pytest.raises(SystemExit, match="not a regular file"):
        course.student_repo(tmp_path / "linked", root=root)


# ------------------------------------------------------------------------------------------ validate
@pytest.mark.slow
def test_validate_passes_solutions_and_fails_releases(generated):
    from nbgrader.validator import Validator

    for a in ASSIGNMENTS:  # the solutions validate as they are: no hidden cell needs anything of the grader
        v = Validator()
        v.execute_retries = 0
        res_src = v.validate(str(generated / "solutions" / a / f"{a}.ipynb"))
        assert not res_src.get("failed") and not res_src.get("changed") and not res_src.get("passed"), (a, res_src)
        v = Validator()
        res_rel = v.validate(str(generated / "exercises" / a / f"{a}.ipynb"))
        assert res_rel.get("failed"), f"the untouched release of {a} passes validation: {res_rel}"

# Autograding every kind of submission, in the sandbox: tests/test_grading.py

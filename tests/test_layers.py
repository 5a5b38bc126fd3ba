"""The package's layers: imports go one way (base -> nn, data -> eval -> train -> experiments, cli), nothing imports
``tests``, and no module derives an output folder from ``__file__``. Checked on the source, function-level imports
included, so a cycle hidden inside a function is caught too."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "simclr_core"

# a module may import only from layers of lower or equal rank (equal: within its own layer)
RANK = {"checks": 0, "precision": 0, "nn": 1, "data": 1, "eval": 2, "teaching": 2, "train": 3, "experiments": 4,
        "cli": 5, "cli_args": 5, "__main__": 6, "__init__": 0}


def _layer(parts: tuple[str, ...]) -> str:
    return parts[0].removesuffix(".py") if parts else "__init__"


def _imports(source: str, rel: tuple[str, ...]):
    """(line, absolute dotted target) of every import in the module at ``rel`` (parts under simclr_core/)."""
    tree = ast.parse(source)
    pkg = ["simclr_core", *rel[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            for name in names:
                yield node.lineno, name
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name


MODULES = sorted(p for p in PKG.rglob("*.py"))


def _check(source: str, rel: tuple[str, ...]) -> None:
    me = _layer(rel)
    for line, target in _imports(source, rel):
        assert not target.startswith("tests"), f"{'/'.join(rel)}:{line} imports {target}: the library never imports tests"
        if not target.startswith("simclr_core."):
            continue
        other = _layer(tuple(target.split(".")[1:]))
        if me == "__init__" and len(rel) == 1:
            continue
        assert RANK[other] <= RANK[me], f"{'/'.join(rel)}:{line} imports {target}: layer {me!r} may not use {other!r}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_go_one_way(path):
    _check(path.read_text(), path.relative_to(PKG).parts)


def test_no_output_folder_from_file():
    for path in MODULES:
        src = path.read_text()
        for i, line in enumerate(src.splitlines(), 1):
            if "__file__" in line and ("results" in line or "write" in line or "mkdir" in line):
                pytest.fail(f"{path.relative_to(PKG)}:{i} derives an output location from __file__: {line.strip()}")


def test_the_layer_test_catches_an_upward_import():
    """Mutation check: an upward import at module level or inside a function, and an import of tests, are reported."""
    with pytest.raises(AssertionError, match="layer 'nn' may not use 'train'"):
        _check("from ..train.config import Recipe\n", ("nn", "probe.py"))
    with pytest.raises(AssertionError, match="layer 'eval' may not use 'train'"):
        _check("def f():\n    from ..train import runs\n", ("eval", "probe.py"))
    with pytest.raises(AssertionError, match="never imports tests"):
        _check("from tests.trainer_helpers import tiny\n", ("train", "probe.py"))

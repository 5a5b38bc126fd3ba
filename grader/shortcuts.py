"""Why a library shortcut fails: the library uses an answer cell's source shows (its syntax tree, so comments
and strings mentioning a name do not count).

What stops a shortcut is capability, not this module: while the answers run for grading (``grader.harness``),
the library functions a problem set asks the student to write do not exist. A question that says "no simclr_core"
or "do not call nt_xent" lists its answer cell here so that the feedback of its checks can say why the call
failed, naming the call and its line; the score comes from the values alone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    answer_cell: str  # grade_id of the answer cell whose source is inspected
    graded_by: tuple[str, ...]  # grade_ids of the test cells that score it
    modules: tuple[str, ...]  # importing or naming any of these modules is the shortcut
    names: tuple[str, ...]  # so is using any of these names
    rule: str  # the question's own words


RULES = [
    Rule("q1_3_answer", ("q1_3_anchor", "q1_3_batch"), ("simclr_core",), ("info_nce_from_similarity", "nt_xent"),
         "1.3 asks for a plain loop, no simclr_core"),
    Rule("q1_4_answer", ("q1_4_visible", "q1_4_hidden"), ("simclr_core",),
         ("nt_xent", "nt_xent_unchecked", "info_nce_from_similarity"),
         "1.4 says: do not call simclr_core.nn.loss.nt_xent (you are re-implementing it)"),
]


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def find(source: str, modules, names) -> list[str]:
    """Each use of a forbidden module or name in ``source``, as "line N: what"; [] if none or unparsable."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the kernel reports the syntax error itself
    found = []

    def hit(node, what):
        found.append(f"line {node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in modules:
                    hit(node, f"import {a.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in modules:
                hit(node, f"from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Name) and node.id in names:
            hit(node, node.id)
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if node.attr in names or (dotted and dotted.split(".")[0] in modules):
                hit(node, dotted or node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # __import__("simclr_core...") / importlib.import_module("simclr_core...") / getattr(m, "nt_xent")
            if node.value.split(".")[0] in modules or node.value in names:
                hit(node, repr(node.value))
    return sorted(set(found), key=lambda s: int(s.split(":")[0].split()[1]))


def violations(answers: dict[str, str]) -> dict[str, str]:
    """{test cell grade_id: message} for every rule broken by the answer cells' sources ``answers``."""
    out = {}
    for r in RULES:
        uses = find(answers.get(r.answer_cell, ""), r.modules, r.names)
        if uses:
            msg = (f"{r.rule}; the answer uses it ({'; '.join(uses[:3])}), and when graded those library "
                   f"functions do not exist")
            for gid in r.graded_by:
                out[gid] = msg
    return out

"""Keep committed notebooks clean: no outputs, no execution counts, and the metadata a kernel would write.

    python scripts/normalize_notebooks.py notebooks/01_similarity_matrix.ipynb ...   # rewrite in place
    python scripts/normalize_notebooks.py --check notebooks/*.ipynb                  # exit 1 naming the unclean ones
    python scripts/normalize_notebooks.py --stdin < in.ipynb > out.ipynb             # a git clean filter

On kernel start JupyterLab copies the kernel's ``kernelspec`` and ``language_info`` into the notebook and marks
it modified unless they are deep-equal to what is there; with exactly these values stored, opening a notebook
changes nothing. ``language_info.version`` is the Python of the project's reference environment: a kernel of
another Python still updates that one field. Standard library only, so a git filter starts fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {  # ipykernel's kernel_info reply
    "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py", "mimetype": "text/x-python",
    "name": "python", "nbconvert_exporter": "python", "pygments_lexer": "ipython3", "version": "3.11.7",
}
CELL_METADATA_DROPPED = ("execution", "collapsed", "scrolled", "ExecuteTime")


def normalize(nb: dict) -> dict:
    nb["metadata"] = {**{k: v for k, v in nb.get("metadata", {}).items() if k not in ("widgets",)},
                      "kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO}
    for cell in nb.get("cells", []):
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k not in CELL_METADATA_DROPPED}
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def dumps(nb: dict) -> str:
    """As Jupyter writes a notebook: one-space indent, sorted keys, non-ASCII kept, final newline."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="notebooks to normalise (in place)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not normalised")
    ap.add_argument("--stdin", action="store_true", help="read one notebook from stdin, write it normalised to stdout")
    args = ap.parse_args(argv)
    if args.stdin:
        sys.stdout.write(dumps(normalize(json.load(sys.stdin))))
        return 0
    unclean = []
    for path in args.paths:
        text = path.read_text(encoding="utf-8")
        clean = dumps(normalize(json.loads(text)))
        if text != clean:
            unclean.append(path)
            if not args.check:
                path.write_text(clean, encoding="utf-8")
    if args.check and unclean:
        print("not normalised (outputs or metadata): " + ", ".join(map(str, unclean))
              + "\n  fix: python scripts/normalize_notebooks.py " + " ".join(map(str, unclean)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Lecture mode: an explorer sized for a projector, one per page (the notebooks in lecture/, ``make lecture``).

``on_projector(temperature_explorer)`` switches the kernel to the projector's matplotlib sizes
(``plotting.PROJECTOR_STYLE``: figures at 1.5 times the dpi, every text 3 pt larger, the smallest 27 px) *before* the
explorer draws its figure, then builds the explorer and marks it ``simclr-lecture``. The page's style sheet
(``PROJECTOR_CSS``, shown once per page as an invisible HTML output) zooms that explorer's controls and tables by
``CONTROL_ZOOM`` (their text 24-26 px); the figure is not zoomed: it has its own pixels and stays sharp. The temperature
and batch-size explorers put their numbers beside the figure, so that controls, numbers and figure fit one
1920 x 1080 screen. On a Voila page (``body[data-voila]``) the page's text grows too; in JupyterLab only the explorer
changes.

``lecture_pages`` and ``lecture_page_config`` give Voila's index (lecture/config/voila.py) each page's English and
Chinese title, read from the page's first heading.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from IPython.display import HTML, display

from .plotting import PROJECTOR_SCALE, use_projector_style

__all__ = ["CONTROL_ZOOM", "PROJECTOR_CSS", "on_projector", "LecturePage", "lecture_pages", "lecture_page_config"]

CONTROL_ZOOM = 1.85  # the widgets' 13 px labels and 14 px tables come out 24-26 px, as the figure's smallest text
# Two columns where an explorer has a table of numbers: the numbers at the left, the figure at the right, shown at
# (nearly) its own width, so that the whole explorer fits one 1920 x 1080 screen with no scrolling.
_BESIDE = ".simclr-lecture.simclr-temperature-explorer.widget-vbox, .simclr-lecture.simclr-batch-size-explorer.widget-vbox"
PROJECTOR_CSS = f"""
.simclr-lecture > :not(.widget-image) {{ zoom: {CONTROL_ZOOM:g}; }}
{_BESIDE.replace(", ", " > :first-child, ")} > :first-child {{ grid-column: 1 / -1; }}
{_BESIDE} {{
  display: grid; grid-template-columns: min-content minmax(0, 1fr); column-gap: 16px; align-items: start;
}}
.simclr-lecture.simclr-batch-size-explorer > .widget-html {{ width: 13.5em; }}
.simclr-lecture td, .simclr-lecture th {{ padding: 1px 5px !important; }}
/* p_i(j) = exp(-l) repeats l(i, j), and the figure's orange bar shows it for the anchor chosen: the column goes, the
   figure gets its width */
.simclr-lecture.simclr-temperature-explorer td:nth-child(5), .simclr-lecture.simclr-temperature-explorer th:nth-child(5) {{
  display: none;
}}
.simclr-lecture th {{ white-space: nowrap; }}
/* the augmentation pipeline's Python repr (two long lines) says what the controls above it show */
.simclr-lecture .simclr-pipeline {{ display: none; }}
body[data-voila] .jp-RenderedHTMLCommon {{ font-size: 24px; line-height: 1.35; }}
body[data-voila] .jp-RenderedHTMLCommon h1 {{ font-size: 40px; margin: 0 0 0.2em; }}
body[data-voila] .jp-RenderedHTMLCommon p {{ margin-bottom: 0.3em; }}
body[data-voila] .jp-RenderedHTMLCommon code {{ font-size: 22px; }}
body[data-voila] #rendered_cells {{ padding: 4px 20px; }}
"""


def on_projector(make_explorer, /, *args, **kwargs):
    """``make_explorer(*args, **kwargs)`` (an explorer factory, e.g. ``temperature_explorer``) at projector size."""
    use_projector_style()  # before the explorer creates its figure: its size in pixels comes from figure.dpi
    display(HTML(f'<style class="simclr-lecture-style">{PROJECTOR_CSS}</style>'))
    explorer = make_explorer(*args, **kwargs)
    explorer.add_class("simclr-lecture")
    return explorer


TITLE_SEPARATOR = " · "  # a lecture page's first line: "# English title · 中文标题"


@dataclass(frozen=True)
class LecturePage:
    path: str  # relative to the lecture folder, with "/" (a URL path)
    english: str
    chinese: str | None


def _title(nb_path: Path) -> tuple[str, str | None]:
    """(English, Chinese or None) from the first heading of the notebook's first markdown cell; the file name when
    there is no such heading (an index is never empty because one page lacks a title)."""
    try:
        cells = json.loads(nb_path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):  # unreadable or not JSON: listed by its file name, as Voila would
        return nb_path.stem, None
    first = next((c for c in cells if c.get("cell_type") == "markdown"), None)
    source = first.get("source", "") if first else ""
    lines = "".join(source).splitlines() if isinstance(source, list) else str(source).splitlines()
    heading = next((line[2:].strip() for line in lines if line.startswith("# ")), None)
    if not heading:
        return nb_path.stem, None
    english, _, chinese = heading.partition(TITLE_SEPARATOR)
    return english.strip(), chinese.strip() or None


def lecture_pages(folder: Path) -> list[LecturePage]:
    """The notebooks of ``folder`` (not its subfolders), in file-name order, with their titles."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"lecture folder {str(folder)!r} is not a directory")
    return [LecturePage(p.name, *_title(p)) for p in sorted(folder.glob("*.ipynb")) if not p.name.startswith(".")]


def lecture_page_config(page_config: dict, *, settings: dict, notebook_path: str = "", **_) -> dict:
    """Voila's ``page_config_hook`` (lecture/voila.py): on a folder's index, the pages and their titles, which the
    lecture's ``tree.html`` lists; other pages' config is returned unchanged."""
    root = settings["contents_manager"].root_dir  # the folder Voila serves (its settings' server_root_dir is "/")
    folder = Path(root) / (notebook_path or "")
    if folder.is_dir():
        page_config["simclrLecturePages"] = [asdict(p) for p in lecture_pages(folder)]
    return page_config

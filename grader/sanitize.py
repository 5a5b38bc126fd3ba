"""Show a submission without running it: sanitize what the student wrote before any browser renders it.

The Formgrader renders a student's autograded notebook into the instructor's browser, on the origin of the
instructor's Jupyter server, and `nbgrader generate_feedback` renders it into the HTML file the student opens.
nbconvert puts markdown cells (after Markdown rendering) and ``text/html`` / ``text/markdown`` outputs into those
pages verbatim, inlines SVG, runs ``application/javascript`` outputs and writes an image's ``width`` metadata into an
unquoted attribute. A submission could therefore run script in the instructor's session (read the ``_xsrf`` cookie,
rewrite grades through the Formgrader's API, read the solutions through the contents API).

``sanitize_notebook`` rewrites a notebook so that nothing in it can run or load active content:

* markdown, raw and attachment content: rendered as nbconvert renders it, cleaned with nh3 (the Rust ``ammonia``
  sanitizer; an allow-list of text, table, list and image tags, ``http(s)``/``mailto``/relative links, inline
  PNG/JPEG/GIF images only). A cell whose rendering is already clean keeps its Markdown source, so unchanged cells
  keep nbgrader's checksum ("No response." for an untouched answer); any other is replaced by its cleaned HTML.
* outputs: plain text, errors, PNG/JPEG/GIF (base64 checked) and LaTeX kept; ``text/html`` cleaned; ``text/markdown``
  rendered and cleaned into ``text/html``; JavaScript, SVG, PDF, widget views and every other rendered type dropped
  (a ``text/plain`` line says what was removed when nothing else would show). Image metadata keeps only numeric
  ``width``/``height``. Types the page never renders (the grader's values) are left for the trusted checker.
* notebook metadata: embedded widget state (which makes nbconvert load the widget JavaScript) is dropped.

``SanitizeSubmission`` is the nbconvert preprocessor (nbgrader_config.py: autograde, before the grades are saved,
and generate_feedback). ``ViewerExporter`` also cleans every rendered Markdown cell at export time (the Formgrader's
exporter, grader/formgrader_csp.py); ``FeedbackExporter``, the feedback's, adds a Content-Security-Policy meta tag
first in the page's head.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from html import unescape

import nh3
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del", "details", "div",
    "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul", "var",
})
# no id/name (DOM clobbering of the page's globals), no class/style (page-styled fake buttons), no event handlers
ATTRIBUTES = {
    "*": {"title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align", "style"},  # style: text-align only (Markdown tables' alignment)
    "th": {"colspan", "rowspan", "align", "scope", "style"},
    "col": {"span"}, "colgroup": {"span"}, "ol": {"start"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto", "data"})  # data: only for images, see _keep_attribute
IMAGE_DATA_URL = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*\Z")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
KEPT_AS_IS = frozenset({"text/plain", "text/latex"})
# what nbconvert's templates render and we cannot make safe: dropped
DROPPED = frozenset({
    "application/javascript", "text/javascript", "application/x-javascript", "image/svg+xml", "application/pdf",
    "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json", "text/vnd.mermaid",
})
BLANK_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
TAG = re.compile(r"(<[^>]*>)")
MARKDOWN_ACTIVE = re.compile(r"[\[\]()*_`~!|#+\-.=\\{}$:]")
REMOVED_NOTE = "[output not shown: {} could run code in the viewer's browser]"
UNSAFE_MARKDOWN = "[this cell could not be shown safely; open the notebook file as text to read it]"


def _keep_attribute(tag: str, attr: str, value: str) -> str | None:
    """nh3's attribute filter: a data: URL only as an inline PNG/JPEG/GIF image."""
    if attr in ("href", "src") and value.strip().lower().startswith("data:"):
        return value if tag == "img" and attr == "src" and IMAGE_DATA_URL.match(value.strip()) else None
    return value


def clean_html(html: str) -> str:
    """``html`` with everything but the allow-listed tags, attributes and URLs removed (script/style content too)."""
    return nh3.clean(html, tags=set(TAGS), attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), attribute_filter=_keep_attribute, strip_comments=True,
                     filter_style_properties={"text-align"},
                     link_rel="noopener noreferrer nofollow")


def render_markdown(source: str, attachments: dict | None = None) -> str:
    """Markdown as nbconvert's HTML exporter renders it for the Formgrader and the feedback (anchor links on)."""
    renderer = IPythonRenderer(escape=False, attachments=attachments or {}, anchor_link_text="¶")
    return MarkdownWithMath(renderer=renderer).render(source)


def inert_text(html: str) -> str:
    """``html`` with the characters Markdown acts on written as character references in its text (the same text
    in the browser), so that rendering it as Markdown again cannot make new links or blocks out of it."""
    parts = TAG.split(html)
    parts[::2] = [MARKDOWN_ACTIVE.sub(lambda m: f"&#{ord(m.group())};", text) for text in parts[::2]]
    return "".join(parts)


def sanitize_markdown(source: str, attachments: dict | None = None) -> str:
    """A Markdown source whose rendering is clean: ``source`` itself when it already is, else its cleaned HTML,
    else that HTML with inert text (each checked the same way, since viewers render it as Markdown again)."""
    try:
        cleaned = clean_html(render_markdown(source, attachments))
        for candidate in (source, cleaned, inert_text(cleaned)):
            if is_clean(render_markdown(candidate, attachments)):
                return candidate
    except Exception:  # noqa: BLE001 - e.g. a reference to a missing attachment: nbconvert cannot render it
        pass
    return UNSAFE_MARKDOWN


def _text_as_nh3_writes_it(html: str) -> str:
    """``html`` with its text's character references written as nh3 writes them (the same DOM in a browser)."""
    parts = TAG.split(html)
    parts[::2] = [unescape(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                  .replace("\xa0", "&nbsp;") for text in parts[::2]]
    return "".join(parts)


def is_clean(html: str) -> bool:
    """True when cleaning ``html`` would remove nothing: every tag, attribute and URL in it is allowed."""
    return clean_html(html) == _text_as_nh3_writes_it(html)


def _valid_base64(data: object) -> bool:
    if isinstance(data, list):
        data = "".join(data)
    if not isinstance(data, str) or not re.fullmatch(r"[A-Za-z0-9+/=\s]*", data):
        return False
    try:
        base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _text(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _clean_metadata(metadata: dict) -> dict:
    """Only numeric width/height per image type survive (nbconvert writes them into an unquoted attribute)."""
    kept = {}
    for mime in IMAGE_TYPES:
        sizes = metadata.get(mime) if isinstance(metadata, dict) else None
        if isinstance(sizes, dict):
            nums = {k: v for k, v in sizes.items() if k in ("width", "height")
                    and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 100000}
            if nums:
                kept[mime] = nums
    return kept


@dataclass
class Report:
    """What sanitizing changed, for the log."""
    markdown_cells: int = 0
    outputs: int = 0
    dropped: set[str] = field(default_factory=set)


def sanitize_output(output: dict, report: Report) -> dict:
    """One code-cell output made safe to render (stream and error outputs are escaped by every template)."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return output
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    kept, removed = {}, []
    for mime, value in data.items():
        if mime in KEPT_AS_IS:
            kept[mime] = _text(value)
        elif mime in IMAGE_TYPES:
            if _valid_base64(value):
                kept[mime] = _text(value)
            else:
                removed.append(mime)
        elif mime == "text/html":
            kept[mime] = clean_html(_text(value))
        elif mime == "text/markdown":
            kept.setdefault("text/html", clean_html(render_markdown(_text(value))))
            removed.append(mime)
        elif mime in DROPPED or mime.startswith("text/") or mime.startswith("image/") or "javascript" in mime:
            removed.append(mime)
        else:
            kept[mime] = value  # never rendered by the templates (e.g. the grader's values, read by the trusted side)
    if removed:
        report.outputs += 1
        report.dropped.update(removed)
        if not any(m in kept for m in (*KEPT_AS_IS, *IMAGE_TYPES, "text/html")):
            kept["text/plain"] = REMOVED_NOTE.format(", ".join(sorted(removed)))
    clean = dict(output, data=kept, metadata=_clean_metadata(output.get("metadata", {})))
    clean.pop("svg_filename", None)
    return clean


def sanitize_notebook(nb) -> Report:
    """Sanitize ``nb`` (an nbformat NotebookNode) in place; return what changed."""
    from nbformat import from_dict

    report = Report()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        attachments = {name: {m: v for m, v in att.items() if m in IMAGE_TYPES and _valid_base64(v)}
                       for name, att in (cell.get("attachments") or {}).items() if isinstance(att, dict)}
        # a removed one becomes a blank image: nbconvert fails on a reference to a missing or empty attachment
        attachments = {name: att or {"image/png": BLANK_PNG} for name, att in attachments.items()}
        if "attachments" in cell:
            cell["attachments"] = from_dict(attachments)
        if cell.cell_type in ("markdown", "raw"):
            safe = sanitize_markdown(cell.source, attachments) if cell.cell_type == "markdown" \
                else clean_html(cell.source)
            if safe != cell.source:
                cell.source = safe
                report.markdown_cells += 1
        elif cell.cell_type == "code":
            cell.outputs = [from_dict(sanitize_output(o, report)) for o in cell.get("outputs", [])]
    return report


class SanitizeSubmission(Preprocessor):
    """nbconvert/nbgrader preprocessor: ``sanitize_notebook`` on the notebook being autograded or rendered."""

    enabled = Bool(True, help="on wherever it is listed (nbconvert's preprocessors are off by default)").tag(config=True)

    def preprocess(self, nb, resources):
        report = sanitize_notebook(nb)
        if report.markdown_cells or report.outputs:
            who = resources.get("nbgrader", {}).get("student", "")
            self.log.warning("Sanitized %s: %d markdown/raw cell(s) and %d output(s) held active content (%s)",
                             who or "the notebook", report.markdown_cells, report.outputs,
                             ", ".join(sorted(report.dropped)) or "HTML")
        return nb, resources


def feedback_csp(mathjax_url: str) -> str:
    """The feedback page's policy: no script but MathJax's own folder, no network but MathJax, no forms, no frames."""
    mathjax = mathjax_url.split("?")[0].rsplit("/", 1)[0] + "/" if mathjax_url.startswith("https://") else ""
    return ("default-src 'none'; "
            f"script-src {mathjax}; style-src 'unsafe-inline' {mathjax}; img-src data: {mathjax}; "
            f"font-src data: {mathjax}; base-uri 'none'; form-action 'none'").replace(" ;", ";")


class ViewerExporter(HTMLExporter):
    """HTML export of a submission: every rendered Markdown cell is cleaned again at export time, whatever the
    notebook file holds (the Formgrader's exporter in instructor mode, see grader.formgrader_csp)."""

    @pass_context
    def markdown2html(self, context, source):
        return clean_html(super().markdown2html(context, source))


class FeedbackExporter(ViewerExporter):
    """The feedback's HTML: a ViewerExporter that puts a Content-Security-Policy meta tag first in the head, so that
    a script that got through would still not run when the student opens the file."""

    def from_notebook_node(self, nb, resources=None, **kw):
        html, resources = super().from_notebook_node(nb, resources, **kw)
        meta = f'<meta http-equiv="Content-Security-Policy" content="{feedback_csp(self.mathjax_url)}">'
        head = html.find("<head>")
        if head < 0:
            raise ValueError("feedback template produced no <head>; cannot add its Content-Security-Policy")
        cut = head + len("<head>")
        return html[:cut] + "\n" + meta + html[cut:], resources

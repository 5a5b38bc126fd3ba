"""Jupyter server extension for instructor mode: the Formgrader's submission views get a Content-Security-Policy.

nbgrader's Formgrader renders a student's autograded notebook into a page of the instructor's own Jupyter origin
(``/formgrader/submissions/<id>/``), next to the grading controls, and serves the files of the student's folder
under the same path. ``grader.sanitize`` cleans what the submission wrote; this extension is the second, independent
layer, so that markup that got through (an autograded notebook made before sanitizing, a sanitizer bug) still cannot
run script with the instructor's cookies.

* The submission page: scripts only from the Formgrader's static folder and MathJax's, plus the page's own inline
  scripts and ``onclick`` handlers, allowed by their SHA-256. Those are taken only from the template's parts of the
  page: everything before the notebook container and after the template's last element, where nothing the
  submission wrote can appear. Any script or handler inside the rendered notebook is blocked by the browser. No
  frames, objects, forms, ``<base>``, and no connections but to this server (the grade API the page uses).
* Every other response under ``/formgrader/submissions/`` (the student's files): ``sandbox`` with no scripts, so an
  HTML or SVG file in a submission folder is inert even when opened directly.
* The Formgrader's HTML exporter is replaced by ``grader.sanitize.ViewerExporter`` with the same settings: the
  notebook is sanitized again, and every rendered Markdown cell cleaned, each time a page is rendered.

Enabled in ``jupyter_config/instructor/jupyter_server_config.json``; other Jupyter pages are untouched.
"""

from __future__ import annotations

import base64
import hashlib
import re

from tornado.web import OutputTransform

PAGE_START = b'id="notebook-container"'  # nbgrader's formgrade template: the notebook is rendered after this
PAGE_END = b'<div id="statusmessage"></div>'  # ... and before the template's last element
INLINE_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
INLINE_HANDLER = re.compile(rb"""\son[a-z]+\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
FILES_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def _sha(source: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source).digest()).decode() + "'"


def template_parts(html: bytes) -> list[bytes] | None:
    """The parts of a submission page that come from the template alone, or None when it is not one."""
    start, end = html.find(PAGE_START), html.rfind(PAGE_END)
    if start < 0 or end < start:
        return None
    return [html[:start], html[end:]]


def page_policy(html: bytes, origin: str, base_url: str, mathjax_dir: str) -> str:
    """The policy of one rendered submission page (``origin``: scheme://host[:port] of the request)."""
    hashes, handlers = [], []
    for part in template_parts(html) or []:
        for attrs, body in INLINE_SCRIPT.findall(part):
            if b"src=" not in attrs.lower():
                hashes.append(_sha(body))
        for double, single in INLINE_HANDLER.findall(part):
            handlers.append(_sha(double or single))
    static = f"{origin}{base_url.rstrip('/')}/formgrader/static/"
    scripts = " ".join(dict.fromkeys([static, mathjax_dir, *hashes] + (["'unsafe-hashes'", *handlers] if handlers else [])))
    return ("default-src 'none'; "
            f"script-src {scripts}; "
            f"style-src 'self' 'unsafe-inline' {mathjax_dir}; img-src 'self' data: {mathjax_dir}; "
            f"font-src 'self' data: {mathjax_dir}; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-src 'none'; object-src 'none'; frame-ancestors 'self'"
            ).replace("  ", " ")


def _mathjax_dir(url: str) -> str:
    """MathJax's folder on its CDN (scripts there may load each other), or nothing for a local/empty URL."""
    return url.split("?")[0].rsplit("/", 1)[0] + "/" if url.startswith("https://") else ""


def make_transform(base_url: str, mathjax_url: str):
    """An OutputTransform class that adds the policies to responses under ``<base_url>formgrader/submissions/``."""
    prefix = base_url.rstrip("/") + "/formgrader/submissions/"
    page = re.compile(re.escape(prefix) + r"[^/]+/?\Z")
    mathjax_dir = _mathjax_dir(mathjax_url)

    class SubmissionPolicy(OutputTransform):
        def __init__(self, request):
            super().__init__(request)
            self.request = request

        def transform_first_chunk(self, status_code, headers, chunk, finishing):
            path = self.request.path
            if path.startswith(prefix) and not path.startswith(prefix + "components/"):
                if page.match(path):
                    origin = f"{self.request.protocol}://{self.request.host}"
                    # a page not rendered in one piece gets no inline hashes: safe, if less functional
                    policy = page_policy(chunk if finishing else b"", origin, base_url, mathjax_dir)
                else:
                    policy = FILES_POLICY
                headers["Content-Security-Policy"] = policy
                headers["X-Content-Type-Options"] = "nosniff"
            return status_code, headers, chunk

    return SubmissionPolicy


def _use_viewer_exporter(web_app) -> None:
    """Swap the Formgrader's exporter (set when its extension loaded) for the sanitizing one, same settings."""
    from grader.sanitize import SanitizeSubmission, ViewerExporter

    old = web_app.settings.get("nbgrader_exporter")
    if old is not None and not isinstance(old, ViewerExporter):
        new = ViewerExporter(config=old.config)
        new.register_preprocessor(SanitizeSubmission, enabled=True)
        web_app.settings["nbgrader_exporter"] = new


def _jupyter_server_extension_points():
    return [{"module": "grader.formgrader_csp"}]


def _load_jupyter_server_extension(serverapp) -> None:
    from nbconvert.exporters import HTMLExporter

    web_app = serverapp.web_app
    base_url = web_app.settings.get("base_url", "/")
    mathjax_url = HTMLExporter(config=serverapp.config).mathjax_url
    web_app.transforms.insert(0, make_transform(base_url, mathjax_url))  # before compression sees the body
    serverapp.log.info("grader.formgrader_csp: Content-Security-Policy on %sformgrader/submissions/", base_url)


async def _start_jupyter_server_extension(serverapp) -> None:
    # extensions load in alphabetical order: the Formgrader's exporter exists once every extension has loaded
    _use_viewer_exporter(serverapp.web_app)

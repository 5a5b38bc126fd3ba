"""Voila's settings for the lecture pages: ``make lecture`` puts this folder first on JUPYTER_CONFIG_PATH.

- The index (``share/voila/templates/simclr-lecture/tree.html``) lists every page by its English and Chinese title,
  which ``lecture_page_config`` reads from the notebooks themselves.
- Kernels of closed pages are shut down: Voila asks for it when a page is left (its ``beforeunload`` handler), and
  a kernel that no page is connected to any more (a browser that quit, a laptop that slept) is culled after
  ``cull_idle_timeout`` seconds idle. A page that is open keeps its kernel however long it idles (cull_connected
  False).
- The kernels' traffic is encrypted (CurveZMQ keys provisioned by the kernel manager): ipykernel otherwise warns
  of plain TCP in the terminal for every page opened.
"""

import os
from pathlib import Path

from simclr_core.teaching.lecture import lecture_page_config

c = get_config()  # noqa: F821 (traitlets provides it to a config file)

# Voila looks for templates only in Jupyter's data folders: the lecture's template is in lecture/share/
SHARE = Path(__file__).resolve().parent.parent / "share"
os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(SHARE), os.environ.get("JUPYTER_PATH")]))
c.VoilaConfiguration.template = "simclr-lecture"
c.VoilaConfiguration.classic_tree = True  # the template's tree.html (the other tree page is a JupyterLab app)
c.VoilaConfiguration.page_config_hook = lecture_page_config

c.MappingKernelManager.cull_idle_timeout = 300
c.MappingKernelManager.cull_interval = 30
c.MappingKernelManager.cull_connected = False
c.KernelManager.transport_encryption = "auto"
c.Voila.tornado_settings = {"ws_ping_timeout": 30000}  # = the ping interval: tornado caps it there with a warning

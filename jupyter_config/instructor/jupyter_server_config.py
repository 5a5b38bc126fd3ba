# Instructor mode, read with jupyter_server_config.json from this folder: the repository root on the server's
# import path, so that the server extension grader.formgrader_csp (enabled in the .json) can be imported; it puts a
# Content-Security-Policy on the Formgrader's submission views (see that module).
import os
import sys

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _root not in sys.path:
    sys.path.insert(0, _root)

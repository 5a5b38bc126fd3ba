# Student mode, read with jupyter_server_config.json from this folder: the repository root first on the server's
# import path, so that the server extension simclr_core.teaching.validate_button (enabled in the .json: the Validate
# button's answer) comes from this checkout, wherever the environment's install of simclr_core points.
import os
import sys

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _root not in sys.path:
    sys.path.insert(0, _root)

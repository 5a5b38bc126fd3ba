"""``python -m simclr_core``: the ``simclr`` command (see simclr_core.cli)."""

import sys

from .cli import main

sys.exit(main())

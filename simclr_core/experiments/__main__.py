"""``python -m simclr_core.experiments NAME ... [--preset P] [--out notebooks/results]``."""

from . import main

main()

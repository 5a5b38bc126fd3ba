"""Training: the recipe and its presets (``config``), the schedule and optimizers (``schedule``), one step's pieces
(``step``), the one loop and its callbacks (``loop``, ``callbacks``), checkpoints, the time budget, torchrun, the
supervised baselines (``supervised``) and run folders (``runs``: ``pretrain``, ``load_run``, ``probe_run``)."""

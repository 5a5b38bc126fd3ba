"""Networks and losses: NT-Xent (``loss``), f and g (``models``), the speed-only layers (``fast_layers``), and
negatives beyond the batch (``queue``: a FIFO queue, a momentum encoder, a PIRL-style memory bank)."""

"""Evaluating frozen representations: features (``features``), kNN and the linear probe (``metrics``), and the
health of an embedding (``diagnostics``)."""

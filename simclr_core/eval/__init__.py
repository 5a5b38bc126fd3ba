"""Evaluating frozen representations: features (``features``), kNN and the linear probe (``metrics``), the one
protocol every probe of the workbook uses (``probe``), and the health of an embedding (``diagnostics``)."""

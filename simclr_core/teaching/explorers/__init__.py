"""Interactive explorers for the workbook (ipywidgets + matplotlib, work headless too).

- ``temperature_explorer``: drag tau, watch per-anchor losses, the softmax of an anchor, loss vs tau.
- ``batch_size_explorer``: slide N, watch 2N-2 negatives, loss, gradient norm, log(2N-1).
- ``augmentation_explorer``: toggle SimCLR's augmentations, see views of a few images.

Every explorer is an ``ipywidgets.VBox`` whose ``state`` dict holds the numbers it shows; its
callbacks are plain methods, so tests drive it by setting ``slider.value`` without a browser.
"""

from .augmentation import AugmentationExplorer, augmentation_explorer
from .batch_size import BatchSizeExplorer, batch_size_explorer
from .temperature import TemperatureExplorer, temperature_explorer

__all__ = [
    "temperature_explorer", "batch_size_explorer", "augmentation_explorer",
    "TemperatureExplorer", "BatchSizeExplorer", "AugmentationExplorer",
]

"""Data: datasets in memory (``datasets``, CIFAR batches read by ``cifar_pickle``), the SimCLR augmentation per image
(``augment``) and batched on the training device (``fast_augment``, with its operators in ``batch_crop`` and
``batch_colour``), Figure 5's operators (``fig5``), and synthetic CIFAR-format data (``synthetic``)."""

from .augment import AugmentConfig
from .datasets import DATASETS, FACTS, DatasetUnavailable, ImageDataset, facts, load_dataset

__all__ = ["AugmentConfig", "DATASETS", "FACTS", "DatasetUnavailable", "ImageDataset", "facts", "load_dataset"]

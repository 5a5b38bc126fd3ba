"""Data: datasets in memory (``datasets``), the SimCLR augmentation per image (``augment``) and batched on the
training device (``fast_augment``), Figure 5's operators (``fig5``), and synthetic CIFAR-format data (``synthetic``)."""

from .augment import AugmentConfig
from .datasets import DATASETS, FACTS, DatasetUnavailable, ImageDataset, facts, load_dataset

__all__ = ["AugmentConfig", "DATASETS", "FACTS", "DatasetUnavailable", "ImageDataset", "facts", "load_dataset"]

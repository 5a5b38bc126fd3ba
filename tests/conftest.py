"""Fixtures shared by several test modules."""

import pytest

from simclr_core.data.synthetic import write_fake_cifar10


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """A 200 + 60 image CIFAR-format folder (class-structured synthetic images)."""
    return write_fake_cifar10(tmp_path_factory.mktemp("cifar"), n_train=200, n_test=60, seed=0)

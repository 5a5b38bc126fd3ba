"""The numbers of the seed exercise set (shared/seeds/000, Question 1), used by the worked problems.

Six embeddings z_1..z_6 of N = 3 images, positive pairs (z_1, z_2), (z_3, z_4), (z_5, z_6), given as a
cosine-similarity matrix with "-" (self-similarity, not needed) on the diagonal, stored here as NaN.
Indices in code are 0-based: the exercise's z_1 is row 0.
"""

import math

import torch

from ..nn.loss import positive_pairs

SEED_TAU = 0.1
nan = math.nan

SEED_S = torch.tensor(
    [
        [nan, 0.95, 0.10, 0.05, 0.02, 0.00],
        [0.95, nan, 0.12, 0.07, 0.03, 0.01],
        [0.10, 0.12, nan, 0.90, 0.06, 0.04],
        [0.05, 0.07, 0.90, nan, 0.08, 0.02],
        [0.02, 0.03, 0.06, 0.08, nan, 0.93],
        [0.00, 0.01, 0.04, 0.02, 0.93, nan],
    ],
    dtype=torch.float64,
)  # (6, 6)

SEED_POSITIVES = positive_pairs(3, layout="adjacent")  # (6,) tensor([1, 0, 3, 2, 5, 4])

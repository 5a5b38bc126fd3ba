"""The inputs on which graded functions are evaluated, shared by the grading kernel and the trusted checker.

Both sides build them from the same seeds, so the checker never has to trust inputs reported by the kernel.
Matrices are nested lists of floats (the kernel turns them into tensors for the student's functions); the
diagonal holds NaN, as in the problem sheet, where self-similarity is "-".
"""

from __future__ import annotations

import math
import random


def symmetric_matrix(n: int, seed: int) -> list[list[float]]:
    """A random (n, n) symmetric similarity matrix with entries in [-1, 1] and NaN on the diagonal."""
    rng = random.Random(seed)
    m = [[math.nan] * n for _ in range(n)]
    for i in range(n):
        for k in range(i + 1, n):
            m[i][k] = m[k][i] = round(rng.uniform(-1.0, 1.0), 6)
    return m


def halves(n: int) -> list[int]:
    """Pairing of rows [z1 rows, z2 rows]: row k <-> row k + n/2."""
    return [(k + n // 2) % n for k in range(n)]


def adjacent(n: int) -> list[int]:
    """Pairing of interleaved rows (z_1, z_2), (z_3, z_4), ...: 0 <-> 1, 2 <-> 3, ..."""
    return [k ^ 1 for k in range(n)]


# anchor_losses(S, positives, tau) is evaluated on these (2N, pairing, tau, seed) cases
ANCHOR_CASES = [(2, "halves", 0.5, 11), (4, "adjacent", 0.05, 12), (8, "halves", 5.0, 13), (6, "adjacent", 0.2, 14)]

# nt_xent_vectorised(z1, z2, tau) is evaluated (value and gradients) on these (N, D, tau, seed) cases
NT_XENT_CASES = [(1, 8, 0.5, 0), (2, 5, 0.1, 1), (7, 16, 5.0, 2), (32, 64, 0.07, 3), (16, 3, 1.0, 4)]

# loss_and_grad_norm(z1, z2, tau) of problem set 3 is evaluated on these (N, D, tau, seed) cases: one pair (loss and
# gradient 0), then batches whose gradient is not 0, so that only a real backward pass gives z1.grad
GRAD_CASES = [(1, 64, 0.3, 3), (4, 16, 0.5, 5), (8, 32, 0.2, 6)]

# the temperatures at which denominator_terms / positive_share are evaluated for every anchor
TERMS_TAUS = [0.2, 1.0, 3.0]
SHARE_TAU = 0.7

RATIO_CASES = [(0.8, 0.3, 0.2), (0.8, 0.3, 1.0), (0.9, -0.5, 0.05), (0.1, 0.6, 2.0)]
COUNT_NS = [1, 2, 3, 7, 64, 1999]
COLLAPSE_NS = [1, 2, 5, 64]
MI_CASES = [(1, 0.0), (2, 0.3), (128, 2.0), (4096, 5.5)]
QUEUE_CASES = [([[1, 2]], 5), ([[0, 1, 2], [3, 4, 5], [6, 7]], 5), ([[5, 6, 7, 8]], 2), ([], 3),
               ([[1], [2], [3], [4]], 1), ([[9, 8], [], [7, 6, 5]], 4), ([[1, 2, 3]], 3)]
NEGATIVE_CASES = [(3, 0), (1, 0), (1, 10), (256, 65536), (17, 3)]


def anchor_case(n: int, pairing: str, seed: int) -> tuple[list[list[float]], list[int]]:
    return symmetric_matrix(n, seed), (halves(n) if pairing == "halves" else adjacent(n))


def nt_xent_inputs(N: int, D: int, seed: int):
    """(z1, z2) float32 tensors of shape (N, D); z1 has a larger scale so that a missing normalisation shows."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)


def alignment_inputs():
    """(z1, z2) pairs on which alignment(z1, z2) is evaluated."""
    import torch

    g = torch.Generator().manual_seed(0)
    e = torch.eye(4)
    return [(e, e.roll(1, dims=0)), (e, -5 * e), (torch.randn(50, 16, generator=g), torch.randn(50, 16, generator=g)),
            (torch.randn(5, 8, generator=g), 2 * torch.randn(5, 8, generator=g))]


def erank_inputs():
    import torch

    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    rot = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    z = q[:, :2] @ torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64)) @ rot  # (6, 2) singular values 3, 1
    return [torch.eye(3), torch.ones(10, 4), z, torch.eye(8)[:, :5] * 2.5]


def knn_inputs():
    """(train_z, train_y, test_z, k) cases for knn_predict."""
    import torch

    cases = []
    for seed, k, classes in [(0, 1, 2), (1, 5, 3), (2, 11, 4)]:
        g = torch.Generator().manual_seed(seed)
        tz, ty = torch.randn(200, 8, generator=g), torch.randint(0, classes, (200,), generator=g)
        cases.append((tz, ty, torch.randn(60, 8, generator=g), k))
    return cases

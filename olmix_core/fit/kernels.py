"""The Matérn-5/2 kernel of the GP regressor, fused and compiled (numba).

Prediction over many candidates is one kernel block (candidates × training rows) per batch; in numpy its
elementwise part (sqrt, exp, polynomial) is six passes over the block, a compiled loop is one, on all cores.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_S5 = math.sqrt(5.0)


@njit(cache=True, nogil=True, parallel=True)
def _matern_rows(G, aa, bb, sf2, out):  # type: ignore[no-untyped-def]
    for i in prange(G.shape[0]):
        for j in range(G.shape[1]):
            d2 = max(aa[i] + bb[j] - 2.0 * G[i, j], 0.0)
            r = math.sqrt(d2)
            out[i, j] = sf2 * (1.0 + _S5 * r + 5.0 * d2 / 3.0) * math.exp(-_S5 * r)


def matern52_block(A: np.ndarray, B: np.ndarray, ls: np.ndarray, sf2: float) -> np.ndarray:
    """k(A_i, B_j) for scaled inputs a = A / ls, b = B / ls: distances from one matrix product, the rest fused."""
    a, b = A / ls, B / ls
    G = a @ b.T
    out = np.empty_like(G)
    _matern_rows(G, (a * a).sum(1), (b * b).sum(1), float(sf2), out)
    return out

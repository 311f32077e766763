"""Compiled prediction of LightGBM tree ensembles (numba), for the proposers' two access patterns.

Optimisers predict a few dozen rows thousands of times (LightGBM's per-call overhead, ~1 ms per model, dominated),
and the simulation proposer predicts a million rows once (LightGBM walks every tree per row through its C API).
Here the trees of every model in a fit become flat node arrays, walked by one compiled loop over blocks of rows ×
trees: a block of rows stays in cache while each tree visits it, and blocks run on all cores for large batches.
Exact for numerical `<=` splits without missing-value handling (what mixtures give); `TreeTable.from_booster`
returns None for any other tree, and callers fall back to LightGBM itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

_BLOCK = 64  # rows per block: a block's rows stay in L1 while every tree walks them
_PARALLEL_ROWS = 4096  # from this many rows on, blocks run on all cores


@njit(cache=True, nogil=True)
def _walk(X, feat, thr, left, value, roots, depth, group, out, lo, hi, nodes):  # type: ignore[no-untyped-def]
    """Rows lo..hi through every tree, one tree level at a time for all rows of the block: branch-free steps
    (right child = left + 1, leaves loop onto themselves) whose rows are independent, so they overlap."""
    for t in range(roots.shape[0]):
        r = roots[t]
        for i in range(lo, hi):
            nodes[i - lo] = r
        for _ in range(depth[t]):
            for i in range(lo, hi):
                nd = nodes[i - lo]
                nodes[i - lo] = left[nd] + (X[i, feat[nd]] > thr[nd])
        g = group[t]
        for i in range(lo, hi):
            out[i, g] += value[nodes[i - lo]]


@njit(cache=True, nogil=True)
def _serial(X, feat, thr, left, value, roots, depth, group, out):  # type: ignore[no-untyped-def]
    n = X.shape[0]
    nodes = np.empty(_BLOCK, np.int64)
    for b in range(0, n, _BLOCK):
        _walk(X, feat, thr, left, value, roots, depth, group, out, b, min(n, b + _BLOCK), nodes)


@njit(cache=True, nogil=True, parallel=True)
def _parallel(X, feat, thr, left, value, roots, depth, group, out):  # type: ignore[no-untyped-def]
    n = X.shape[0]
    for k in prange((n + _BLOCK - 1) // _BLOCK):
        nodes = np.empty(_BLOCK, np.int64)
        b = k * _BLOCK
        _walk(X, feat, thr, left, value, roots, depth, group, out, b, min(n, b + _BLOCK), nodes)


class TreeTable:
    """The trees of one or more LightGBM models as flat node arrays: node i tests `X[:, feat[i]] > thr[i]` and goes
    to `left[i]` (+1 when true); a leaf has threshold +inf and `left` pointing to itself, so every tree can be
    walked for its `depth` levels without a branch. `group[t]` is the output column (model) of tree t."""

    def __init__(self, feat: np.ndarray, thr: np.ndarray, left: np.ndarray, value: np.ndarray, roots: np.ndarray,
                 depth: np.ndarray, group: np.ndarray, n_groups: int) -> None:
        self.feat, self.thr, self.left, self.value = feat, thr, left, value
        self.roots, self.depth, self.group, self.n_groups = roots, depth, group, n_groups

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @classmethod
    def from_booster(cls, booster: Any) -> TreeTable | None:
        """One model's trees; None when a split is not a plain numerical `<=` split (categorical, missing values)."""
        feat: list[int] = []
        thr: list[float] = []
        left: list[int] = []
        value: list[float] = []
        roots: list[int] = []
        depth: list[int] = []

        def new_leaf() -> int:
            i = len(feat)
            feat.append(0), thr.append(math.inf), left.append(i), value.append(0.0)
            return i

        for tree in booster.dump_model()["tree_info"]:
            roots.append(new_leaf())
            stack = [(tree["tree_structure"], roots[-1], 0)]
            deepest = 0
            while stack:
                node, i, level = stack.pop()
                deepest = max(deepest, level)
                if "split_feature" not in node:
                    value[i] = float(node.get("leaf_value", 0.0))
                    continue
                if node.get("decision_type") != "<=" or node.get("missing_type", "None") != "None":
                    return None
                feat[i], thr[i] = int(node["split_feature"]), float(node["threshold"])
                left[i] = new_leaf()
                new_leaf()  # the right child, at left + 1
                stack += [(node["left_child"], left[i], level + 1), (node["right_child"], left[i] + 1, level + 1)]
            depth.append(deepest)
        return cls(np.array(feat, np.int64), np.array(thr), np.array(left, np.int64), np.array(value),
                   np.array(roots, np.int64), np.array(depth, np.int64), np.zeros(len(roots), np.int64), 1)

    @classmethod
    def concat(cls, tables: list[TreeTable]) -> TreeTable:
        """Several models' tables as one; model k's trees write column k."""
        offsets = np.cumsum([0] + [len(t.feat) for t in tables[:-1]])
        return cls(
            np.concatenate([t.feat for t in tables]),
            np.concatenate([t.thr for t in tables]),
            np.concatenate([t.left + o for t, o in zip(tables, offsets)]),
            np.concatenate([t.value for t in tables]),
            np.concatenate([t.roots + o for t, o in zip(tables, offsets)]),
            np.concatenate([t.depth for t in tables]),
            np.concatenate([np.full(t.n_trees, k, np.int64) for k, t in enumerate(tables)]),
            len(tables),
        )

    def predict_groups(self, X: np.ndarray) -> np.ndarray:
        """(rows × models): the sum of each model's tree outputs."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        out = np.zeros((len(X), self.n_groups))
        kernel = _parallel if len(X) >= _PARALLEL_ROWS else _serial
        kernel(X, self.feat, self.thr, self.left, self.value, self.roots, self.depth, self.group, out)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_groups(X)[:, 0]

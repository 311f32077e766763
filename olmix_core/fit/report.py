"""Fit diagnostics and plots (matplotlib, Agg backend, imported on use)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from olmix_core.fit.fitting import FittedModels


def interaction_matrix(
    models: FittedModels, X: np.ndarray, Y: np.ndarray, step: float = 0.1, rows: int = 256, seed: int = 0
) -> np.ndarray:
    """(domains × metrics) effect of moving `step` of each training mixture to one domain, averaged over (up to
    `rows`) training mixtures, in units of the metric's standard deviation. Model-based, so it shows what the
    proposer sees; negative means the domain lowers the metric."""
    X = np.asarray(X, float)
    if len(X) > rows:
        X = X[np.random.default_rng(seed).choice(len(X), rows, replace=False)]
    n, d = X.shape
    moved = (1 - step) * np.repeat(X, d, axis=0) + step * np.tile(np.eye(d), (n, 1))
    base = models.predict(X)
    after = models.predict(moved).reshape(n, d, -1)
    sd = Y.std(0)
    sd[sd == 0] = 1.0
    return (after - base[:, None, :]).mean(0) / sd[None, :]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(s: str, n: int = 28) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def plot_pred_vs_actual(models: FittedModels, Y: np.ndarray, path: Path) -> None:
    """Cross-validated prediction vs observed value, one panel per metric. Beyond 30 metrics the panels are cells
    of one bare axes (one scatter, one line collection): 110 matplotlib subplots took seconds to draw."""
    ms = models.metrics
    if len(ms) > 30:
        _pred_vs_actual_grid(models, Y, path)
        return
    plt = _plt()
    cols = math.ceil(math.sqrt(len(ms)))
    rows = math.ceil(len(ms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for k, m in enumerate(ms):
        ax = axes[k // cols][k % cols]
        f = models.fits[m]
        y = Y[:, k]
        if f.oof is None:
            ax.text(0.5, 0.5, "no CV", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.scatter(y, f.oof, s=6, alpha=0.6)
            lo, hi = float(min(y.min(), f.oof.min())), float(max(y.max(), f.oof.max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_title(f"{_short(m)}\n{_short(f.chosen, 36)}  ρ={_cv_rho(models, m):.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("actual", fontsize=7)
        ax.set_ylabel("predicted (CV)", fontsize=7)
    for k in range(len(ms), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _cv_rho(models: FittedModels, metric: str) -> float:
    f = models.fits[metric]
    return f.scores.get(f.chosen, {}).get("spearman", float("nan"))


def _pred_vs_actual_grid(models: FittedModels, Y: np.ndarray, path: Path) -> None:
    """Many metrics: each metric's points scaled into its own unit cell of one axes (a 0.8 × 0.8 square with its
    diagonal and frame), the metric, model and CV ρ above it."""
    from matplotlib.collections import LineCollection

    plt = _plt()
    ms = models.metrics
    cols = math.ceil(math.sqrt(len(ms)))
    rows = math.ceil(len(ms) / cols)
    fig = plt.figure(figsize=(1.7 * cols, 1.7 * rows))
    ax = fig.add_axes((0.005, 0.005, 0.99, 0.955))
    xs, ys, segs = [], [], []
    for k, m in enumerate(ms):
        cx, cy = k % cols + 0.1, rows - 1 - k // cols + 0.05
        square = [(cx, cy), (cx + 0.8, cy), (cx + 0.8, cy + 0.8), (cx, cy + 0.8), (cx, cy)]
        segs += [square[i : i + 2] for i in range(4)]
        f = models.fits[m]
        label = f"{_short(m)}\n{_short(f.chosen, 36)}  ρ={_cv_rho(models, m):.3f}"
        ax.text(cx + 0.4, cy + 0.82, label, ha="center", va="bottom", fontsize=5)
        if f.oof is None:
            ax.text(cx + 0.4, cy + 0.4, "no CV", ha="center", va="center", fontsize=6)
            continue
        y = Y[:, k]
        lo, hi = float(min(y.min(), f.oof.min())), float(max(y.max(), f.oof.max()))
        span = (hi - lo) or 1.0
        xs.append(cx + 0.8 * (y - lo) / span)
        ys.append(cy + 0.8 * (f.oof - lo) / span)
        segs.append([(cx, cy), (cx + 0.8, cy + 0.8)])
    if xs:
        ax.scatter(np.concatenate(xs), np.concatenate(ys), s=3, alpha=0.6, linewidths=0)
    ax.add_collection(LineCollection(segs, colors="k", linewidths=0.5))
    ax.set_xlim(0, cols)
    ax.set_ylim(0, rows)
    ax.axis("off")
    fig.suptitle("CV prediction (y) vs actual (x) per metric", fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_interactions(matrix: np.ndarray, domains: list[str], metrics: list[str], path: Path) -> None:
    """Margins sized from the longest labels (tight_layout would draw the 100+ rotated labels twice)."""
    plt = _plt()
    ylab, xlab = [_short(d) for d in domains], [_short(m) for m in metrics]
    char = 7 / 72 * 0.6  # inches per character at 7 pt
    left, bottom = 0.3 + char * max(map(len, ylab)), 0.3 + char * max(map(len, xlab)) * 0.87  # sin 60°
    w, h = max(5.0, 0.45 * len(metrics) + 3), max(4.0, 0.3 * len(domains) + 2) + bottom
    fig = plt.figure(figsize=(w, h))
    ax = fig.add_axes((left / w, bottom / h, 1 - (left + 1.4) / w, 1 - (bottom + 0.4) / h))
    cax = fig.add_axes((1 - 1.2 / w, bottom / h, 0.15 / w, 1 - (bottom + 0.4) / h))
    v = float(np.abs(matrix).max()) or 1.0
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
    ax.set_yticks(range(len(domains)), ylab, fontsize=7)
    ax.set_xticks(range(len(metrics)), xlab, fontsize=7, rotation=60, ha="right", rotation_mode="anchor")
    fig.colorbar(im, cax=cax, label="Δ metric (std) when 10% moves to the domain")
    ax.set_title("domain × metric interaction (fitted models)", fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_weights(domains: list[str], series: dict[str, np.ndarray], path: Path) -> None:
    """Grouped bars per domain: prior, proposal, and the reference when given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(domains) + 2), 4.0))
    width = 0.8 / len(series)
    pos = np.arange(len(domains))
    for i, (name, w) in enumerate(series.items()):
        ax.bar(pos + (i - (len(series) - 1) / 2) * width, w, width, label=name)
    ax.set_xticks(pos, [_short(d) for d in domains], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("weight")
    ax.legend(fontsize=8)
    ax.set_title("proposed vs prior weights", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_pareto(
    metrics: list[str], reference: np.ndarray, proposed: np.ndarray, signs: np.ndarray, tol: float, path: Path
) -> None:
    """Per metric: predicted change vs the reference (negative = better), with the allowed tolerance."""
    plt = _plt()
    delta = (proposed - reference) * signs
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(metrics) + 2), 4.0))
    ax.bar(range(len(metrics)), delta, color=["tab:green" if v <= 0 else "tab:orange" for v in delta])
    ax.axhline(tol, color="k", ls="--", lw=0.8, label=f"tol = {tol:g}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(metrics)), [_short(m) for m in metrics], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("proposed − reference (worse ↑)")
    ax.legend(fontsize=8)
    ax.set_title("Pareto check vs the reference (predicted)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_plots(
    out: Path,
    models: FittedModels,
    Y: np.ndarray,
    interactions: np.ndarray,
    weights: dict[str, np.ndarray] | None,
    pareto: dict[str, Any] | None,
) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    plot_pred_vs_actual(models, Y, out / "pred_vs_actual.png")
    files["pred_vs_actual"] = "plots/pred_vs_actual.png"
    plot_interactions(interactions, models.domains, models.metrics, out / "interaction_matrix.png")
    files["interaction_matrix"] = "plots/interaction_matrix.png"
    if weights:
        plot_weights(models.domains, weights, out / "proposed_vs_prior.png")
        files["proposed_vs_prior"] = "plots/proposed_vs_prior.png"
    if pareto:
        plot_pareto(**pareto, path=out / "pareto.png")
        files["pareto"] = "plots/pareto.png"
    return files

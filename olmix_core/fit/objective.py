"""The objective a proposer minimises: a weighted sum of predicted metrics (maximised ones enter negated),
plus an optional KL(x ‖ prior) penalty that keeps the proposal near the natural distribution."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from olmix_core.errors import DataError

PRIOR_FLOOR = 1e-12


@dataclass
class Objective:
    metrics: list[str]  # metrics with a non-zero weight
    weights: np.ndarray  # one per metric, > 0
    signs: np.ndarray  # +1: lower is better; -1: maximised
    kl_reg: float
    prior: np.ndarray  # over the domains, sums to 1
    label: str

    def from_predictions(self, P: np.ndarray) -> np.ndarray:
        """Objective (lower is better, without the KL term) from predictions of `metrics` (columns in that order)."""
        return P @ (self.weights * self.signs)

    def kl(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        p = np.maximum(self.prior, PRIOR_FLOOR)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(X > 0, X * np.log(X / p), 0.0)
        return terms.sum(1)

    def penalised(self, P: np.ndarray, X: np.ndarray) -> np.ndarray:
        value = self.from_predictions(P)
        return value + self.kl_reg * self.kl(X) if self.kl_reg else value


def build_objective(
    metrics: list[str],
    prior: np.ndarray,
    *,
    objective: str | None = None,
    obj_weights: dict[str, float] | None = None,
    opt_avg_metric: bool = False,
    maximize: list[str] | tuple[str, ...] = (),
    kl_reg: float = 0.0,
) -> Objective:
    """One metric (`objective`), a weighted sum (`obj_weights`), or the average of all metrics (`opt_avg_metric`,
    also the default with several metrics). Metric names are checked against the fitted metrics."""
    chosen = [objective is not None, bool(obj_weights), opt_avg_metric]
    if sum(chosen) > 1:
        raise DataError("fit.filtering.objective, fit.filtering.obj_weights and fit.filtering.opt_avg_metric are "
                        "alternatives; give one",
                        fields=("fit.filtering.objective", "fit.filtering.obj_weights", "fit.filtering.opt_avg_metric"))
    unknown = sorted(set(maximize) - set(metrics))
    if unknown:
        raise DataError(f"fit.filtering.maximize: {unknown} are not metrics of the table ({metrics})",
                        fields=("fit.filtering.maximize",))
    if objective is not None:
        if objective not in metrics:
            raise DataError(f"fit.filtering.objective: {objective!r} is not a metric of the table ({metrics})",
                            fields=("fit.filtering.objective",))
        weights = {objective: 1.0}
        label = objective
    elif obj_weights:
        unknown = sorted(set(obj_weights) - set(metrics))
        if unknown:
            raise DataError(f"fit.filtering.obj_weights: {unknown} are not metrics of the table ({metrics})",
                            fields=("fit.filtering.obj_weights",))
        for k, w in obj_weights.items():
            if not (math.isfinite(w) and w >= 0):
                raise DataError(f"fit.filtering.obj_weights: weight of {k!r} is {w}; weights must be >= 0",
                                fields=("fit.filtering.obj_weights",))
        weights = {k: float(w) for k, w in obj_weights.items() if w > 0}
        if not weights:
            raise DataError("fit.filtering.obj_weights: all weights are 0", fields=("fit.filtering.obj_weights",))
        label = " + ".join(f"{w:g}·{k}" for k, w in weights.items())
    else:
        weights = {m: 1.0 / len(metrics) for m in metrics}
        label = metrics[0] if len(metrics) == 1 else f"mean of {len(metrics)} metrics"
    ms = [m for m in metrics if m in weights]
    signs = np.array([-1.0 if m in maximize else 1.0 for m in ms])
    if any(m in maximize for m in ms):
        label += f" (maximised: {[m for m in ms if m in maximize]})"
    if kl_reg < 0:
        raise DataError(f"fit.proposer.kl_reg must be >= 0 (got {kl_reg})", fields=("fit.proposer.kl_reg",))
    return Objective(ms, np.array([weights[m] for m in ms]), signs, float(kl_reg), np.asarray(prior, float), label)

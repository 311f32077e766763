"""Adaptive swarms: choose the next proxy runs where they teach the most (batch Bayesian optimisation).

The posterior over the objective (lower is better) is the swarm's fitted models (whatever `olmix fit` chose per
metric) as the prior mean, plus a BoTorch Gaussian process on what they miss: the GP's mean function is the fitted
models' objective, so the GP learns the residuals at the observed runs and its posterior std is how unsure the whole
model is at a mixture. The batch is chosen by batch Thompson sampling: one joint posterior draw per mixture over a
pool of candidates, each pick the best of its draw among the candidates not within L2 0.01 of an existing run or an
earlier pick — a confident model gives a tight batch near its optimum, an unsure one spreads the batch where the
draws disagree. The batch's expected improvement is BoTorch's joint qNEI. Candidates come from a constrained
sampler (mostly local Dirichlet draws around the fitted model's proposal and the best runs, half of them on the
face of binding token caps where a centre sits at its caps, some wide ones around the prior, all repaired onto the
constraints exactly), so every suggestion honours the simplex, token caps, minimum and fixed weights, and none
repeats an existing row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from olmix_core.errors import DataError, InfeasibleError
from olmix_core.fit.fitting import FittedModels
from olmix_core.fit.options import FitOptions
from olmix_core.fit.posterior import ObjectivePosterior, candidate_pool
from olmix_core.fit.proposers import propose
from olmix_core.fit.run import Setup, prepare
from olmix_core.fit.tables import SwarmTable

MIN_DISTANCE = 0.01  # L2: the sampler's rule for "the same mixture as an existing one" (existing_mix_file)
ACQUISITION = "batch Thompson sampling on a GP over the fitted models' residuals (BoTorch); batch EI by qNEI"


class Suggestion(BaseModel):
    """One mixture of the next batch, with what the posterior says about it (objective: lower is better)."""

    weights: dict[str, float]
    predicted_objective: float  # posterior mean
    std: float  # posterior std of the objective
    expected_improvement: float  # over the incumbent, of this mixture alone


class NextBatch(BaseModel):
    """What `olmix mix next` chose, and why."""

    objective: str
    runs: int  # observed runs the posterior was fitted on
    incumbent: float  # best posterior mean among the observed runs
    best_observed: float  # best observed objective
    expected_improvement: float  # of the whole batch (best of the batch vs the incumbent), objective units
    suggestions: list[Suggestion]
    proposal: Suggestion  # the fitted models' own proposal, as the posterior sees it
    models: dict[str, str] = {}  # metric -> the regressor the posterior's mean comes from
    acquisition: str = ACQUISITION
    candidates: int = 0
    seconds: float = 0.0

    def mixtures(self) -> list[dict[str, float]]:
        """The batch as `olmix launch run --mixtures` reads it (non-zero weights only)."""
        return [{d: w for d, w in s.weights.items() if w > 0} for s in self.suggestions]


def _far(X: np.ndarray, Y: np.ndarray, min_distance: float) -> np.ndarray:
    """Rows of X at L2 distance >= min_distance from every row of Y."""
    if not len(Y) or not len(X):
        return np.ones(len(X), bool)
    d2 = (X**2).sum(1)[:, None] + (Y**2).sum(1)[None, :] - 2 * X @ Y.T
    return (np.maximum(d2, 0.0) >= min_distance**2 - 1e-15).all(1)


def select_batch(
    posterior: ObjectivePosterior,
    pool: np.ndarray,
    existing: np.ndarray,
    n: int,
    min_distance: float = MIN_DISTANCE,
    seed: int = 0,
) -> list[int]:
    """Batch Thompson sampling: `n` joint draws of the objective over the whole pool; pick i is the best
    mixture of draw i among the candidates at least `min_distance` from every existing row and earlier pick."""
    allowed = _far(pool, existing, min_distance)
    if allowed.sum() < n:
        raise InfeasibleError(
            f"only {int(allowed.sum())} candidate mixtures meet the constraints at L2 >= {min_distance} from the "
            f"{len(existing)} existing rows; cannot choose {n} (ask for fewer, or loosen the constraints)"
        )
    draws = posterior.sample(pool, n, seed)  # (n, pool): objective values, lower is better
    picks: list[int] = []
    for i in range(n):
        if not allowed.any():
            raise InfeasibleError(f"after {len(picks)} picks no candidate is {min_distance} away from all others")
        best = int(np.argmin(np.where(allowed, draws[i], np.inf)))
        picks.append(best)
        allowed &= _far(pool, pool[best][None, :], min_distance)
    return picks


# ------------------------------------------------------------------------------------------------ entry points
def suggest(
    table: SwarmTable,
    models: FittedModels,
    setup: Setup,
    options: FitOptions,
    variants: int,
    *,
    num_candidates: int = 2048,
    min_distance: float = MIN_DISTANCE,
) -> NextBatch:
    """`variants` new mixtures for the swarm in `table`, chosen by batch expected improvement (see module doc)."""
    if variants <= 0:
        raise DataError(f"variants must be > 0 (got {variants})")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads cost more than they give (see fit.proposers)
        return _suggest(table, models, setup, options, variants, num_candidates, min_distance)


def _suggest(
    table: SwarmTable,
    models: FittedModels,
    setup: Setup,
    options: FitOptions,
    variants: int,
    num_candidates: int,
    min_distance: float,
) -> NextBatch:
    t0 = time.perf_counter()
    # the GP carries the uncertainty here, so the fitted models' proposal is their plain prediction's optimum
    options = options.with_proposer(uncertainty_penalty=0.0)
    problem = setup.problem(table, models, options)
    observed, _ = problem.observed_objective()
    rng = np.random.default_rng(options.seed)
    posterior = ObjectivePosterior(problem, table.X, observed, seed=options.seed)
    proposal = propose(problem, "general")
    best_rows = table.X[np.argsort(observed)[: min(3, len(observed))]]
    pool = candidate_pool(problem, [proposal.x, *best_rows], num_candidates, rng)
    picks = select_batch(posterior, pool, table.X, variants, min_distance, options.seed)
    chosen = pool[picks]
    mean, std = posterior.mean_std(np.vstack([chosen, proposal.x[None, :], table.X]))
    inc = float(mean[len(chosen) + 1 :].min())
    single = [posterior.expected_improvement(x[None, :], seed=options.seed) for x in chosen]
    domains = list(models.domains)

    def suggestion(x: np.ndarray, m: float, s: float, ei: float) -> Suggestion:
        return Suggestion(weights={d: float(w) for d, w in zip(domains, x)}, predicted_objective=float(m), std=float(s),
                          expected_improvement=float(ei))

    return NextBatch(
        objective=problem.objective.label,
        runs=len(table.ids),
        incumbent=inc,
        best_observed=float(observed.min()),
        expected_improvement=posterior.expected_improvement(chosen, seed=options.seed),
        suggestions=[suggestion(x, mean[i], std[i], single[i]) for i, x in enumerate(chosen)],
        proposal=suggestion(proposal.x, mean[len(chosen)], std[len(chosen)],
                            posterior.expected_improvement(proposal.x[None, :], seed=options.seed)),
        models={m: models.fits[m].chosen for m in problem.needed},
        candidates=len(pool),
        seconds=round(time.perf_counter() - t0, 3),
    )


def next_mixtures(
    ratios: str | Path,
    metrics: str | Path,
    variants: int,
    options: FitOptions | None = None,
    priors: str | Path | dict[str, Any] | None = None,
    model_dir: str | None = None,
) -> NextBatch:
    """Fit the swarm's models (or load them from `model_dir`, as `olmix fit` saved them) and suggest a batch."""
    from olmix_core.fit.families import load_selection

    options = options or FitOptions()
    selection = load_selection(ratios, metrics, options)
    table = selection.table
    setup = prepare(selection, options, priors)  # objective and constraints are checked before the (slow) fit
    if model_dir is not None:
        models = load_models(model_dir)
        if list(models.domains) != list(table.domains) or not set(setup.objective.metrics) <= set(models.metrics):
            raise DataError(
                f"{model_dir}: models were fitted on domains {models.domains} and metrics {models.metrics}; the "
                f"tables have domains {table.domains} and the objective needs {setup.objective.metrics}"
            )
    else:
        from olmix_core.fit.fitting import fit_models

        r = options.regression
        models = fit_models(table, r.type, folds=r.folds, seed=options.seed, n_jobs=r.n_jobs, candidates=r.candidates,
                            selection=r.selection)
    return suggest(table, models, setup, options, variants)


def load_models(model_dir: str) -> FittedModels:
    """`olmix fit`'s models/ folder, or the fit's output folder that holds it."""
    from olmix_core.errors import ArtifactMissing

    try:
        return FittedModels.load(model_dir)
    except ArtifactMissing:
        return FittedModels.load(str(model_dir).rstrip("/") + "/models")


def write_mixtures(path: str, batch: NextBatch) -> str:
    """The batch as a mixtures file (`olmix launch run --mixtures` reads it); local path or fsspec URL."""
    import json

    import fsspec

    with fsspec.open(path, "w") as f:
        f.write(json.dumps(batch.mixtures(), indent=2) + "\n")
    return path

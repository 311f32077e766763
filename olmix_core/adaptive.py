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
from olmix_core.fit.constraints import Bounds, repair, repair_rows
from olmix_core.fit.fitting import FittedModels
from olmix_core.fit.options import FitOptions
from olmix_core.fit.proposers import Problem, propose, sample_candidates
from olmix_core.fit.run import Setup, prepare
from olmix_core.fit.tables import SwarmTable

MIN_DISTANCE = 0.01  # L2: the sampler's rule for "the same mixture as an existing one" (existing_mix_file)
MIN_WEIGHT = 1e-6  # suggested weights below this are set to 0 (olmo-core wants every ratio in (0, 1])
ACQUISITION = "qLogNEI (BoTorch) on a GP over the fitted models' residuals, greedy batch with pending points"


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


# ------------------------------------------------------------------------------------------------ posterior
class ObjectivePosterior:
    """Fitted models' objective as the mean, plus a GP on the residuals at the observed runs (BoTorch)."""

    def __init__(self, problem: Problem, X: np.ndarray, y: np.ndarray, seed: int = 0) -> None:
        import warnings

        import torch
        from botorch.exceptions import InputDataWarning
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.means import Mean
        from gpytorch.mlls import ExactMarginalLogLikelihood

        self.problem = problem
        self.torch = torch
        self._memo: dict[bytes, float] = {}
        torch.manual_seed(seed)
        self.shift = float(np.mean(y))
        spread = float(np.std(y))
        self.scale = spread if spread > 0 else 1.0
        posterior = self

        class FittedMean(Mean):
            """The fitted models' objective at sqrt-features, negated and standardised (BoTorch maximises)."""

            def forward(self, f: torch.Tensor) -> torch.Tensor:
                flat = f.detach().reshape(-1, f.shape[-1]).cpu().numpy()
                return torch.as_tensor(posterior._z(posterior.mean_at(flat)), dtype=f.dtype).reshape(f.shape[:-1])

        train_X = torch.as_tensor(np.sqrt(X), dtype=torch.float64)
        train_Y = torch.as_tensor(self._z(y), dtype=torch.float64)[:, None]
        with warnings.catch_warnings():  # targets are standardised by hand (the mean function needs the same scale)
            warnings.simplefilter("ignore", InputDataWarning)
            self.model = SingleTaskGP(train_X, train_Y, mean_module=FittedMean(), outcome_transform=None)
            fit_gpytorch_mll(ExactMarginalLogLikelihood(self.model.likelihood, self.model))
        self.model.eval()
        self.train_X = train_X

    def mean_at(self, F: np.ndarray) -> np.ndarray:
        """The fitted models' penalised objective (objective + λ·KL; lower is better) at sqrt-features `F`,
        memoised per row: the GP evaluates its mean at the same training rows and candidates many times."""
        keys = [row.tobytes() for row in F]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            X = F[todo] ** 2
            X = X / X.sum(1, keepdims=True)
            for i, v in zip(todo, self.problem.evaluate(X, with_std=False)[0]):
                self._memo[keys[i]] = float(v)
        return np.array([self._memo[k] for k in keys])

    def _z(self, v: np.ndarray) -> np.ndarray:
        return -(np.asarray(v, float) - self.shift) / self.scale

    def features(self, X: np.ndarray) -> Any:
        return self.torch.as_tensor(np.sqrt(np.maximum(X, 0.0)), dtype=self.torch.float64)

    def mean_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std of the objective (objective units, lower is better)."""
        with self.torch.no_grad():
            post = self.model.posterior(self.features(X))
            m = post.mean[..., 0].numpy()
            s = post.variance[..., 0].clamp_min(0).sqrt().numpy()
        return self.shift - self.scale * m, self.scale * s

    def sample(self, X: np.ndarray, n: int, seed: int) -> np.ndarray:
        """`n` joint posterior draws of the objective at the rows of X, (n, rows), objective units."""
        with self.torch.no_grad():
            self.torch.manual_seed(seed)
            z = self.model.posterior(self.features(X)).rsample(self.torch.Size([n]))[..., 0].numpy()
        return self.shift - self.scale * z

    def expected_improvement(self, X: np.ndarray, mc_samples: int = 512, seed: int = 0) -> float:
        """E[max(0, incumbent − best objective of the batch X)] jointly over X, in objective units."""
        import warnings

        from botorch.acquisition.monte_carlo import qNoisyExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        sampler = SobolQMCNormalSampler(self.torch.Size([mc_samples]), seed=seed)
        with warnings.catch_warnings():  # the non-log qNEI warns that its gradients vanish; none are used here
            warnings.simplefilter("ignore")
            acq = qNoisyExpectedImprovement(self.model, X_baseline=self.train_X, sampler=sampler, prune_baseline=True)
        with self.torch.no_grad():
            return float(acq(self.features(X)[None]).item()) * self.scale


# ------------------------------------------------------------------------------------------------ candidates
def _clean(x: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Weights below MIN_WEIGHT set to 0 (the rest re-projected), when the constraints still hold after it."""
    small = (x > 0) & (x < MIN_WEIGHT) & ~bounds.fixed
    if not small.any():
        return x
    support = ~small & (x > 0)
    if not bounds.support_ok(support & bounds.free):
        return x
    y = repair(np.where(small, 0.0, x), bounds.restricted(support & bounds.free))
    return y if not bounds.violations(y) else x


LOCAL_CONCENTRATION = (3.0, 1000.0)  # × domains; 8 domains: a weight of 1/8 spreads by ~0.07 down to ~0.004
WIDE_CONCENTRATION = (0.05, 50.0)  # around the prior: sparse corners to near-prior mixtures


def active_caps(x: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Free domains of `x` sitting at a token cap that binds (below the mass left for the free domains)."""
    return bounds.free & (bounds.hi < bounds.remaining - 1e-12) & (x >= bounds.hi - 1e-9)


def on_face(bounds: Bounds, at_cap: np.ndarray) -> Bounds:
    """The face of the feasible set where the domains `at_cap` are held at their caps."""
    return Bounds(bounds.domains, np.where(at_cap, bounds.hi, bounds.lo), bounds.hi.copy(), bounds.fixed | at_cap,
                  bounds.min_weight, bounds.caps)


def candidate_pool(problem: Problem, centers: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Feasible mixtures, mostly local: 80% Dirichlet draws around `centers` (the fitted proposal and the best
    runs: a trust region, as in TuRBO, from near the centre to several hundredths per weight, so Thompson sampling
    can reach past a wrong first proposal), 20% wide draws around the prior (so a badly wrong model can still be
    corrected elsewhere). A centre with domains at binding token caps (where a capped optimum sits) spends half
    its draws on that face, the capped domains held at their caps: a plain draw lands on the face only when every
    capped domain happens to be pushed above its cap. All rows repaired onto the constraints exactly, deduplicated."""
    d = len(problem.prior)
    b = problem.bounds
    wide = max(1, n // 5)
    parts = [sample_candidates(rng, wide, problem.prior, WIDE_CONCENTRATION)]
    faces = []
    per = max(1, (n - wide) // max(1, len(centers)))
    for c in centers:
        at_cap = active_caps(c, b)
        k = per // 2 if at_cap.any() else 0
        parts.append(sample_candidates(rng, per - k, c, LOCAL_CONCENTRATION))
        parts.append(c[None, :])
        if k:
            F, ok = repair_rows(sample_candidates(rng, k, c, LOCAL_CONCENTRATION), on_face(b, at_cap))
            faces.append(F[ok])
    X, valid = repair_rows(np.vstack(parts), b)
    X = np.vstack([X[valid], *faces])
    X = np.array([_clean(x, b) for x in X]) if len(X) else np.empty((0, d))
    ok = np.array([not b.violations(x) for x in X], bool) if len(X) else np.zeros(0, bool)
    X = X[ok]
    _, first = np.unique(np.round(X, 9), axis=0, return_index=True)  # duplicates dropped, rows kept exact
    return X[np.sort(first)]


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
    options = options.model_copy(update={"proposer": options.proposer.model_copy(update={"uncertainty_penalty": 0.0})})
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

"""The objective's posterior: the fitted models as the mean plus a GP on what they miss, and the candidates it is
searched over.

The posterior over the objective (lower is better) takes the swarm's fitted models (whatever `olmix fit` chose per
metric) as the prior mean, plus a BoTorch Gaussian process on their residuals at the observed runs: its posterior
std is how unsure the whole model is at a mixture, also where the fitted models have no uncertainty of their own
(log-linear laws). `olmix mix next` draws its batches from it (`olmix_core.adaptive`); the `posterior` proposal
(`fit.proposer.residual_gp`) minimises its mean + β·std, which uses what the runs say where the fitted law misses
them (the final proposal of an adaptive swarm, whose later runs cluster around the optimum). Candidates come from a constrained sampler, mostly
local around given centres, every row repaired onto the constraints exactly.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from olmix_core.fit.constraints import Bounds, repair, repair_rows
from olmix_core.fit.proposers import Problem, Proposal, finish, sample_candidates

MIN_WEIGHT = 1e-6  # suggested weights below this are set to 0 (olmo-core wants every ratio in (0, 1])
POSTERIOR_CANDIDATES = 8192  # the argmin of the posterior mean: 2048 left regret on the table (bench/adaptive.py)


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
        """Posterior mean and std of the objective (objective units, lower is better). The std adds the fitted
        models' own uncertainty where they have one, as an independent error: an interpolating model (a GP, trees)
        leaves no residual at the runs, so the residual GP alone would be sure of itself far from them."""
        with self.torch.no_grad():
            post = self.model.posterior(self.features(X))
            m = post.mean[..., 0].numpy()
            s = post.variance[..., 0].clamp_min(0).sqrt().numpy()
        own = np.nan_to_num(self.problem.objective_std(X))
        return self.shift - self.scale * m, np.sqrt((self.scale * s) ** 2 + own**2)

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


def propose_posterior(problem: Problem, base: Proposal, penalty: float = 0.0,
                      num_candidates: int = POSTERIOR_CANDIDATES) -> Proposal:
    """The mixture with the best posterior mean + `penalty` × posterior std (fitted models + residual GP) among
    `base` (the fitted models' own proposal) and candidates around it and the three best runs. Where the observed
    runs contradict the fitted law near its optimum, the runs win; elsewhere the GP reverts to the fitted models."""
    t0 = time.perf_counter()
    assert problem.observed_X is not None
    observed, _ = problem.observed_objective()
    posterior = ObjectivePosterior(problem, problem.observed_X, observed, seed=problem.seed)
    rng = np.random.default_rng(problem.seed)
    best_rows = problem.observed_X[np.argsort(observed)[: min(3, len(observed))]]
    pool = np.vstack([base.x[None, :], candidate_pool(problem, [base.x, *best_rows], num_candidates, rng)])
    if problem.reference is not None:  # the Pareto constraints hold by the fitted models, as for every proposer
        keep = problem.evaluate(pool, with_std=False)[1] >= 0
        keep[0] = True  # the base met them already (its proposer enforced them)
        pool = pool[keep]
    mean, std = posterior.mean_std(pool)  # row 0 is the base
    i = int(np.argmin(mean + penalty * std))
    details = {
        "base": base.proposer,
        "base_objective": base.objective,
        "base_posterior_mean": float(mean[0]),
        "posterior_mean": float(mean[i]),
        "posterior_std": float(std[i]),
        "uncertainty_penalty": penalty,
        "candidates": len(pool),
        "seconds": time.perf_counter() - t0,
    }
    out = finish(problem, pool[i], "posterior", details)
    # the posterior mean is the fitted penalised objective plus the GP's residual: the objective moves by the
    # residual, and what was minimised is that mean plus the penalty on the posterior std
    residual = float(mean[i]) - out.penalised
    details["fitted_objective"] = out.objective
    out.objective, out.penalised = out.objective + residual, float(mean[i] + penalty * std[i])
    return out

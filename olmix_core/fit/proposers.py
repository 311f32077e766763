"""Proposers: from fitted models to one mixture that minimises the objective under the constraints.

* `simulation`: RegMix: sample Dirichlet candidates around the prior, predict, average the top-k.
* `simulation_iterative`: olmix's variant: several rounds, each re-centred on the previous round's top-k mean
  with a tighter Dirichlet.
* `search`: the best observed run (observed metrics) that satisfies the constraints.
* `exact`: convex program (cvxpy; CLARABEL, SCS as fallback) for log-linear models:
  minimise Σ_m w_m exp(b_m + t_m·x) + λ·KL(x ‖ prior); Pareto constraints are linear in that law.
* `general`: any model: many starts (sampled candidates, observed runs, prior, reference), SLSQP with batched
  finite-difference gradients inside the bounds (Pareto constraints as inequalities), then a random-direction and
  pairwise-transfer polish that also works for piecewise-constant models such as LightGBM.
* `auto`: `exact` when every model it needs is log-linear and convex in the optimised direction, else `general`.

Every proposer returns a mixture that satisfies the constraints exactly (`constraints.Bounds.violations` is empty
and, with a reference, every metric's prediction is within `tol` of the reference's).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from olmix_core.errors import InfeasibleError, OlmixError
from olmix_core.fit.constraints import Bounds, repair, repair_rows
from olmix_core.fit.fitting import FittedModels
from olmix_core.fit.objective import PRIOR_FLOOR, Objective
from olmix_core.fit.regressors import LogLinearPowerRegressor, LogLinearRegressor

PROPOSER_TYPES = ("auto", "simulation", "simulation_iterative", "search", "exact", "general")
_PARETO_MARGIN = 1e-9  # solvers aim this far inside the Pareto constraints so rounding cannot break them


@dataclass
class Problem:
    """Everything a proposer needs: models, objective, bounds, prior, optional Pareto reference, observed runs."""

    models: FittedModels
    objective: Objective
    bounds: Bounds
    prior: np.ndarray
    reference: np.ndarray | None = None
    tol: float = 0.0
    maximize: tuple[str, ...] = ()
    observed_X: np.ndarray | None = None
    observed_Y: np.ndarray | None = None  # columns: models.metrics
    seed: int = 0
    uncertainty: float = 0.0  # β: minimise prediction + β·std where a model has an uncertainty (GP, ensembles)
    chunk: int = 65536

    def __post_init__(self) -> None:
        self.pareto_metrics = list(self.models.metrics) if self.reference is not None else []
        # objective metrics first, so their columns are 0..k-1 of every prediction matrix
        self.needed = list(dict.fromkeys([*self.objective.metrics, *self.pareto_metrics]))
        self._obj_cols = list(range(len(self.objective.metrics)))
        self._rest = self.needed[len(self._obj_cols) :]
        self._par_cols = [self.needed.index(m) for m in self.pareto_metrics]
        self._use_std = self.uncertainty > 0 and any(self.models.model(m).has_std for m in self.objective.metrics)
        self.pareto_signs = np.array([-1.0 if m in self.maximize else 1.0 for m in self.pareto_metrics])
        self.ref_pred = (
            self.models.predict(self.reference[None, :], self.pareto_metrics)[0] if self.reference is not None else None
        )
        self.n_evals = 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of the needed metrics, in chunks (bounded memory for millions of candidates)."""
        X = np.atleast_2d(X)
        self.n_evals += len(X)
        if len(X) <= self.chunk:
            return self.models.predict(X, self.needed)
        return np.vstack(
            [self.models.predict(X[i : i + self.chunk], self.needed) for i in range(0, len(X), self.chunk)]
        )

    def predict_full(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions of the needed metrics, std of the objective metrics or None when not penalised)."""
        if not self._use_std:
            return self.predict(X), None
        X = np.atleast_2d(X)
        self.n_evals += len(X)
        Ps, Ss = [], []
        for i in range(0, len(X), self.chunk):
            P, S = self.models.predict_mean_std(X[i : i + self.chunk], self.objective.metrics)
            if self._rest:
                P = np.hstack([P, self.models.predict(X[i : i + self.chunk], self._rest)])
            Ps.append(P)
            Ss.append(np.nan_to_num(S))
        return np.vstack(Ps), np.vstack(Ss)

    def values(self, P: np.ndarray, S: np.ndarray | None, X: np.ndarray) -> np.ndarray:
        """What proposers minimise: objective + β·(weighted std) + λ·KL."""
        v = self.objective.penalised(P[:, self._obj_cols], X)
        if S is not None:
            v = v + self.uncertainty * (S @ self.objective.weights)
        return v

    def slack_from(self, P: np.ndarray) -> np.ndarray:
        """Pareto slack per metric (>= 0 where the mixture is no worse than the reference's prediction + tol)."""
        if self.ref_pred is None:
            return np.zeros((len(P), 0))
        return self.ref_pred * self.pareto_signs + self.tol - P[:, self._par_cols] * self.pareto_signs

    def evaluate(self, X: np.ndarray, with_std: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(penalised objective, worst Pareto slack) per row; slack >= 0 means Pareto-feasible.
        `with_std=False` skips the uncertainty term (cheap screening of many candidates)."""
        X = np.atleast_2d(X)
        P, S = self.predict_full(X) if with_std else (self.predict(X), None)
        obj = self.values(P, S, X)
        slack = self.slack_from(P)
        worst = slack.min(1) if slack.shape[1] else np.full(len(X), np.inf)
        return obj, worst

    def objective_std(self, X: np.ndarray) -> np.ndarray:
        """The models' own uncertainty of the objective per row: the objective metrics' stds (GP posterior,
        ensemble spread) combined as independent errors; NaN where no objective metric's model has one."""
        S = self.models.predict_std(np.atleast_2d(X), self.objective.metrics) * self.objective.weights
        out = np.sqrt(np.nansum(S**2, axis=1))
        return np.where(np.isnan(S).all(1), np.nan, out)

    def observed_objective(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.observed_X is not None and self.observed_Y is not None
        cols = [self.models.metrics.index(m) for m in self.needed]
        P = self.observed_Y[:, cols]
        obj = self.objective.penalised(P[:, self._obj_cols], self.observed_X)
        slack = self.slack_from(P)
        return obj, slack.min(1) if slack.shape[1] else np.full(len(P), np.inf)


@dataclass
class Proposal:
    proposer: str
    x: np.ndarray
    weights: dict[str, float]
    objective: float  # predicted objective (lower is better), without the KL and uncertainty terms
    penalised: float  # what was minimised: objective + β × std + kl_reg × KL(x ‖ prior)
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- helpers
def _has_constraints(b: Bounds) -> bool:
    return bool(b.fixed.any() or b.caps or b.min_weight > 0 or np.any(b.hi < 1) or np.any(b.lo > 0))


def sample_candidates(rng: np.random.Generator, n: int, center: np.ndarray, conc: tuple[float, float]) -> np.ndarray:
    """Dirichlet rows around `center` with total concentration log-uniform in `conc` (times the domain count):
    low concentrations give sparse, far-away mixtures, high ones stay near the center (RegMix's sampler)."""
    d = len(center)
    alpha_base = (center + 1e-3 / d) / (1 + 1e-3)
    kappa = np.exp(rng.uniform(math.log(conc[0]), math.log(conc[1]), size=(n, 1))) * d
    G = rng.standard_gamma(kappa * alpha_base[None, :])
    s = G.sum(1, keepdims=True)
    bad = s[:, 0] <= 0
    if bad.any():
        G[bad] = center
        s[bad] = 1.0
    return G / s


def _feasible(problem: Problem, X: np.ndarray, bounds: Bounds | None = None) -> tuple[np.ndarray, np.ndarray]:
    b = bounds or problem.bounds
    if not _has_constraints(b):
        return X, np.ones(len(X), bool)
    return repair_rows(X, b)


def _pareto_error(problem: Problem, who: str, x: np.ndarray | None = None) -> InfeasibleError:
    """InfeasibleError naming the Pareto constraint and, given the closest attempt, the metrics it misses."""
    msg = (
        f"{who}: no mixture within the other constraints meets the Pareto constraint (fit.constraints.reference, fit.constraints.tol {problem.tol})"
    )
    if x is not None:
        slack = problem.slack_from(problem.predict(x))[0]
        bad = [m for m, v in zip(problem.pareto_metrics, slack) if v < 0]
        msg += f"; the closest found is predicted worse than the reference on {bad}"
    return InfeasibleError(msg)


def _enforce_pareto(problem: Problem, x: np.ndarray) -> np.ndarray:
    """Move x toward the (repaired) reference until the Pareto constraints hold; error if even that fails."""
    if problem.reference is None:
        return x
    _, worst = problem.evaluate(x)
    if worst[0] >= 0:
        return x
    ref = repair(problem.reference, problem.bounds)
    _, w_ref = problem.evaluate(ref)
    if w_ref[0] < 0:
        slack = problem.slack_from(problem.predict(ref))[0]
        bad = [m for m, s in zip(problem.pareto_metrics, slack) if s < 0]
        raise InfeasibleError(
            "fit.constraints.reference: the reference mixture violates the other constraints, and the nearest mixture that meets "
            f"them is predicted worse than the reference by more than fit.constraints.tol {problem.tol} on {bad}"
        )
    lo, hi = 0.0, 1.0
    best = ref
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        y = repair((1 - mid) * x + mid * ref, problem.bounds)
        if problem.evaluate(y)[1][0] >= 0:
            hi, best = mid, y
        else:
            lo = mid
    return best


def finish(problem: Problem, x: np.ndarray, name: str, details: dict[str, Any]) -> Proposal:
    """Exact constraint check, then the proposal with its predicted objective."""
    x = _enforce_pareto(problem, x)
    bad = problem.bounds.violations(x, tol=1e-9)
    if bad:
        raise RuntimeError(f"proposer {name} returned a mixture violating its constraints: {bad}")
    P, S = problem.predict_full(x)
    obj = float(problem.objective.from_predictions(P[:, problem._obj_cols])[0])
    pen = float(problem.values(P, S, x[None, :])[0])
    weights = {d: float(w) for d, w in zip(problem.models.domains, x)}
    return Proposal(name, x, weights, obj, pen, details)


class _TopK:
    """Running top-k (lowest objective) over streamed candidate chunks."""

    def __init__(self, k: int, d: int) -> None:
        self.k = k
        self.vals = np.empty(0)
        self.rows = np.empty((0, d))

    def add(self, vals: np.ndarray, rows: np.ndarray) -> None:
        v = np.r_[self.vals, vals]
        r = np.vstack([self.rows, rows])
        if len(v) > self.k:
            keep = np.argpartition(v, self.k - 1)[: self.k]
            v, r = v[keep], r[keep]
        self.vals, self.rows = v, r

    def threshold(self) -> float:
        """The value a candidate must beat to enter (inf until k are held)."""
        return float(self.vals.max()) if len(self.vals) >= self.k else math.inf


def _add_chunk(problem: Problem, top: _TopK, X: np.ndarray) -> None:
    """Feasible candidates of one chunk into the running top-k, exactly, with the uncertainty term computed only
    where it can matter: the objective without it is a lower bound (stds and weights are >= 0), so candidates are
    scored in the order of that bound and the costly std stops once the bound reaches the k-th best value."""
    bound, worst = problem.evaluate(X, with_std=False)
    ok = worst >= 0
    X, bound = X[ok], bound[ok]
    if not problem._use_std:
        top.add(bound, X)
        return
    order = np.argsort(bound, kind="stable")
    step = max(256, top.k)
    for i in range(0, len(order), step):
        idx = order[i : i + step]
        idx = idx[bound[idx] < top.threshold()]
        if not len(idx):
            break
        top.add(problem.evaluate(X[idx])[0], X[idx])


# ------------------------------------------------------------------------------------------------ simulation
def propose_simulation(
    problem: Problem,
    num_samples: int = 200_000,
    top_k: int = 100,
    iterative: bool = False,
    rounds: int = 5,
    conc: tuple[float, float] = (0.05, 20.0),
    temperature: float | None = None,
) -> Proposal:
    """RegMix's simulation (one round around the prior), or olmix's iterative variant (`rounds` rounds, each
    centred on the previous top-k mean with concentrations ×4). Candidates are made feasible before ranking;
    the top-k average is repaired (averaging can break the minimum weight) and checked against the reference.
    `temperature` samples around prior**temperature (renormalised), as Ai2's olmix does."""
    rng = np.random.default_rng(problem.seed)
    d = len(problem.models.domains)
    start = problem.prior.copy()
    if temperature is not None:
        start = np.maximum(start, PRIOR_FLOOR) ** temperature
        start = start / start.sum()
    center = repair(start, problem.bounds) if _has_constraints(problem.bounds) else start
    n_rounds = rounds if iterative else 1
    per_round = max(top_k, num_samples // n_rounds)
    lo_c, hi_c = conc
    history = []
    mean = center
    for _r in range(n_rounds):
        top = _TopK(top_k, d)
        done = 0
        while done < per_round:
            n = min(problem.chunk, per_round - done)
            X = sample_candidates(rng, n, center, (lo_c, hi_c))
            X, valid = _feasible(problem, X)
            if valid.any():
                _add_chunk(problem, top, X[valid])
            done += n
        if len(top.vals) == 0:
            if problem.reference is not None:
                raise _pareto_error(problem, "simulation (try fit.proposer.type general)")
            raise InfeasibleError("simulation: no sampled candidate meets the constraints; try fit.proposer.type general")
        mean = top.rows.mean(0)
        history.append(float(top.vals.min()))
        if iterative:
            center = mean / mean.sum()
            lo_c, hi_c = lo_c * 4, hi_c * 4
    x = repair(mean, problem.bounds)
    name = "simulation_iterative" if iterative else "simulation"
    return finish(problem, x, name, {"candidates": per_round * n_rounds, "top_k": top_k, "best_per_round": history})


# ---------------------------------------------------------------------------------------------------- search
def propose_search(problem: Problem) -> Proposal:
    """The observed run with the best observed objective among those that meet every constraint as they are."""
    if problem.observed_X is None:
        raise OlmixError("search proposer needs the observed runs")
    X = problem.observed_X
    obj, worst = problem.observed_objective()
    ok_bounds = np.array([not problem.bounds.violations(x, tol=1e-9) for x in X])
    ok = ok_bounds & (worst >= 0)
    if not ok.any():
        why = []
        if not ok_bounds.any():
            why.append("min weight / fixed weights / token caps")
        if problem.reference is not None and not (worst >= 0).any():
            why.append(f"Pareto vs fit.constraints.reference (fit.constraints.tol {problem.tol})")
        raise InfeasibleError(
            f"search: none of the {len(X)} observed runs meets the constraints ({', '.join(why) or 'combined'})"
        )
    i = int(np.flatnonzero(ok)[np.argmin(obj[ok])])
    return finish(
        problem, X[i].copy(), "search", {"row": i, "feasible_runs": int(ok.sum()), "observed_objective": float(obj[i])}
    )


# ----------------------------------------------------------------------------------------------------- exact
def _loglinear_law(problem: Problem, metric: str) -> dict[str, Any]:
    model = problem.models.model(metric)
    if not isinstance(model, LogLinearRegressor) or isinstance(model, LogLinearPowerRegressor):
        raise OlmixError(
            f"exact proposer needs log_linear models; metric {metric!r} uses {model.describe()} "
            "(fit with fit.regression.type log_linear, or use fit.proposer.type general)"
        )
    return model.law()


def exact_possible(problem: Problem) -> bool:
    try:
        _exact_terms(problem)
        return True
    except OlmixError:
        return False


def _exact_terms(problem: Problem) -> tuple[list[tuple[float, float, np.ndarray]], list[dict[str, Any]]]:
    obj_terms = []
    for m, w, sign in zip(problem.objective.metrics, problem.objective.weights, problem.objective.signs):
        law = _loglinear_law(problem, m)
        k = sign * law["s"]
        if k < 0:
            raise OlmixError(
                f"exact proposer: the fitted law of {m!r} is concave in the optimised direction "
                f"({'maximised' if sign < 0 else 'minimised'}, s={law['s']:+.0f}); use fit.proposer.type general"
            )
        obj_terms.append((float(w), law["b"], np.asarray(law["t"])))
    laws = [_loglinear_law(problem, m) for m in problem.pareto_metrics]
    return obj_terms, laws


def _solve_exact(problem: Problem, bounds: Bounds) -> np.ndarray | None:
    import cvxpy as cp

    obj_terms, laws = _exact_terms(problem)
    d = len(problem.models.domains)
    x = cp.Variable(d)
    expr = 0
    for w, b, t in obj_terms:
        expr = expr + w * cp.exp(b + t @ x)
    if problem.objective.kl_reg:
        p = np.maximum(problem.prior, PRIOR_FLOOR)
        expr = expr + problem.objective.kl_reg * cp.sum(cp.kl_div(x, p))
    cons = [cp.sum(x) == 1, x >= bounds.lo, x <= bounds.hi]
    for law, m, sign in zip(laws, problem.pareto_metrics, problem.pareto_signs):
        assert problem.ref_pred is not None
        ref = problem.ref_pred[problem.pareto_metrics.index(m)]
        k = sign * law["s"]
        rhs = sign * (ref - law["c"]) + problem.tol - _PARETO_MARGIN
        u = law["b"] + np.asarray(law["t"]) @ x
        if k > 0:
            if rhs <= 0:
                return None
            cons.append(u <= math.log(rhs))
        elif -rhs > 0:
            cons.append(u >= math.log(-rhs))
    prob = cp.Problem(cp.Minimize(expr), cons)
    for solver in ("CLARABEL", "SCS"):
        try:
            prob.solve(solver=solver)
        except cp.error.SolverError:
            continue
        if prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) and x.value is not None:
            return np.asarray(x.value, float)
        if prob.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return None
    return None


def _support_candidates(x: np.ndarray, bounds: Bounds) -> list[np.ndarray]:
    """Support choices for the semi-continuous minimum weight, from thresholds on a relaxed solution."""
    mw = bounds.min_weight
    out: list[np.ndarray] = []
    for thr in (mw / 2, mw, mw / 4):
        s = repair(x, bounds, threshold=thr) > 0
        s &= bounds.free
        if bounds.support_ok(s) and not any(np.array_equal(s, o) for o in out):
            out.append(s)
    return out


def propose_exact(problem: Problem) -> Proposal:
    t0 = time.perf_counter()
    _exact_terms(problem)  # raises a clear error when the models do not fit the convex form
    b = problem.bounds
    relaxed = Bounds(b.domains, np.where(b.fixed, b.lo, 0.0), b.hi, b.fixed, 0.0, b.caps)
    x0 = _solve_exact(problem, relaxed)
    if x0 is None:
        if problem.reference is not None:
            raise _pareto_error(problem, "exact")
        raise InfeasibleError("exact: the constraints admit no mixture")
    best: np.ndarray | None = repair(x0, relaxed)
    best_val, n_solves = math.inf, 1
    if b.min_weight > 0:
        best = None
        for support in _support_candidates(x0, b):
            rb = b.restricted(support)
            xs = _solve_exact(problem, rb)
            n_solves += 1
            if xs is None:
                continue
            xs = repair(xs, rb)
            val, worst = problem.evaluate(xs)
            if worst[0] >= 0 and val[0] < best_val:
                best, best_val = xs, float(val[0])
        if best is None:
            best = repair(x0, b)
    assert best is not None
    return finish(problem, best, "exact", {"solves": n_solves, "seconds": time.perf_counter() - t0})


# --------------------------------------------------------------------------------------------------- general
def _local_opt(problem: Problem, x0: np.ndarray, bounds: Bounds, h: float = 1e-5, maxiter: int = 100) -> np.ndarray:
    """SLSQP over the free coordinates: sum fixed, bounds as box, Pareto slacks >= margin; gradients by forward
    differences, all d+1 points predicted in one batch."""
    from scipy.optimize import minimize

    idx = np.flatnonzero(~bounds.fixed & (bounds.hi > bounds.lo))
    if len(idx) < 2:
        return repair(x0, bounds)
    base = np.where(bounds.fixed, bounds.lo, 0.0)
    base[(~bounds.fixed) & (bounds.hi <= bounds.lo)] = bounds.lo[(~bounds.fixed) & (bounds.hi <= bounds.lo)]
    R = 1.0 - base.sum()
    cache: dict[bytes, tuple[float, np.ndarray, np.ndarray, np.ndarray]] = {}

    def full(z: np.ndarray) -> np.ndarray:
        x = base.copy()
        x[idx] = z
        return x

    def batch(z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        key = z.tobytes()
        if key not in cache:
            x = full(z)
            steps = np.repeat(x[None, :], len(idx) + 1, axis=0)
            steps[np.arange(1, len(idx) + 1), idx] += h
            P, S = problem.predict_full(steps)
            obj = problem.values(P, S, np.maximum(steps, 0))
            sl = problem.slack_from(P)
            cache.clear()
            cache[key] = (float(obj[0]), (obj[1:] - obj[0]) / h, sl[0], (sl[1:] - sl[0]) / h)
        return cache[key]

    scale = 1.0 / (abs(batch(x0[idx])[0]) or 1.0)  # SLSQP's tolerances assume an objective of order 1
    cons: list[dict[str, Any]] = [
        {"type": "eq", "fun": lambda z: np.array([z.sum() - R]), "jac": lambda z: np.ones((1, len(z)))}
    ]
    if problem.reference is not None:
        cons.append({"type": "ineq", "fun": lambda z: batch(z)[2] - _PARETO_MARGIN, "jac": lambda z: batch(z)[3].T})
    res = minimize(
        lambda z: batch(z)[0] * scale,
        x0[idx],
        jac=lambda z: batch(z)[1] * scale,
        method="SLSQP",
        bounds=list(zip(bounds.lo[idx], bounds.hi[idx])),
        constraints=cons,
        options={"maxiter": maxiter, "ftol": 1e-10},
    )
    return repair(full(np.clip(res.x, bounds.lo[idx], bounds.hi[idx])), bounds)


def _polish(
    problem: Problem, x: np.ndarray, bounds: Bounds, rng: np.random.Generator, per_round: int = 256
) -> tuple[np.ndarray, float]:
    """Random mixing directions and pairwise mass transfers at shrinking step sizes; accept improvements that
    keep the Pareto constraints. Needs no gradient, so it also moves piecewise-constant (tree) models."""
    val, worst = problem.evaluate(x)
    best_x, best_v = x, float(val[0]) if worst[0] >= 0 else math.inf
    free = np.flatnonzero(~bounds.fixed & (bounds.hi > 0))
    if len(free) < 2:
        return best_x, best_v
    pairs = np.array([(i, j) for i in free for j in free if i != j])
    for eta in (0.3, 0.1, 0.03, 0.01, 0.003, 0.001):
        for _ in range(2):
            U = np.zeros((per_round, len(x)))
            U[:, free] = rng.dirichlet(np.full(len(free), 0.5), size=per_round)
            cand = (1 - eta) * best_x[None, :] + eta * U
            T = np.repeat(best_x[None, :], len(pairs), axis=0)
            r = np.arange(len(pairs))
            amount = np.minimum(eta, T[r, pairs[:, 0]])
            T[r, pairs[:, 0]] -= amount
            T[r, pairs[:, 1]] += amount
            cand, valid = _feasible(problem, np.vstack([cand, T]), bounds)
            cand = cand[valid]
            if not len(cand):
                continue
            v, w = problem.evaluate(cand)
            v = np.where(w >= 0, v, np.inf)
            i = int(np.argmin(v))
            if v[i] < best_v - 1e-12 * max(1.0, abs(best_v)):
                best_x, best_v = cand[i], float(v[i])
            else:
                break
    return best_x, best_v


def _starts(
    problem: Problem, bounds: Bounds, rng: np.random.Generator, num_samples: int, num_starts: int
) -> list[np.ndarray]:
    """Diverse good starting points: the best sampled candidates, observed runs, the prior and the reference."""
    pools = [sample_candidates(rng, num_samples, problem.prior, (0.05, 50.0)), problem.prior[None, :]]
    if problem.observed_X is not None:
        pools.append(problem.observed_X)
    if problem.reference is not None:
        pools.append(problem.reference[None, :])
    X, valid = _feasible(problem, np.vstack(pools), bounds)
    X = X[valid]
    if not len(X):
        X = repair(problem.prior, bounds)[None, :]
    val, worst = problem.evaluate(X, with_std=False)
    key = np.where(worst >= 0, val, np.inf)
    order = np.argsort(key) if np.isfinite(key).any() else np.argsort(-worst)
    chosen: list[np.ndarray] = []
    for i in order:
        if all(np.abs(X[i] - c).sum() > 0.05 for c in chosen):
            chosen.append(X[i])
        if len(chosen) >= num_starts:
            break
    return chosen


def propose_general(
    problem: Problem, num_starts: int = 4, num_samples: int = 10_000, maxiter: int = 100, polish_top: int = 2
) -> Proposal:
    t0 = time.perf_counter()
    rng = np.random.default_rng(problem.seed)
    b = problem.bounds
    relaxed = Bounds(b.domains, np.where(b.fixed, b.lo, 0.0), b.hi, b.fixed, 0.0, b.caps)

    def optimise(bounds: Bounds, starts: list[np.ndarray]) -> tuple[np.ndarray | None, float]:
        """SLSQP from every start; the polish (the costly, gradient-free part) only from the best two."""
        local = [_local_opt(problem, repair(s, bounds), bounds, maxiter=maxiter) for s in starts]
        val, worst = problem.evaluate(np.array(local))
        order = np.argsort(np.where(worst >= 0, val, np.inf))
        best, best_v = None, math.inf
        for i in order[:polish_top]:
            x, v = _polish(problem, local[i], bounds, rng)
            if v < best_v:
                best, best_v = x, v
        return best, best_v

    starts = _starts(problem, relaxed, rng, num_samples, num_starts)
    x0, _ = optimise(relaxed, starts)
    if x0 is None:
        raise _pareto_error(problem, "general", starts[0])
    best, supports = x0, 0
    if b.min_weight > 0:
        best, best_v = None, math.inf
        for support in _support_candidates(x0, b):
            supports += 1
            rb = b.restricted(support)
            x, v = optimise(rb, [repair(x0, rb)])
            if x is not None and v < best_v:
                best, best_v = x, v
        if best is None:
            best = repair(x0, b)
    return finish(
        problem,
        best,
        "general",
        {
            "starts": num_starts,
            "supports_tried": supports,
            "evaluations": problem.n_evals,
            "seconds": time.perf_counter() - t0,
        },
    )


PROPOSERS: dict[str, Callable[..., Proposal]] = {
    "simulation": propose_simulation,
    "simulation_iterative": lambda problem, **kw: propose_simulation(problem, iterative=True, **kw),
    "search": propose_search,
    "exact": propose_exact,
    "general": propose_general,
}


def propose(problem: Problem, proposer_type: str = "auto", **options: Any) -> Proposal:
    """Run one proposer (`auto`: exact when the models allow it, else general)."""
    if proposer_type not in PROPOSER_TYPES:
        raise OlmixError(f"unknown proposer type {proposer_type!r}; choose from {list(PROPOSER_TYPES)}")
    if proposer_type == "auto":
        proposer_type = "exact" if exact_possible(problem) else "general"
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small batched matrix products: BLAS threads cost more than they give
        return PROPOSERS[proposer_type](problem, **options)

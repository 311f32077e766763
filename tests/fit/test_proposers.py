"""Every proposer under every constraint (honoured exactly), infeasible sets named, and the regret of proposals
on synthetic swarms whose law and constrained optimum are known."""

from __future__ import annotations

import numpy as np
import pytest

from olmix_core.errors import InfeasibleError, OlmixError
from olmix_core.fit.constraints import resolve_bounds
from olmix_core.fit.fitting import fit_models
from olmix_core.fit.objective import build_objective
from olmix_core.fit.options import ConstraintsOptions as Constraints
from olmix_core.fit.proposers import Problem, exact_possible, propose
from olmix_core.fit.synthetic import make_law, make_swarm, regret
from olmix_core.fit.tables import SwarmTable

from .conftest import DOMAINS, METRICS

PROPOSERS = ["simulation", "simulation_iterative", "search", "exact", "general"]
FAST = {"simulation": {"num_samples": 20_000}, "simulation_iterative": {"num_samples": 20_000, "rounds": 3}}


@pytest.fixture(scope="module")
def dml_swarm(prior):
    """A pure Data-Mixing-Laws swarm (log-linear truth), so the exact proposer's model family is right."""
    law = make_law(len(DOMAINS), len(METRICS), seed=5)
    law.B[:] = 0.0
    X, Y = make_swarm(law, 80, prior, noise=0.002, seed=5)
    table = SwarmTable([str(i) for i in range(len(X))], None, "run", DOMAINS, METRICS, X, Y)
    return law, table, fit_models(table, "log_linear", n_jobs=1)


def _problem(
    table, models, prior, constraints=None, tokens=None, reference=None, tol=0.0, uncertainty=0.0, kl_reg=0.0, **objective
):
    c = constraints or Constraints()
    bounds = resolve_bounds(c, table.domains, tokens)
    obj = build_objective(table.metrics, prior, kl_reg=kl_reg, **objective)
    maximize = tuple(objective.get("maximize", ()))
    return Problem(
        models, obj, bounds, prior, reference, tol, maximize, table.X, table.Y, seed=0, uncertainty=uncertainty
    )


CONSTRAINT_SETS = {
    "none": (Constraints(), None),
    "min_weight": (Constraints(min_weight_per_domain=0.08), None),
    "fixed": (Constraints(fixed_weights={"books": 0.15, "web:news": 0.0}), None),
    "caps": (Constraints(target_tokens=1e10), dict(zip(DOMAINS, [1e9, 4e9, 3e9, 3.5e9, 5e9]))),
    "all": (
        Constraints(
            min_weight_per_domain=0.05, fixed_weights={"books": 0.1}, target_tokens=1e10, repetition_factor=2.0
        ),
        dict(zip(DOMAINS, [5e8, 2e9, 1.5e9, 1.5e9, 5e9])),
    ),
}


@pytest.mark.parametrize("proposer", [p for p in PROPOSERS if p != "search"])
@pytest.mark.parametrize("cset", list(CONSTRAINT_SETS))
def test_constraints_hold_exactly(proposer, cset, dml_swarm, prior):
    _, table, models = dml_swarm
    c, tokens = CONSTRAINT_SETS[cset]
    p = propose(_problem(table, models, prior, c, tokens), proposer, **FAST.get(proposer, {}))
    x = p.x
    assert p.weights == dict(zip(DOMAINS, x.tolist()))
    assert np.all(x >= 0) and abs(x.sum() - 1) < 1e-12
    for i, d in enumerate(DOMAINS):
        if d in c.fixed_weights:
            assert abs(x[i] - c.fixed_weights[d]) <= 1e-12
        elif c.min_weight_per_domain:
            assert x[i] == 0 or x[i] >= c.min_weight_per_domain
        if c.target_tokens:
            rep = 1.0 if c.repetition_factor is None else c.repetition_factor  # unset: 1
            assert x[i] * c.target_tokens <= tokens[d] * rep
    assert np.isfinite(p.objective)


def test_proposers_agree_on_a_known_law(dml_swarm, prior):
    law, table, models = dml_swarm
    bounds = resolve_bounds(Constraints(), DOMAINS)
    _, f_opt = law.optimum(bounds)
    results = {name: propose(_problem(table, models, prior), name, **FAST.get(name, {})) for name in PROPOSERS}
    # the exact convex solution is the fitted model's optimum: nobody beats it on the model
    for name, p in results.items():
        assert results["exact"].objective <= p.objective + 1e-6, name
    assert results["general"].objective == pytest.approx(results["exact"].objective, abs=1e-4)
    assert regret(law, results["exact"].x, table.X, f_opt) < 0.02
    # search returns an observed run: the best observed one
    obs = table.Y.mean(1)
    assert np.allclose(results["search"].x, table.X[np.argmin(obs)])


def test_general_handles_lightgbm_and_search_models(swarm, prior):
    X, Y = swarm
    table = SwarmTable([str(i) for i in range(len(X))], None, "run", DOMAINS, METRICS, X, Y)
    for kind in ("lightgbm", "search"):  # auto with one candidate: LightGBM with auto's (faster) settings
        models = (
            fit_models(table, "auto", n_jobs=1, candidates=[kind])
            if kind == "lightgbm"
            else fit_models(table, kind, n_jobs=1)
        )
        problem = _problem(table, models, prior, Constraints(min_weight_per_domain=0.05))
        p = propose(problem, "general")
        start = problem.evaluate(problem.observed_X)[0].min()
        assert p.penalised <= start + 1e-9  # at least as good as the best observed mixture on the model
        assert not problem.bounds.violations(p.x)


def test_pareto_improvement_over_reference(dml_swarm, prior):
    _, table, models = dml_swarm
    reference = np.array([0.2, 0.2, 0.2, 0.2, 0.2])
    for tol in (0.0, 0.05):
        for name in ("exact", "general", "simulation"):
            problem = _problem(table, models, prior, reference=reference, tol=tol, objective="loss/web")
            p = propose(problem, name, **FAST.get(name, {}))
            pred = models.predict(p.x[None, :])[0]
            ref = models.predict(reference[None, :])[0]
            assert np.all(pred <= ref + tol + 1e-12), (name, tol, pred - ref)
            assert p.objective <= ref[0] + 1e-9
    unconstrained = propose(_problem(table, models, prior, objective="loss/web"), "exact")
    assert np.any(models.predict(unconstrained.x[None, :])[0] > models.predict(reference[None, :])[0])  # it binds


def test_pareto_infeasible_names_reference(dml_swarm, prior):
    _, table, models = dml_swarm
    # the reference is the unique optimum of one metric; capping its heaviest domain well below it means every
    # allowed mixture is predicted worse on that metric, so no Pareto improvement exists
    reference = propose(_problem(table, models, prior, objective="loss/code"), "exact").x
    j = int(np.argmax(reference))
    tokens = {d: (1e10 if i != j else 0.5 * reference[j] * 1e10) for i, d in enumerate(DOMAINS)}
    problem = _problem(table, models, prior, Constraints(target_tokens=1e10), tokens, reference=reference, tol=0.0)
    with pytest.raises(InfeasibleError, match="fit.constraints.reference"):
        propose(problem, "general", num_starts=1)


def test_kl_regularisation_pulls_toward_prior(dml_swarm, prior):
    _, table, models = dml_swarm
    free = propose(_problem(table, models, prior), "exact").x
    for name in ("exact", "general"):
        tied = propose(_problem(table, models, prior, kl_reg=100.0), name).x
        assert np.abs(tied - prior).sum() < 0.05 < np.abs(free - prior).sum()


def test_maximize_flips_direction(dml_swarm, prior):
    _, table, models = dml_swarm
    m = "loss/web"
    low = propose(_problem(table, models, prior, objective=m), "general").x
    high = propose(_problem(table, models, prior, objective=m, maximize=[m]), "general").x
    pl, ph = models.predict(np.array([low, high]), [m])[:, 0]
    assert ph > pl
    with pytest.raises(OlmixError, match="concave in the optimised direction"):
        propose(_problem(table, models, prior, objective=m, maximize=[m]), "exact")


def test_exact_needs_log_linear_and_auto_falls_back(swarm, prior):
    X, Y = swarm
    table = SwarmTable([str(i) for i in range(len(X))], None, "run", DOMAINS, METRICS, X, Y)
    models = fit_models(table, "linear", n_jobs=1)
    problem = _problem(table, models, prior)
    assert not exact_possible(problem)
    with pytest.raises(OlmixError, match="exact proposer needs log_linear models; metric 'loss/web' uses linear"):
        propose(problem, "exact")
    assert propose(problem, "auto").proposer == "general"


def test_search_infeasible_is_named(dml_swarm, prior):
    _, table, models = dml_swarm
    with pytest.raises(InfeasibleError, match="none of the 80 observed runs meets the constraints"):
        propose(_problem(table, models, prior, Constraints(fixed_weights={"books": 0.123})), "search")


def test_simulation_iterative_moves_toward_better(dml_swarm, prior):
    _, table, models = dml_swarm
    p = propose(_problem(table, models, prior), "simulation_iterative", num_samples=20_000, rounds=4)
    rounds = p.details["best_per_round"]
    assert len(rounds) == 4 and rounds[-1] <= rounds[0]


def test_uncertainty_penalty_keeps_proposals_where_the_model_knows(swarm, prior):
    X, Y = swarm
    table = SwarmTable([str(i) for i in range(len(X))], None, "run", DOMAINS, METRICS, X, Y)
    models = fit_models(table, "gp", n_jobs=1)
    plain = propose(_problem(table, models, prior, objective="loss/web"), "general")
    careful_problem = _problem(table, models, prior, objective="loss/web", uncertainty=3.0)
    careful = propose(careful_problem, "general")
    std = models.predict_std(np.array([plain.x, careful.x]), ["loss/web"])[:, 0]
    assert std[1] < std[0]
    assert careful.penalised == pytest.approx(careful.objective + 3.0 * std[1], rel=1e-9)


@pytest.mark.parametrize("caps", [False, True])
def test_regret_on_synthetic_swarms(caps):
    """Auto-fitted models + general proposer with the default uncertainty penalty (β=1): regret (true objective −
    true constrained optimum, relative to the swarm median) stays small with and without binding token caps,
    averaged over two laws (seeds 0 and 1)."""
    d, m = 6, 3
    regrets = []
    for seed in (0, 1):
        law = make_law(d, m, seed)
        prior = np.random.default_rng(seed + 100).dirichlet(np.ones(d) * 3)
        X, Y = make_swarm(law, 96, prior, seed=seed)
        doms = [f"dom:{i}" for i in range(d)]
        mets = [f"m{k}" for k in range(m)]
        table = SwarmTable([str(i) for i in range(len(X))], None, "run", doms, mets, X, Y)
        models = fit_models(table, "auto", n_jobs=1, seed=seed)
        tokens = None
        c = Constraints()
        if caps:  # cap the two heaviest domains of the unconstrained optimum at half their optimal weight
            x_free, _ = law.optimum(resolve_bounds(Constraints(), doms))
            top = set(np.argsort(-x_free)[:2].tolist())
            tokens = {dd: (x_free[i] * 0.5 if i in top else 1.0) for i, dd in enumerate(doms)}
            c = Constraints(target_tokens=1.0)
        problem = _problem(table, models, prior, c, tokens, uncertainty=1.0)
        _, f_opt = law.optimum(problem.bounds)
        p = propose(problem, "general")
        assert not problem.bounds.violations(p.x)
        regrets.append(regret(law, p.x, X, f_opt))
    assert np.mean(regrets) <= 0.05, regrets


def test_simulation_top_k_with_lazy_uncertainty_is_exact(swarm, prior):
    """The simulation proposer computes the GP std only for candidates whose mean-only objective can still enter
    the top k; the kept candidates are exactly the top k of the full penalised objective."""
    from olmix_core.fit.proposers import _add_chunk, _TopK, sample_candidates

    X, Y = swarm
    table = SwarmTable([str(i) for i in range(len(X))], None, "run", DOMAINS, METRICS, X, Y)
    models = fit_models(table, "gp", n_jobs=1)
    problem = _problem(table, models, prior, uncertainty=2.0)
    C = sample_candidates(np.random.default_rng(0), 6000, prior, (0.05, 50.0))
    full = problem.evaluate(C)[0]
    top = _TopK(50, C.shape[1])
    before = problem.n_evals
    for part in np.array_split(C, 3):
        _add_chunk(problem, top, part)
    want = np.sort(full)[:50]
    np.testing.assert_allclose(np.sort(top.vals), want, rtol=1e-12)
    assert problem.n_evals - before < 1.5 * len(C)  # the std was computed for a fraction of the candidates

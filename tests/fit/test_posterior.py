"""The `posterior` proposal (`fit.proposer.residual_gp`): where the runs contradict a misfitted law near its
optimum, the residual GP moves the proposal to what the runs say, inside the constraints; the reported objective
and std are the posterior's."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.fit import ConstraintsOptions as Constraints
from olmix_core.fit import FitOptions, resolve_bounds, run_fit
from olmix_core.fit.synthetic import write_swarm

DOMAINS = ["a", "b", "c", "d"]
OPTIMUM = np.array([0.4, 0.3, 0.2, 0.1])


def true_loss(X: np.ndarray) -> np.ndarray:
    return 2.0 + 4.0 * ((X - OPTIMUM) ** 2).sum(1)


def _swarm(tmp_path, near_runs: int = 16):
    """A wide swarm, plus runs clustered near the optimum as an adaptive round leaves them."""
    rng = np.random.default_rng(0)
    wide = rng.dirichlet(np.ones(4), 20)
    near = rng.dirichlet(OPTIMUM * 300, near_runs)
    X = np.vstack([wide, near])
    Y = true_loss(X)[:, None] + rng.normal(0, 0.002, (len(X), 1))
    r, m = tmp_path / "ratios.csv", tmp_path / "metrics.csv"
    write_swarm(X, Y, DOMAINS, ["loss"], str(r), str(m))
    return X, Y[:, 0], str(r), str(m)


def test_residual_gp_moves_a_misfitted_proposal_to_the_runs_inside_the_constraints(tmp_path):
    X, y, ratios, metrics = _swarm(tmp_path)
    base = {"regression": {"type": "linear"}, "constraints": {"min_weight_per_domain": 0.05}, "plots": False}
    plain = run_fit(ratios, metrics, str(tmp_path / "plain"), FitOptions.from_dict(base))
    post = run_fit(ratios, metrics, str(tmp_path / "post"),
                   FitOptions.from_dict({**base, "proposer": {"residual_gp": True}}))
    x_plain, x_post = plain.proposal.x, post.proposal.x
    bounds = resolve_bounds(Constraints(min_weight_per_domain=0.05), DOMAINS)
    assert not bounds.violations(x_post)
    # a linear law puts its optimum on a face of the simplex; the runs near the true optimum say otherwise
    assert true_loss(x_post[None])[0] < true_loss(x_plain[None])[0] - 0.05
    assert true_loss(x_post[None])[0] <= np.sort(y)[2]  # at least as good as the third-best run
    perf = json.loads((tmp_path / "post" / "predicted_performance.json").read_text())
    assert perf["proposer"] == "posterior"
    assert perf["objective"]["std"] > 0
    details = post.report["proposer"]
    assert details["base"] != "posterior" and details["fitted_objective"] != perf["objective"]["predicted"]
    assert abs(perf["objective"]["predicted"] - true_loss(x_post[None])[0]) < 0.05  # the posterior mean, not the line


def test_uncertainty_penalty_trades_posterior_mean_for_std(tmp_path):
    """The same pool is searched for posterior mean + β·std. With no runs near the optimum the misfitted line's
    corner keeps the best posterior mean (far from every run, the GP reverts to the line) but a large std; β = 1
    (the default) takes a mixture the posterior is sure of, which is the better one."""
    _, _, ratios, metrics = _swarm(tmp_path, near_runs=0)
    out, x = {}, {}
    for beta in (0.0, 1.0):
        options = FitOptions.from_dict({"regression": {"type": "linear"}, "plots": False,
                                        "proposer": {"residual_gp": True, "uncertainty_penalty": beta}})
        result = run_fit(ratios, metrics, str(tmp_path / str(beta)), options)
        out[beta], x[beta] = result.report["proposer"], result.proposal.x
    assert out[1.0]["posterior_std"] < out[0.0]["posterior_std"] / 2
    assert out[1.0]["posterior_mean"] > out[0.0]["posterior_mean"]
    assert out[1.0]["uncertainty_penalty"] == 1.0 and out[0.0]["candidates"] == out[1.0]["candidates"]
    assert true_loss(x[1.0][None])[0] < true_loss(x[0.0][None])[0] - 0.5


def test_fit_cli_residual_gp_flag(tmp_path):
    _, _, ratios, metrics = _swarm(tmp_path)
    args = ["fit", "--ratios", ratios, "--metrics", metrics, "--regression-type", "linear", "--no-plots"]
    on = CliRunner().invoke(cli, [*args, "--output-dir", str(tmp_path / "on"), "--residual-gp"])
    assert on.exit_code == 0, on.output
    assert "proposal (posterior)" in on.output
    off = CliRunner().invoke(cli, [*args, "--output-dir", str(tmp_path / "off")])
    assert off.exit_code == 0 and "proposal (posterior)" not in off.output, off.output


def test_posterior_std_keeps_an_interpolating_models_own_uncertainty(tmp_path):
    """A GP fitted on the runs leaves (almost) no residual there, so the residual GP alone is sure of itself far
    from every run; the posterior std adds the models' own std as an independent error."""
    from olmix_core.fit import fit_models, prepare
    from olmix_core.fit.posterior import ObjectivePosterior
    from olmix_core.fit.tables import SwarmTable

    X, y, _, _ = _swarm(tmp_path)
    table = SwarmTable([str(i) for i in range(len(X))], None, "run", DOMAINS, ["loss"], X, y[:, None])
    models = fit_models(table, "gp", n_jobs=1)
    options = FitOptions()
    problem = prepare(table, options).problem(table, models, options)
    far = np.eye(4) * 0.97 + 0.01  # near the corners, away from the runs
    posterior = ObjectivePosterior(problem, X, y)
    _, std = posterior.mean_std(far)
    own = problem.objective_std(far)
    with posterior.torch.no_grad():
        residual = posterior.model.posterior(posterior.features(far)).variance[..., 0].sqrt().numpy() * posterior.scale
    assert np.all(own > 0)
    np.testing.assert_allclose(std, np.sqrt(residual**2 + own**2), rtol=1e-6)

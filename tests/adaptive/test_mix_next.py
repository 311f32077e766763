"""`olmix mix next`: every suggested mixture honours the constraints, none repeats another or an existing run, and
the batch comes with its expected improvement and the posterior's uncertainty."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.fit import ConstraintsOptions as Constraints
from olmix_core.fit import resolve_bounds
from olmix_core.fit.synthetic import make_law, make_swarm, write_swarm
from olmix_core.sampling import read_mixtures_file

DOMAINS = ["web:news", "web:blogs", "code", "wiki:science", "books"]
METRICS = ["loss/web", "loss/code", "acc:qa"]
TOKENS = dict(zip(DOMAINS, [3e9, 2e9, 2e9, 2e9, 1e9]))


@pytest.fixture
def files(tmp_path):
    law = make_law(len(DOMAINS), len(METRICS), seed=3)
    X, Y = make_swarm(law, 30, np.array([0.3, 0.2, 0.2, 0.2, 0.1]), seed=3)
    r, m, p = tmp_path / "ratios.csv", tmp_path / "metrics.csv", tmp_path / "priors.json"
    write_swarm(X, Y, DOMAINS, METRICS, str(r), str(m))
    p.write_text(json.dumps({"relative_sizes": dict(zip(DOMAINS, [0.3, 0.2, 0.2, 0.2, 0.1])), "token_counts": TOKENS}))
    return X, str(r), str(m), str(p)


def _rows(path) -> np.ndarray:
    return np.array([[m.get(d, [0.0])[0] for d in DOMAINS] for m in read_mixtures_file(str(path))])


def test_next_batch_honours_constraints_and_differs_from_existing(tmp_path, files):
    X, ratios, metrics, priors = files
    out = tmp_path / "next.json"
    args = ["mix", "next", "--ratios", ratios, "--metrics", metrics, "--priors", priors, "--variants", "6",
            "--output", str(out), "--objective", "loss/web", "--target-tokens", "10B", "--repetition-factor", "2",
            "--min-weight-per-domain", "0.05", "--fixed-weight", "books=0.1", "--seed", "1"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "expected improvement of the batch:" in r.output
    W = _rows(out)
    assert W.shape == (6, len(DOMAINS))
    # token caps: 2 × tokens / 10B (web:news 0.6, the others 0.4 or 0.2), books fixed, minimum weight
    bounds = resolve_bounds(Constraints(target_tokens=1e10, repetition_factor=2.0, min_weight_per_domain=0.05,
                                        fixed_weights={"books": 0.1}), DOMAINS, TOKENS)
    for w in W:
        assert bounds.violations(w) == [], w
    pair = np.linalg.norm(W[:, None, :] - W[None, :, :], axis=2)[np.triu_indices(len(W), 1)]
    assert pair.min() >= 0.01  # distinct within the batch
    assert np.linalg.norm(W[:, None, :] - X[None, :, :], axis=2).min() >= 0.01  # and from every existing run

    # the same batch from the models `olmix fit` saved (no refit), and the fit reports its uncertainty
    fit_dir = tmp_path / "fit"
    f = CliRunner().invoke(cli, ["fit", "--ratios", ratios, "--metrics", metrics, "--priors", priors, "--objective", "loss/web",
                                 "--regression-type", "gp", "--output-dir", str(fit_dir), "--no-plots"])
    assert f.exit_code == 0, f.output
    predicted = json.loads((fit_dir / "predicted_performance.json").read_text())
    assert predicted["objective"]["std"] > 0
    report = json.loads((fit_dir / "fit_report.json").read_text())
    assert report["uncertainty_at_proposal"]["objective_std"] == predicted["objective"]["std"]
    out2 = tmp_path / "next2.json"
    r2 = CliRunner().invoke(cli, [a if a != str(out) else str(out2) for a in args] + ["--model-dir", str(fit_dir)])
    assert r2.exit_code == 0, r2.output
    W2 = _rows(out2)
    assert all(bounds.violations(w) == [] for w in W2)


def test_impossible_batch_is_a_clear_error(tmp_path, files):
    _, ratios, metrics, priors = files
    # every domain but one fixed: the only feasible mixture is one point, so two distinct ones cannot exist
    fixed = [a for d, w in zip(DOMAINS[:4], [0.3, 0.2, 0.2, 0.2]) for a in ("--fixed-weight", f"{d}={w}")]
    r = CliRunner().invoke(cli, ["mix", "next", "--ratios", ratios, "--metrics", metrics, "--variants", "2",
                                 "--output", str(tmp_path / "n.json"), *fixed])
    assert r.exit_code == 1
    assert "cannot choose 2" in r.output or "no candidate" in r.output
    assert not (tmp_path / "n.json").exists()


def test_regression_type_chooses_the_posterior_mean_models(tmp_path, files):
    _, ratios, metrics, priors = files
    base = ["mix", "next", "--ratios", ratios, "--metrics", metrics, "--priors", priors, "--variants", "3"]
    r = CliRunner().invoke(cli, [*base, "--output", str(tmp_path / "n.json"), "--regression-type", "log_linear"])
    assert r.exit_code == 0, r.output
    assert "models: " + ", ".join(f"{m}=log_linear" for m in METRICS) in r.output
    assert len(_rows(tmp_path / "n.json")) == 3
    bad = CliRunner().invoke(cli, [*base, "--output", str(tmp_path / "b.json"), "--regression-type", "nope"])
    assert bad.exit_code == 1 and "--regression-type" in bad.output, bad.output
    both = CliRunner().invoke(cli, [*base, "--output", str(tmp_path / "c.json"), "--regression-type", "gp",
                                    "--model-dir", str(tmp_path)])
    assert both.exit_code == 2 and "--model-dir" in both.output, both.output
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "c.json").exists()


def test_candidates_around_a_capped_proposal_fill_its_cap_face():
    """A capped optimum sits on the face where its capped domains are at their caps: the pool samples that face
    densely (plain draws reach it only when every capped domain is pushed past its cap), all rows feasible."""
    from types import SimpleNamespace

    from olmix_core.fit.constraints import repair
    from olmix_core.fit.posterior import active_caps, candidate_pool

    caps = dict(zip(DOMAINS, [0.15, 0.1, 1.0, 1.0, 1.0]))
    bounds = resolve_bounds(Constraints(target_tokens=1.0, min_weight_per_domain=0.02), DOMAINS, caps)
    center = repair(np.array([0.5, 0.3, 0.1, 0.05, 0.05]), bounds)
    assert active_caps(center, bounds).tolist() == [True, True, False, False, False]
    problem = SimpleNamespace(prior=np.full(len(DOMAINS), 0.2), bounds=bounds)
    pool = candidate_pool(problem, [center], 500, np.random.default_rng(0))
    assert all(bounds.violations(x) == [] for x in pool)
    on_face = (np.abs(pool[:, 0] - bounds.hi[0]) < 1e-12) & (np.abs(pool[:, 1] - bounds.hi[1]) < 1e-12)
    assert on_face.mean() >= 0.3
    assert len(np.unique(pool[on_face, 2:].round(6), axis=0)) >= 0.9 * on_face.sum()  # spread over the face
    free_center = repair(np.array([0.1, 0.05, 0.45, 0.2, 0.2]), bounds)
    assert not active_caps(free_center, bounds).any()

"""Every regressor: fits a known law (held-out rank correlation), saves/loads to identical predictions,
refuses too few runs; `auto` selects by K-fold CV on the training rows and reports its scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from olmix_core.errors import DataError
from olmix_core.fit.fitting import FittedModels, fit_metric, fit_models, kfold, rankdata, scores
from olmix_core.fit.regressors import REGRESSORS, LogLinearRegressor, make_regressor, regressor_from_state
from olmix_core.fit.tables import SwarmTable

from .conftest import DOMAINS, METRICS

# held-out Spearman each regressor must reach on the synthetic law (80 train / 200 held-out mixtures)
MIN_RHO = {
    "lightgbm": 0.75,
    "log_linear": 0.9,
    "log_linear_power": 0.9,
    "linear": 0.7,
    "gp": 0.9,
    "bimix": 0.8,
    "search": 0.3,
}


@pytest.fixture(scope="module")
def heldout(law, prior):
    from olmix_core.fit.synthetic import make_swarm

    return make_swarm(law, 200, prior, noise=0.0, seed=99)


@pytest.mark.parametrize("kind", sorted(REGRESSORS))
def test_regressor_fits_known_law_and_round_trips(kind, swarm, heldout):
    X, Y = swarm
    Xh, Yh = heldout
    reg = make_regressor(kind).fit(X, Y[:, 0], seed=0)
    pred = reg.predict(Xh)
    assert pred.shape == (len(Xh),) and np.all(np.isfinite(pred))
    rho = scores(pred, Yh[:, 0])["spearman"]
    assert rho >= MIN_RHO[kind], f"{kind}: held-out Spearman {rho:.3f}"
    again = regressor_from_state(json.loads(json.dumps(reg.state())))
    np.testing.assert_allclose(again.predict(Xh), pred, rtol=1e-12, atol=1e-12)
    std = again.predict_std(Xh[:5])
    assert (std is not None) == reg.has_std


def test_log_linear_recovers_a_data_mixing_law():
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(4), 60)
    t = np.array([-2.0, 0.5, 1.0, 0.0])
    y = 1.5 + np.exp(0.3 + X @ t)
    law = LogLinearRegressor().fit(X, y).law()
    assert law["s"] == 1.0
    assert law["c"] == pytest.approx(1.5, abs=1e-3)
    Z = rng.dirichlet(np.ones(4), 20)
    pred = law["c"] + law["s"] * np.exp(law["b"] + Z @ np.array(law["t"]))
    np.testing.assert_allclose(pred, 1.5 + np.exp(0.3 + Z @ t), rtol=1e-4)


def test_log_linear_fits_increasing_scores_with_negative_sign():
    rng = np.random.default_rng(1)
    X = rng.dirichlet(np.ones(3), 50)
    y = 0.9 - np.exp(-1.0 - 2.0 * X[:, 0])  # accuracy rising with domain 0
    reg = LogLinearRegressor().fit(X, y)
    assert reg.law()["s"] == -1.0
    assert scores(reg.predict(X), y)["spearman"] > 0.999


def test_huber_fit_resists_a_failed_run():
    rng = np.random.default_rng(2)
    X = rng.dirichlet(np.ones(3), 60)
    y = 2.0 + np.exp(X @ np.array([-1.0, 0.0, 1.0]))
    y_bad = y.copy()
    y_bad[0] = 50.0  # a diverged run
    reg = LogLinearRegressor().fit(X, y_bad)
    np.testing.assert_allclose(reg.predict(X[1:]), y[1:], rtol=0.02)


def test_gp_uncertainty_grows_away_from_data():
    rng = np.random.default_rng(3)
    X = rng.dirichlet(np.full(3, 5.0), 40)  # mixtures near the centre only
    y = X @ np.array([1.0, 2.0, 3.0])
    gp = make_regressor("gp").fit(X, y)
    near = gp.predict_std(X[:5]).mean()
    far = gp.predict_std(np.eye(3)).mean()
    assert far > 3 * near


@pytest.mark.parametrize("kind", ["lightgbm", "log_linear", "log_linear_power", "linear", "bimix"])
def test_too_few_runs_is_an_error_naming_the_regressor(kind):
    X = np.random.default_rng(0).dirichlet(np.ones(8), 6)
    with pytest.raises(DataError, match=f"regressor '{kind}' needs at least \\d+ runs for 8 domains"):
        fit_metric(X, X[:, 0], "m", kind)


def test_kfold_partitions_rows():
    folds = kfold(23, 5, seed=1)
    assert len(folds) == 5
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(23))
    for tr, va in folds:
        assert not set(tr) & set(va) and len(tr) + len(va) == 23


def test_rankdata_matches_average_ranks():
    assert rankdata(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def _table(swarm) -> SwarmTable:
    X, Y = swarm
    return SwarmTable([str(i) for i in range(len(X))], None, "run", DOMAINS, METRICS, X, Y)


def test_auto_selects_by_cv_and_saves(swarm, tmp_path, heldout):
    table = _table(swarm)
    cands = ["lightgbm", "log_linear", "gp", "linear"]
    models = fit_models(table, "auto", folds=4, seed=0, n_jobs=1, candidates=cands)
    for m in METRICS:
        f = models.fits[m]
        singles = {c: f.scores[c]["spearman"] for c in cands}
        ranked = sorted(singles, key=lambda c: -singles[c])
        want = [c for c in ranked[:3] if singles[c] >= singles[ranked[0]] - 0.1]  # the leaders, none far behind
        assert f.chosen == "+".join(want)
        assert f.oof is not None and f.oof.shape == (len(table.ids),)
        assert scores(f.oof, table.Y[:, METRICS.index(m)])["spearman"] == pytest.approx(f.scores[f.chosen]["spearman"])
    report = models.report()
    assert set(report["metrics"]) == set(METRICS)
    assert {"spearman", "pearson", "mae"} <= set(report["metrics"][METRICS[0]]["cv"]["gp"])
    models.save(tmp_path / "models")
    loaded = FittedModels.load(tmp_path / "models")
    Xh = heldout[0]
    np.testing.assert_allclose(loaded.predict(Xh), models.predict(Xh), rtol=1e-12)
    assert loaded.domains == DOMAINS and loaded.metrics == METRICS


def test_auto_uses_only_the_given_rows(swarm):
    """Selection is a function of the training table alone: appending unrelated rows elsewhere cannot matter,
    and changing one training target changes the CV scores (they are computed from these rows)."""
    X, Y = swarm
    a = fit_metric(X, Y[:, 0], "m", "auto", folds=4, candidates={"log_linear": {}, "linear": {}})
    b = fit_metric(X, Y[:, 0], "m", "auto", folds=4, candidates={"log_linear": {}, "linear": {}})
    assert a.scores == b.scores and a.chosen == b.chosen
    Y2 = Y[:, 0].copy()
    Y2[0] += 1.0
    c = fit_metric(X, Y2, "m", "auto", folds=4, candidates={"log_linear": {}, "linear": {}})
    assert c.scores["linear"] != a.scores["linear"]


def test_auto_skips_candidates_that_need_more_runs():
    X = np.random.default_rng(0).dirichlet(np.ones(10), 12)
    f = fit_metric(X, X @ np.arange(10.0), "m", "auto", folds=3)
    assert "log_linear_power" not in f.scores and any("log_linear_power skipped" in n for n in f.notes)
    with pytest.raises(DataError, match="no regressor can be fitted"):
        fit_metric(X[:6], X[:6, 0], "m", "auto", folds=3, candidates={"log_linear_power": {}})


@pytest.mark.parametrize("kind", ["log_linear", "auto"])
def test_parallel_fit_equals_serial(swarm, kind):
    """Metrics split into per-worker chunks (batched kinds) or kept together (GP) give the serial fit's models."""
    table = _table(swarm)
    a = fit_models(table, kind, n_jobs=1, folds=3)
    b = fit_models(table, kind, n_jobs=2, folds=3)
    np.testing.assert_allclose(a.predict(table.X), b.predict(table.X), rtol=1e-9)
    for m, fit in a.report()["metrics"].items():  # equal up to rounding (BLAS blocks batches differently)
        other = b.report()["metrics"][m]
        assert fit["chosen"] == other["chosen"]
        for cand, sc in fit["cv"].items():
            assert other["cv"][cand] == pytest.approx(sc, rel=1e-9)


def test_load_errors(tmp_path):
    from olmix_core.errors import ArtifactCorrupt, ArtifactMissing

    with pytest.raises(ArtifactMissing, match="no manifest.json"):
        FittedModels.load(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ArtifactCorrupt, match="format 'other'"):
        FittedModels.load(tmp_path)


def test_joint_fits_match_single_fits_and_batched_prediction(swarm, heldout):
    """fit_many (all metrics at once) gives each metric the model a single fit gives (log-linear: independent
    problems in one batch), and FittedModels' batched prediction equals the models' own predictions."""
    X, Y = swarm
    Xh = heldout[0]
    for kind in ("log_linear", "log_linear_power", "linear"):
        joint = REGRESSORS[kind].fit_many(X, Y)
        for j in range(Y.shape[1]):
            single = make_regressor(kind).fit(X, Y[:, j])
            np.testing.assert_allclose(joint[j].predict(Xh), single.predict(Xh), rtol=1e-9, atol=1e-9)
    models = fit_models(_table(swarm), "auto", folds=3, n_jobs=1, candidates=["gp", "lightgbm", "log_linear"])
    P, S = models.predict_mean_std(Xh)
    for j, m in enumerate(METRICS):
        p, s = models.model(m).predict_mean_std(Xh)
        np.testing.assert_allclose(P[:, j], p, rtol=1e-9, atol=1e-12)
        if s is not None:
            np.testing.assert_allclose(S[:, j], s, rtol=1e-7, atol=1e-12)


def test_gp_metrics_fitted_together_share_one_kernel(swarm):
    X, Y = swarm
    gps = REGRESSORS["gp"].fit_many(X, Y)
    assert len({id(g.kernel) for g in gps}) == 1
    assert len({tuple(g.theta[: X.shape[1]]) for g in gps}) == 1  # shared lengthscales
    assert len({g.sn2 for g in gps}) == len(gps)  # own noise variance per metric
    again = [regressor_from_state(json.loads(json.dumps(g.state()))) for g in gps]
    assert len({id(g.kernel) for g in again}) == 1


def test_compiled_trees_equal_lightgbm(swarm, heldout):
    """The compiled walk gives LightGBM's own predictions: small batches (serial), large ones (all cores), several
    models at once (one column each), and single-leaf trees (a model boosted on a constant)."""
    from olmix_core.fit.trees import TreeTable

    X, Y = swarm
    regs = [make_regressor("lightgbm", num_iterations=60).fit(X, Y[:, j]) for j in range(Y.shape[1])]
    flat = make_regressor("lightgbm", num_iterations=5).fit(X, np.full(len(X), 2.5))
    regs.append(flat)
    assert flat.booster.dump_model()["tree_info"][0]["num_leaves"] == 1
    tables = [r._tree_table() for r in regs]
    assert all(t is not None for t in tables)
    combined = TreeTable.concat(tables)
    rng = np.random.default_rng(0)
    for Xh in (heldout[0][:50], rng.dirichlet(np.ones(X.shape[1]), 10_000)):
        want = np.column_stack([r.booster.predict(Xh) for r in regs])
        np.testing.assert_allclose(combined.predict_groups(Xh), want, rtol=0, atol=1e-12)
        np.testing.assert_allclose(regs[0].predict(Xh), want[:, 0], rtol=0, atol=1e-12)


def test_fit_progress_reaches_one(swarm):
    calls = []
    fit_models(_table(swarm), "auto", folds=3, n_jobs=1, candidates=["lightgbm", "log_linear"],
               progress=lambda f, msg: calls.append((f, msg)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any(msg.startswith("lightgbm:") for _, msg in calls) and any(msg.startswith("log_linear:") for _, msg in calls)


@pytest.mark.parametrize("kind", ["log_linear", "log_linear_power"])
def test_log_linear_normal_equations_match_the_jacobian(swarm, kind):
    """The structured normal equations (no Jacobian formed) equal JᵀWJ and JᵀWr of a numerical Jacobian of the
    residuals, Huber weights below 1 and ridge rows included."""
    X, Y = swarm
    reg = make_regressor(kind)
    F = reg._features(X)
    n, k = F.shape
    rng = np.random.default_rng(3)
    P = np.c_[rng.normal(size=(4, 2)), 0.3 * rng.normal(size=(4, k))]
    s = np.array([1.0, -1.0, 1.0, -1.0])
    Z = np.repeat(Y[:, :1].T, 4, 0)
    R = reg._resid_b(P, s, F, Z)
    W = rng.uniform(0.2, 1.0, R.shape)
    iu, ju = np.triu_indices(k)
    A, g = reg._normal_b(P, s, F, F[:, iu] * F[:, ju], R, W)
    h = 1e-6
    J = np.stack([(reg._resid_b(P + h * np.eye(k + 2)[i], s, F, Z) - R) / h for i in range(k + 2)], axis=2)
    JW = J * W[:, :, None]
    np.testing.assert_allclose(A, JW.transpose(0, 2, 1) @ J, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g, np.einsum("bnp,bn->bp", JW, R), rtol=1e-4, atol=1e-4)


def test_search_predicts_the_nearest_observed_run(swarm, heldout):
    """`search` answers with the metric of the nearest observed mixture (L1), for every metric in one query."""
    X, Y = swarm
    regs = [make_regressor("search").fit(X, Y[:, j]) for j in range(Y.shape[1])]
    Xh = heldout[0]
    nearest = np.abs(Xh[:, None, :] - X[None, :, :]).sum(-1).argmin(1)
    np.testing.assert_array_equal(type(regs[0]).predict_many(regs, Xh), Y[nearest])
    np.testing.assert_array_equal(regs[1].predict(Xh), Y[nearest, 1])


def test_predictions_stay_in_the_training_band(swarm, heldout, tmp_path):
    """Every model's predictions are kept within the training range widened by one range on each side (laws with
    an exponential extrapolate off any scale far from the runs); the band is saved with the models."""
    from olmix_core.fit.fitting import clip_range

    table = _table(swarm)
    models = fit_models(table, "auto", folds=3, n_jobs=1, candidates=["log_linear", "gp"])
    band = clip_range(table.Y)
    lo, hi, span = table.Y.min(0), table.Y.max(0), np.ptp(table.Y, axis=0)
    np.testing.assert_allclose(band[0], np.where(lo >= 0, np.maximum(lo - span, 0), lo - span))
    np.testing.assert_allclose(band[1], np.where(hi <= 0, np.minimum(hi + span, 0), hi + span))
    # a loss seen in [1, 3] is never predicted below 0; a score seen in [-3, -1] never above 0; a mixed one widens
    mixed = clip_range(np.array([[1.0, -3.0, -1.0], [3.0, -1.0, 2.0]]))
    np.testing.assert_allclose(mixed, [[0.0, -5.0, -4.0], [5.0, 0.0, 5.0]])
    for j, m in enumerate(table.metrics):
        assert models.fits[m].clip == pytest.approx((band[0, j], band[1, j]))
    far = np.eye(len(DOMAINS))  # single-domain mixtures, unlike any run
    m0 = table.metrics[0]
    models.fits[m0].clip = (float(table.Y[:, 0].min()), float(table.Y[:, 0].min()) + 1e-3)  # a narrow band
    models._cache.clear()
    P = models.predict(np.vstack([far, heldout[0][:20]]))
    assert P[:, 0].min() >= models.fits[m0].clip[0] and P[:, 0].max() <= models.fits[m0].clip[1]
    models.save(tmp_path / "m")
    assert FittedModels.load(tmp_path / "m").fits[m0].clip == pytest.approx(models.fits[m0].clip)

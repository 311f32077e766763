"""Fit and propose as two steps (what the Prefect flow does) give what one `run_fit` gives."""

import json

import pytest

from olmix_core.errors import DataError
from olmix_core.fit import FitOptions, propose_from_fit, run_fit


def test_two_steps_match_one(swarm_files, tmp_path):
    ratios, metrics, priors = swarm_files
    opts = dict(regression_type="log_linear", objective="loss/web", min_weight_per_domain=0.05, seed=1, n_jobs=1)
    whole = run_fit(ratios, metrics, tmp_path / "whole", FitOptions(**opts), priors=str(priors))
    run_fit(ratios, metrics, tmp_path / "split", FitOptions(**opts, fit_only=True), priors=str(priors))
    assert not (tmp_path / "split" / "proposed_weights.json").exists()
    split = propose_from_fit(ratios, metrics, tmp_path / "split", FitOptions(**opts), priors=str(priors))
    assert split.proposed_weights == pytest.approx(whole.proposed_weights, abs=1e-9)
    assert all(w == 0 or w >= 0.05 - 1e-12 for w in split.proposed_weights.values())
    written = json.loads((tmp_path / "split" / "predicted_performance.json").read_text())
    assert written["objective"]["predicted"] == pytest.approx(whole.predicted.objective.predicted)
    assert set(written["prior_weights"]) == set(whole.proposed_weights)
    assert (tmp_path / "split" / "plots" / "proposed_vs_prior.png").stat().st_size > 0


def test_tables_that_do_not_match_the_models_are_refused(swarm_files, tmp_path):
    ratios, metrics, priors = swarm_files
    run_fit(ratios, metrics, tmp_path / "f", FitOptions(regression_type="linear", fit_only=True, n_jobs=1), priors=str(priors))
    with pytest.raises(DataError, match="models were fitted on"):
        propose_from_fit(ratios, metrics, tmp_path / "f", FitOptions(regression_type="linear", metrics=["loss/web"], n_jobs=1))

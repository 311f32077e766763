"""Task families (aggregated or sharing a family weight), the held-out split and the worst mixture, as in Ai2's
olmix, on a small synthetic swarm."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from olmix_core.errors import DataError
from olmix_core.fit import run_fit
from olmix_core.fit.families import load_selection
from olmix_core.fit.options import FitOptions

FAMILIES = {"web": ["loss/web", "acc:qa"], "code": ["loss/code"]}
BASE = {"regression": {"type": "linear", "n_jobs": 1, "folds": 3}, "plots": False, "eval": {"tasks": FAMILIES}}


def _opts(**sections):
    out = json.loads(json.dumps(BASE))
    for k, v in sections.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return FitOptions.from_dict(out)


def test_aggregation_fits_one_column_per_family_on_the_mean(swarm_files):
    r, m, _ = swarm_files
    plain = load_selection(r, m, _opts())
    agg = load_selection(r, m, _opts(regression={"aggregate_task_families": True}))
    assert agg.table.metrics == ["web", "code"] and agg.aggregated
    col = plain.table.metrics.index
    np.testing.assert_allclose(agg.table.Y[:, 0], plain.table.Y[:, [col("loss/web"), col("acc:qa")]].mean(1))
    dropped = load_selection(r, m, _opts(regression={"aggregate_task_families": True},
                                         filtering={"drop_metrics": ["acc:qa", "not_there"]}))
    np.testing.assert_allclose(dropped.table.Y[:, 0], plain.table.Y[:, col("loss/web")])
    assert dropped.dropped == ["acc:qa"] and any("not_there" in w for w in dropped.table.warnings)
    with pytest.raises(DataError, match=r"fit.eval.tasks: 1 task\(s\) are not columns .*'zz'"):
        load_selection(r, m, _opts(eval={"tasks": {"web": ["loss/web", "zz"]}}))


def test_family_weights_apply_to_families_or_are_shared_by_their_tasks(swarm_files, tmp_path):
    """Linear fits: the mean of per-task fits is the fit of the mean, so both settings give the same objective."""
    r, m, pri = swarm_files
    weights = {"filtering": {"obj_weights": {"web": "3/4", "code": "1/4"}}, "proposer": {"type": "general"}}
    agg = run_fit(r, m, tmp_path / "a", _opts(regression={"aggregate_task_families": True}, **weights), priors=str(pri))
    shared = run_fit(r, m, tmp_path / "s", _opts(**weights), priors=str(pri))
    assert agg.predicted.objective.definition == "0.75·web + 0.25·code"
    assert shared.predicted.objective.definition == "0.375·loss/web + 0.375·acc:qa + 0.25·loss/code"
    assert agg.predicted.objective.at_prior == pytest.approx(shared.predicted.objective.at_prior, rel=1e-9)
    assert agg.predicted_objective == pytest.approx(shared.predicted_objective, rel=1e-4)


def test_worst_mix_is_worse_than_the_prior_and_the_best(swarm_files, tmp_path):
    r, m, pri = swarm_files
    best = run_fit(r, m, tmp_path / "b", _opts(proposer={"type": "general"}, eval={"tasks": {}}), priors=str(pri))
    worst = run_fit(r, m, tmp_path / "w", _opts(proposer={"type": "general", "make_worst_mix": True},
                                                eval={"tasks": {}}), priors=str(pri))
    wp, bp = worst.predicted.objective, best.predicted.objective
    assert wp.direction.startswith("maximize") and wp.definition.startswith("worst mixture")
    assert wp.predicted > wp.at_prior > bp.predicted
    assert wp.at_prior == pytest.approx(bp.at_prior)


def test_held_out_split_matches_ai2_and_is_reported(swarm_files, tmp_path):
    r, m, pri = swarm_files
    res = run_fit(r, m, tmp_path / "h", _opts(regression={"n_test": 16, "train_split": 40, "seed": 7}), priors=str(pri))
    hold = res.report["holdout"]
    ids = [f"syn-00000000-{i:04d}" for i in range(80)]
    train, test = train_test_split(np.arange(80), test_size=16 / 80, random_state=7)
    assert hold["test_ids"] == [ids[i] for i in test] and hold["test_runs"] == 16
    assert hold["train_runs"] == 40 and hold["unused_runs"] == 24 and res.report["runs"] == 40
    assert set(hold["metrics"]) == {"loss/web", "acc:qa", "loss/code"} and hold["mean_spearman"] > 0.5
    assert res.proposal is None and any("n_test is 16" in w for w in res.warnings)  # Ai2: no proposal then

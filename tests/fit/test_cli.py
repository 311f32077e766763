"""`olmix fit` and `olmix predict` through click: outputs, option forms, config file, errors -> exit 1."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from olmix_core.cli import cli

from .conftest import DOMAINS, METRICS


def _run(args, ok=True):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output + (res.stderr if hasattr(res, "stderr") else "")
    return res


def test_fit_writes_every_artifact_and_predict_reloads(swarm_files, tmp_path):
    r, m, pri = swarm_files
    out = tmp_path / "fit"
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(dict(zip(DOMAINS, [0.2] * 5))))
    res = _run(
        [
            "fit",
            "--ratios",
            str(r),
            "--metrics",
            str(m),
            "--priors",
            str(pri),
            "--output-dir",
            str(out),
            "--regression-type",
            "log_linear",
            "--proposer-type",
            "exact",
            "--opt-avg-metric",
            "--min-weight-per-domain",
            "0.05",
            "--fixed-weight",
            "wiki:science=0.1",
            "--target-tokens",
            "5B",
            "--repetition-factor",
            "1.5",
            "--kl-reg",
            "0.001",
            "--reference",
            str(ref),
            "--tol",
            "0.01",
            "--seed",
            "1",
            "--n-jobs",
            "1",
        ]
    )
    assert "proposal (exact)" in res.output
    for f in [
        "proposed_weights.json",
        "predicted_performance.json",
        "fit_report.json",
        "models/manifest.json",
        "plots/pred_vs_actual.png",
        "plots/interaction_matrix.png",
        "plots/proposed_vs_prior.png",
        "plots/pareto.png",
    ]:
        assert (out / f).exists(), f
        if f.endswith(".png"):
            assert (out / f).read_bytes()[:4] == b"\x89PNG"
    w = json.loads((out / "proposed_weights.json").read_text())
    assert list(w) == DOMAINS and abs(sum(w.values()) - 1) < 1e-12
    assert w["wiki:science"] == 0.1
    tokens = json.loads(pri.read_text())["token_counts"]
    for d, v in w.items():
        assert v == 0 or v >= 0.05
        assert v * 5e9 <= tokens[d] * 1.5
    perf = json.loads((out / "predicted_performance.json").read_text())
    assert perf["objective"]["definition"] == "mean of 3 metrics"
    for k in METRICS:
        e = perf["metrics"][k]
        assert e["predicted"] <= e["at_reference"] + 0.01 + 1e-12
        assert e["cv_mae"] > 0 and e["model"] == "log_linear"
    report = json.loads((out / "fit_report.json").read_text())
    assert report["runs"] == 80 and report["proposer"]["type"] == "exact"
    assert set(report["metrics"]["loss/web"]["cv"]["log_linear"]) == {"spearman", "pearson", "mae"}
    assert set(report["interaction"]["loss/web"]) == set(DOMAINS)

    # predict: id column then metric names, one row per input row, same values as the library
    shuffled = pd.read_csv(r).sample(frac=1.0, random_state=0)
    cols = ["run", "name"] + DOMAINS[::-1]  # domain columns in another order: matched by name
    shuffled[cols].head(7).to_csv(tmp_path / "t.csv", index=False)
    _run(["predict", "--model-dir", str(out), "--ratios", str(tmp_path / "t.csv"), "--output", str(tmp_path / "p.csv")])
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["run"] + METRICS
    assert pred["run"].tolist() == shuffled["run"].head(7).tolist()
    from olmix_core.fit import FittedModels

    models = FittedModels.load(out / "models")
    X = shuffled[DOMAINS].head(7).to_numpy()
    np.testing.assert_allclose(pred[METRICS].to_numpy(), models.predict(X / X.sum(1, keepdims=True)), rtol=1e-9)


def test_fit_only_regmix_layout_and_config_file(regmix_files, tmp_path):
    r, m = regmix_files
    cfg = tmp_path / "fit.yaml"
    cfg.write_text(
        f"ratios: {r}\nmetrics: {m}\noutput_dir: {tmp_path / 'out'}\nregression_type: linear\nfit_only: true\n"
        "no_plots: true\nmetric: [metric/loss/web, metric/acc:qa]\nn_jobs: 1\n"
    )
    res = _run(["fit", "--config", str(cfg), "--regression-type", "log_linear"])  # CLI overrides the file
    assert "metric/loss/web: log_linear" in res.output
    out = tmp_path / "out"
    assert not (out / "proposed_weights.json").exists() and not (out / "plots").exists()
    report = json.loads((out / "fit_report.json").read_text())
    assert list(report["metrics"]) == ["metric/loss/web", "metric/acc:qa"]
    assert report["regression_type"] == "log_linear"
    _run(["predict", "--model-dir", str(out / "models"), "--ratios", str(r), "--output", str(tmp_path / "p.csv")])
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["index", "metric/loss/web", "metric/acc:qa"] and len(pred) == 80


def test_auto_fit_with_maximize_and_weights(swarm_files, tmp_path):
    r, m, _ = swarm_files
    out = tmp_path / "o"
    res = _run(
        [
            "fit",
            "--ratios",
            str(r),
            "--metrics",
            str(m),
            "--output-dir",
            str(out),
            "--candidates",
            "log_linear,linear",
            "--obj-weights",
            "loss/web=2,acc:qa=1",
            "--maximize",
            "acc:qa",
            "--proposer-type",
            "general",
            "--n-jobs",
            "1",
            "--folds",
            "3",
            "--no-plots",
        ]
    )
    assert "warning: no priors given" in res.output
    perf = json.loads((out / "predicted_performance.json").read_text())
    assert perf["objective"]["definition"].startswith("2·loss/web + 1·acc:qa")
    assert perf["metrics"]["acc:qa"]["direction"] == "maximize"
    report = json.loads((out / "fit_report.json").read_text())
    assert report["folds"] == 3 and set(report["metrics"]["loss/web"]["cv"]) >= {"log_linear", "linear"}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fixed-weight", "nope=0.1"], "'nope' is not a domain"),
        (["--fixed-weight", "code=0.7", "--fixed-weight", "books=0.5"], "--fixed-weight values sum to 1.2 > 1"),
        (["--target-tokens", "1T"], "token caps: the free domains can take at most"),
        (["--objective", "loss/none"], "--objective: 'loss/none' is not a metric"),
        (["--maximize", "zzz"], "--maximize: ['zzz'] are not metrics"),
        (["--obj-weights", "loss/web"], "--obj-weights: 'loss/web' is not NAME=VALUE"),
        (["--objective", "loss/web", "--opt-avg-metric"], "alternatives"),
        (
            ["--proposer-type", "exact", "--regression-type", "gp"],
            "--proposer-type: exact needs --regression-type log_linear",
        ),
        (["--folds", "1"], "--folds: must be >= 2"),
        (["--seed", "-5"], "--seed: must be >= 0"),
        (["--kl-reg", "-1"], "--kl-reg: value must be >= 0"),
        (["--make-worst-mix", "--proposer-type", "exact"], "--make-worst-mix: the exact proposer only minimises"),
        (["--target-tokens", "lots"], "'lots' is not a number"),
    ],
)
def test_bad_options_exit_1_with_message(swarm_files, tmp_path, extra, message):
    r, m, pri = swarm_files
    res = CliRunner().invoke(
        cli,
        [
            "fit",
            "--ratios",
            str(r),
            "--metrics",
            str(m),
            "--priors",
            str(pri),
            "--output-dir",
            str(tmp_path / "o"),
            *extra,
        ],
    )
    assert res.exit_code == 1, res.output
    assert message in res.output
    assert not (tmp_path / "o").exists()  # failed before fitting or writing anything


def test_bad_tables_exit_1(tmp_path):
    (tmp_path / "r.csv").write_text("run,name,a,b\nx,x,0.5,0.4\n")
    (tmp_path / "m.csv").write_text("run,name,loss\nx,x,1\n")
    res = CliRunner().invoke(
        cli,
        [
            "fit",
            "--ratios",
            str(tmp_path / "r.csv"),
            "--metrics",
            str(tmp_path / "m.csv"),
            "--output-dir",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1 and "r.csv: line 2 (run 'x'): weights sum to 0.900000" in res.output
    res = CliRunner().invoke(cli, ["fit", "--metrics", "m.csv", "--output-dir", "o"])
    assert res.exit_code == 1 and "--ratios is required" in res.output
    res = CliRunner().invoke(cli, ["predict", "--model-dir", str(tmp_path), "--ratios", "r.csv", "--output", "p.csv"])
    assert res.exit_code == 1 and "no manifest.json" in res.output


def test_predict_rejects_unknown_domains(swarm_files, tmp_path):
    r, m, _ = swarm_files
    _run(
        [
            "fit",
            "--ratios",
            str(r),
            "--metrics",
            str(m),
            "--output-dir",
            str(tmp_path / "o"),
            "--regression-type",
            "linear",
            "--fit-only",
            "--no-plots",
            "--n-jobs",
            "1",
        ]
    )
    (tmp_path / "t.csv").write_text("run," + ",".join(DOMAINS) + ",other\nq,0.2,0.2,0.2,0.2,0.1,0.1\n")
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            "--model-dir",
            str(tmp_path / "o"),
            "--ratios",
            str(tmp_path / "t.csv"),
            "--output",
            str(tmp_path / "p.csv"),
        ],
    )
    assert res.exit_code == 1 and "column 'other': weight 0.1 on a domain the models do not know" in res.output
    (tmp_path / "t.csv").write_text("run,code\nq,1.0\n")
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            "--model-dir",
            str(tmp_path / "o"),
            "--ratios",
            str(tmp_path / "t.csv"),
            "--output",
            str(tmp_path / "p.csv"),
        ],
    )
    assert res.exit_code == 1 and "no column for domain(s)" in res.output


def test_fit_writes_to_s3(swarm_files, s3_endpoint):
    from olmix_core.fit import run_fit
    from olmix_core.store import open_fs

    r, m, pri = swarm_files
    url = f"{s3_endpoint}/swarm/abcd1234/fits/f1"
    result = run_fit(
        r,
        m,
        url,
        {"regression_type": "linear", "n_jobs": 1, "plots": False, "proposer_type": "general"},
        priors=str(pri),
    )
    fs, root = open_fs(url)
    assert json.loads(fs.cat_file(f"{root}/proposed_weights.json")) == pytest.approx(result.proposed_weights)
    assert fs.exists(f"{root}/models/manifest.json")
    assert result.predicted_objective == pytest.approx(result.predicted.objective.predicted)
    out = r.parent / "p.csv"
    _run(["predict", "--model-dir", url, "--ratios", str(r), "--output", str(out)])  # fit dir URL -> models/
    assert list(pd.read_csv(out).columns) == ["run"] + METRICS

"""The published swarms read as they are: Ai2's DCLM files (leading unnamed index column) and both of Ai2's fit
configs through `olmix fit --config`, unchanged; RegMix's tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.errors import ConfigError
from olmix_core.fit.fit_file import read_fit_file
from olmix_core.fit.options import FitOptions
from olmix_core.fit.tables import load_tables


def test_published_olmix_tables_read_unchanged(published):
    d = published / "olmix"
    t = load_tables(d / "ratios.csv", d / "metrics.csv")
    assert (len(t.ids), len(t.domains), len(t.metrics)) == (127, 24, 110)
    assert t.id_column == "run" and t.ids[0] == "19g3guks" and t.names[0].endswith("-0000")
    assert "" not in t.domains + t.metrics and not any(c.startswith("Unnamed") for c in t.domains + t.metrics)
    assert t.domains[0] == "adult_content" and t.metrics[0] == "arc_challenge:rc::olmes"
    np.testing.assert_allclose(t.X.sum(1), 1.0)
    assert not t.warnings and t.unmatched is None


@pytest.mark.parametrize("size, rows", [("1m", 512), ("60m", 256), ("1B", 64)])
def test_published_regmix_tables_read_unchanged(published, size, rows):
    d = published / "regmix"
    split = "train" if size == "1m" else "test"
    t = load_tables(d / f"{split}_mixture_{size}.csv", d / f"{split}_pile_loss_{size}.csv")
    assert t.id_column == "index" and len(t.domains) == 17 and len(t.metrics) == 13
    assert len(t.ids) == rows and t.unmatched is None


def test_dclm_per_family_config_runs_unchanged(published, tmp_path, monkeypatch):
    """Ai2's RQ5 config: one log-linear model per family, family weights 7/52, 19/52, 26/52, exact proposer with
    KL 0.05 under 6T-token caps at 4x repetition. Run from another folder: the swarm paths resolve against the
    config's folder."""
    config = published / "olmix" / "fit_dclm_per_family.yaml"
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["fit", "--config", str(config), "--output", "out", "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "drop_metrics" in res.output  # the tasks dropped inside families are named, not silently handled
    for family in ("math", "code", "qa"):
        assert f"{family}: log_linear" in res.output
    assert "proposal (exact)" in res.output and "all hold" in res.output
    perf = json.loads((tmp_path / "out" / "predicted_performance.json").read_text())
    assert perf["objective"]["definition"] == "0.134615·math + 0.365385·code + 0.5·qa"
    assert perf["objective"]["kl_reg"] == 0.05 and perf["objective"]["predicted"] < perf["objective"]["at_prior"]
    weights = json.loads((tmp_path / "out" / "proposed_weights.json").read_text())
    raw = yaml.safe_load(config.read_text())
    tokens, target = raw["priors"]["token_counts"], 6e12
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-9)
    for d, w in weights.items():  # every token cap holds exactly
        assert w * target <= tokens[d] * 4.0
    report = json.loads((tmp_path / "out" / "fit_report.json").read_text())
    assert report["aggregate_task_families"] and list(report["metrics"]) == ["math", "code", "qa"]
    assert "lab_bench_dbqa" not in report["families"]["qa"] and len(report["families"]["code"]) == 19
    assert report["options"]["constraints"]["target_tokens"] == target


@pytest.mark.slow  # 110 log-linear fits with 5-fold CV
def test_fit_example_config_runs_unchanged(published, tmp_path):
    config = published / "olmix" / "fit_example.yaml"
    res = CliRunner().invoke(cli, ["fit", "--config", str(config), "--output", str(tmp_path / "o"), "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "constraints.enabled is false: constraints.repetition_factor unused" in res.output
    assert "aggregate_task_families is true but eval.tasks names no families" in res.output
    report = json.loads((tmp_path / "o" / "fit_report.json").read_text())
    assert len(report["metrics"]) == 110 and report["regression_type"] == "log_linear"
    assert not (tmp_path / "o" / "proposed_weights.json").exists()  # fit_only: true


def test_swarm_paths_relative_to_the_config_folder_else_the_cwd(published, tmp_path, monkeypatch):
    raw = yaml.safe_load((published / "olmix" / "fit_dclm_per_family.yaml").read_text())
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "fit.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "cfg" / "ratios.csv").write_text("x")
    (tmp_path / "metrics.csv").write_text("x")
    monkeypatch.chdir(tmp_path)
    f = read_fit_file("cfg/fit.yaml")
    assert f.ratios == str((tmp_path / "cfg" / "ratios.csv").resolve())  # next to the config
    assert f.metrics == "metrics.csv"  # not there: the working directory's
    opts = FitOptions.from_dict(f.values, f.path)
    assert opts.filtering.obj_weights == {"math": 7 / 52, "code": 19 / 52, "qa": 26 / 52}
    assert opts.constraints.caps_on and opts.constraints.repetition_factor == 4.0
    assert opts.proposer.type == "exact" and opts.regression.aggregate_task_families
    assert set(f.priors) == {"relative_sizes", "token_counts"} and not [n for n in f.notes if "default" in n]
    (tmp_path / "metrics.csv").unlink()
    with pytest.raises(ConfigError, match=r"swarm\.metrics: metrics\.csv is neither in the config's folder"):
        read_fit_file("cfg/fit.yaml")

"""End to end on demo data with real training: two proxies trained by `olmix train` → `olmix eval launch --backend
local` → the olmo-cookbook dashboard layout → `olmix results pull --from dashboard` → `olmix fit`."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.config import ExperimentConfig
from tests.convert._ckpt import GROUP

pytestmark = pytest.mark.slow
METRICS = ["lm:target:ce", "lm:target:bpb", "lm:a:ce"]


def test_local_offline_eval_feeds_results_pull_and_fit(trained, tmp_path):
    config, swarm, specs = trained
    # a private copy of the swarm's records (the checkpoints are shared, read-only)
    shutil.copytree(swarm.store.path(swarm.prefix), tmp_path / "store" / config.name / GROUP)
    config = ExperimentConfig.from_dict({**config.model_dump(mode="json"), "storage_root": str(tmp_path / "store")})
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(config.to_yaml())
    runner = CliRunner()

    r = runner.invoke(cli, ["eval", "launch", "--config", str(cfg_path), "--group-id", GROUP, "--backend", "local", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    runs = [s.run_name for s in specs]
    assert report["evaluated"] == runs and report["failed"] == {}
    dashboard = tmp_path / "store" / "evals" / f"olmix-{GROUP}"
    assert sorted(p.name for p in dashboard.iterdir()) == [f"{run}_step30" for run in runs]

    # the offline loss is olmo-core's in-loop loss, up to the two documented differences: the in-loop evaluator
    # scores over the padded vocabulary and counts each document's last token with zero loss
    from olmix_core.convert.checkpoints import load_model, resolve_checkpoint
    from olmix_core.offline_eval.lm import domain_loss, read_tokens, split_documents

    for spec in specs:
        model = load_model(resolve_checkpoint(spec.checkpoint_dir))
        docs = split_documents(read_tokens(config.evaluation.sources["a"], "uint16"), 256, 256)
        padded = domain_loss(model, "a", docs, 384, batch_size=16, device="cpu")
        in_loop = json.loads((tmp_path / "store" / config.name / GROUP / "runs" / spec.run_name / "result.json").read_text())["metrics"]["eval/lm/a/CE loss"]
        assert padded.ce_loss * padded.tokens / (padded.tokens + padded.documents) == pytest.approx(in_loop, abs=1e-4)

    out = tmp_path / "pulled"
    r = runner.invoke(cli, ["results", "pull", "--config", str(cfg_path), "--group-id", GROUP, "--from", "dashboard",
                            "--metrics", ",".join(METRICS), "--output-dir", str(out)])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "metrics.csv").set_index("run")
    assert list(table.index) == runs and list(table.columns) == ["name", *METRICS]
    for run in runs:
        assert table.loc[run, "lm:target:ce"] == pytest.approx(report["runs"][run]["metrics"]["lm:target:ce"])
    # the run trained mostly on source a scores better on a than the other
    assert table.loc[runs[0], "lm:a:ce"] < table.loc[runs[1], "lm:a:ce"]
    ratios = pd.read_csv(out / "ratios.csv").set_index("run")
    assert ratios.loc[runs[0], "a"] == pytest.approx(0.7)

    fit_dir = tmp_path / "fit"
    r = runner.invoke(cli, ["fit", "--ratios", str(out / "ratios.csv"), "--metrics", str(out / "metrics.csv"), "--output-dir", str(fit_dir),
                            "--regression-type", "search", "--objective", "lm:target:bpb", "--no-plots", "--n-jobs", "1"])
    assert r.exit_code == 0, r.output
    proposal = json.loads((fit_dir / "proposed_weights.json").read_text())
    assert set(proposal) == {"a", "b", "c", "d", "e"} and sum(proposal.values()) == pytest.approx(1.0)

    r = runner.invoke(cli, ["eval", "launch", "--config", str(cfg_path), "--group-id", GROUP, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["skipped"] == runs

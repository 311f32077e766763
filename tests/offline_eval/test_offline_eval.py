"""Offline evaluation: the loss computation, the dashboard layout `olmix results pull` reads, and the three backends
(local on real olmo-core checkpoints; cookbook with a stub olmo-cookbook-eval; Beaker against the stand-in server,
whose job command is then run here, with checkpoints, store and dashboard on a local S3 server)."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ArtifactMissing, ConfigError, DataError
from olmix_core.offline_eval import evaluate_group, layout
from olmix_core.offline_eval.beaker import eval_command
from olmix_core.offline_eval.cookbook import CookbookError
from olmix_core.offline_eval.lm import (
    DomainLoss,
    domain_loss,
    read_tokens,
    split_documents,
)
from olmix_core.results import pull_results
from olmix_core.runspec import RunState, RunStatus, build_run_specs, write_run_specs
from olmix_core.store import SwarmStore, open_fs
from tests.convert._ckpt import GROUP, MIXTURES, demo_config
from tests.fakes.beaker_server import FakeBeaker
from tests.results._swarm import make_swarm

EOS = 256


class Bigram(torch.nn.Module):
    """logits[t] = table[token t]: a model whose exact loss numpy can compute independently."""

    def __init__(self, vocab: int, padded: int) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, padded, generator=torch.Generator().manual_seed(0)))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.table[input_ids]


def expected_ce(table: np.ndarray, docs: list[np.ndarray], vocab: int) -> tuple[float, int]:
    logits = table[:, :vocab]
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
    nll = [-logp[d[i], d[i + 1]] for d in docs for i in range(len(d) - 1)]
    return float(np.mean(nll)), len(nll)


def test_domain_loss_is_the_token_weighted_cross_entropy_over_the_true_vocabulary():
    rng = np.random.default_rng(1)
    vocab = 300  # 256 "bytes" + specials; the model's embedding is padded to 384
    docs = [np.append(rng.integers(0, vocab, size=n), EOS) for n in (3, 40, 17, 1, 90, 5)]
    model = Bigram(vocab, 384)
    want, n = expected_ce(model.table.detach().numpy().astype(np.float64), docs, vocab)
    for batch_size in (1, 4, 16):  # padding must not change anything
        got = domain_loss(model, "x", docs, vocab, batch_size=batch_size, device="cpu")
        assert got.tokens == n and got.documents == len(docs)
        assert got.ce_loss == pytest.approx(want, rel=1e-6)
        assert got.bytes is None and got.bits_per_byte is None
    with_bytes = domain_loss(model, "x", docs, vocab, batch_size=4, device="cpu", byte_vocab=True)
    targets = np.concatenate([d[1:] for d in docs])
    assert with_bytes.bytes == int((targets < 256).sum())
    assert with_bytes.bits_per_byte == pytest.approx(want * n / math.log(2) / with_bytes.bytes, rel=1e-6)
    configured = domain_loss(model, "x", docs, vocab, batch_size=4, device="cpu", bytes_per_token=4.0)
    assert configured.bits_per_byte == pytest.approx(want / math.log(2) / 4.0, rel=1e-6)


def test_documents_are_split_after_eos_and_truncated(tmp_path):
    toks = np.array([5, 6, EOS, EOS, 7, 8, 9, 10, 11, EOS, 12, 13], dtype=np.uint16)
    docs = split_documents(toks, EOS, seq_len=4)
    assert [d.tolist() for d in docs] == [[5, 6, EOS], [7, 8, 9, 10], [12, 13]]  # lone EOS dropped, last kept
    assert [d.tolist() for d in split_documents(toks, EOS, 4, max_tokens=5)] == [[5, 6, EOS]]
    assert len(split_documents(toks, EOS, 4, max_tokens=1)) == 1  # at least one document
    toks.tofile(tmp_path / "x.bin")
    toks[:3].tofile(tmp_path / "y.bin")
    assert read_tokens([str(tmp_path / "*.bin")], "uint16").tolist() == toks.tolist() + toks[:3].tolist()
    with pytest.raises(DataError, match="not a whole number of uint32 tokens"):
        read_tokens([str(tmp_path / "y.bin")], "uint32")
    with pytest.raises(ArtifactMissing, match="no token files match"):
        read_tokens([str(tmp_path / "nothing-*.bin")], "uint16")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_the_layout_is_what_results_pull_reads(tmp_path, where, request):
    root = request.getfixturevalue("s3_endpoint") if where == "s3" else str(tmp_path / "store")
    config, swarm, _ = make_swarm(root)
    prefix = f"{root}/evals"
    config = ExperimentConfig.from_dict({**config.model_dump(mode="json"), "eval_results_prefix": prefix})
    runs = swarm.run_names()
    losses = {}
    for i, run in enumerate(runs[:4]):
        losses[run] = [DomainLoss("target", 2.0 + i, 1000, 10, 2500.0), DomainLoss("web", 3.0 + i, 500, 5, None)]
        rows = layout.metrics_rows(run, f"/ckpt/{run}/step{20 + i}", 20 + i, losses[run], {"target": ["t.bin"]})
        layout.write_results(layout.local_results_dir(prefix, "olmix-" + swarm.group_id, run, 20 + i), rows)
    # an older step of run 0 with other values: the reader keeps the highest step
    old = layout.metrics_rows(runs[0], "/ckpt/old", 5, [DomainLoss("target", 9.0, 1000, 10, 2500.0)], {})
    layout.write_results(layout.local_results_dir(prefix, "olmix-" + swarm.group_id, runs[0], 5), old)

    metrics = ["lm:target:bpb", "lm:target:ce", "lm:web:ce"]
    report = pull_results(config, swarm, source="dashboard", output_dir=str(tmp_path / "out"), metrics=metrics)
    assert report.found == runs[:4] and report.missing == runs[4:]
    table = pd.read_csv(tmp_path / "out" / "metrics.csv").set_index("run")
    for i, run in enumerate(runs[:4]):
        assert table.loc[run, "lm:target:ce"] == pytest.approx(2.0 + i)
        assert table.loc[run, "lm:target:bpb"] == pytest.approx((2.0 + i) * 1000 / math.log(2) / 2500)
        assert table.loc[run, "lm:web:ce"] == pytest.approx(3.0 + i)
    assert report.dropped_metrics == []


def _token_files(folder: Path) -> dict[str, list[str]]:
    rng = np.random.default_rng(3)
    out = {}
    for label, n in (("target", 30), ("a", 12)):
        docs = [np.append(rng.integers(0, 256, size=rng.integers(5, 60)), EOS) for _ in range(n)]
        path = folder / f"{label}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.concatenate(docs).astype(np.uint16).tofile(path)
        out[label] = [str(path)]
    return out


def _swarm(root: str, ckpt_folder, tmp_path: Path, states=("succeeded", "succeeded", "running"), corrupt=(1,), **overrides):
    """Runs with copies of the synthetic checkpoint (local, or uploaded to S3 when `root` is s3://)."""
    folder, _ = ckpt_folder
    config = demo_config(tmp_path / "data", root, variants=len(states), eval_sources=_token_files(tmp_path / "val"), **overrides)
    swarm = SwarmStore.open(config.storage_root, config.name, GROUP)
    specs = build_run_specs(config, swarm, [MIXTURES[i % 2] for i in range(len(states))])
    write_run_specs(swarm, specs)
    swarm.store.write_json(swarm.key(SwarmStore.MIXTURES), [MIXTURES[i % 2] for i in range(len(states))])
    for i, (spec, state) in enumerate(zip(specs, states)):
        local = tmp_path / "ckpts" / spec.run_name
        shutil.copytree(folder, local)
        if i in corrupt:
            for shard in (local / "step10" / "model_and_optim").glob("*.distcp"):
                shard.write_bytes(b"garbage")
        fs, path = open_fs(spec.checkpoint_dir)
        if root.startswith("s3://"):
            fs.put(str(local) + "/", path + "/", recursive=True)
        else:
            shutil.copytree(local, path)
        swarm.store.write_json(swarm.run_key(spec.run_name, "status.json"), RunStatus(run_name=spec.run_name, state=RunState(state)).model_dump(mode="json"))
    return config, swarm, specs


def test_local_backend_evaluates_reports_failures_and_skips_what_is_done(tmp_path, ckpt_folder):
    config, swarm, specs = _swarm(str(tmp_path / "store"), ckpt_folder, tmp_path)
    ok, bad, running = (s.run_name for s in specs)
    dry = evaluate_group(config, swarm, dry_run=True)
    assert dry["runs"][ok]["state"] == "dry-run" and dry["runs"][ok]["step"] == 10 and not (tmp_path / "store" / "evals").exists()
    report = evaluate_group(config, swarm)
    assert report["evaluated"] == [ok] and report["not_finished"] == {running: "running"}
    assert "cannot load the model weights" in report["failed"][bad]
    out = report["runs"][ok]["results"]
    assert out == f"{tmp_path}/store/evals/olmix-{GROUP}/{ok}_step10/olmix-lm/metrics-all.jsonl"
    rows = [json.loads(line) for line in Path(out).read_text().splitlines()]
    names = [r["task_name"] for r in rows]
    assert names == ["lm:target:ce", "lm:target:bpb", "lm:a:ce", "lm:a:bpb"]  # custom vocab: ids < 256 are bytes
    ce = {r["task_config"]["metadata"]["eval_domain"]: r["metrics"]["ce_loss"] for r in rows}
    assert all(0 < v < 20 for v in ce.values()) and rows[1]["task_config"]["primary_metric"] == "bits_per_byte_corr"
    assert rows[0]["model_config"]["revision"] == "step10"
    record = swarm.store.read_json(swarm.run_key(ok, "offline_eval.json"))[f"olmix-{GROUP}"]
    assert record["state"] == "evaluated" and record["backend"] == "local" and record["metrics"]["lm:a:ce"] == ce["a"]
    assert swarm.store.read_json(swarm.run_key(bad, "offline_eval.json"))[f"olmix-{GROUP}"]["state"] == "failed"

    again = evaluate_group(config, swarm)
    assert again["skipped"] == [ok] and again["evaluated"] == [] and bad in again["failed"]
    other = evaluate_group(config, swarm, dashboard="second", runs=[ok])
    assert other["evaluated"] == [ok] and other["runs"][ok]["results"].startswith(f"{tmp_path}/store/evals/second/")
    with pytest.raises(ArtifactMissing, match="not in swarm"):
        evaluate_group(config, swarm, runs=["ckpt-test-5eed0c0d-0042"])


def test_local_backend_config_errors_are_named(tmp_path, ckpt_folder):
    config, swarm, _ = _swarm(str(tmp_path / "store"), ckpt_folder, tmp_path, states=("succeeded",), corrupt=())
    no_sets = ExperimentConfig.from_dict({**config.model_dump(mode="json"), "eval_sources": {}})
    with pytest.raises(ConfigError, match="offline_eval.sources: no offline eval sets"):
        evaluate_group(no_sets, swarm)  # a config problem stops everything before any run is touched
    with pytest.raises(ConfigError, match="offline_eval.bytes_per_token: labels \\['nope'\\]"):
        evaluate_group(ExperimentConfig.from_dict({**config.model_dump(mode="json"), "offline_eval": {"bytes_per_token": {"nope": 4.0}}}), swarm)
    with pytest.raises(ConfigError, match="dashboard"):
        evaluate_group(config, swarm, dashboard="bad name")
    with pytest.raises(ConfigError, match="backend"):
        evaluate_group(config, swarm, backend="slurm")


def _stub_cookbook(bin_dir: Path, log: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    stub = bin_dir / "olmo-cookbook-eval"
    stub.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> {log}\n')
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)


def test_cookbook_backend_runs_the_eval_script_for_runs_not_yet_evaluated(tmp_path, ckpt_folder, monkeypatch):
    prefix = f"file://{tmp_path}/evals"
    config, swarm, specs = _swarm(str(tmp_path / "store"), ckpt_folder, tmp_path, states=("succeeded", "succeeded", "running"),
                                  corrupt=(), eval_results_prefix=prefix, eval_tasks=["arc_easy:rc::olmes"])
    done, todo, running = (s.run_name for s in specs)
    with monkeypatch.context() as m:
        m.setenv("PATH", str(tmp_path / "empty"))
        with pytest.raises(CookbookError, match="olmo-cookbook-eval is not on PATH"):
            evaluate_group(config, swarm, backend="cookbook")
    # the first run already has results in the dashboard (any layout under {run}_step{N}/)
    layout.write_results(f"{tmp_path}/evals/olmix-{GROUP}/{done}_step10/some-task-hash", [{"task_name": "arc_easy:rc::olmes", "metrics": {}}])
    log = tmp_path / "calls.txt"
    _stub_cookbook(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    report = evaluate_group(config, swarm, backend="cookbook")
    assert report["skipped"] == [done] and report["submitted"] == [todo] and report["not_finished"] == {running: "running"}
    assert report["returncode"] == 0 and report["results_prefix"] == prefix
    (call,) = log.read_text().splitlines()
    assert call.startswith(f"evaluate {specs[1].checkpoint_dir}/step10 --dashboard olmix-{GROUP} --tasks arc_easy:rc::olmes")
    assert f"--remote-output-prefix {prefix}" in call
    with pytest.raises(ConfigError, match="^dashboard: the eval script writes to dashboard"):
        evaluate_group(config, swarm, backend="cookbook", dashboard="elsewhere")


def test_beaker_backend_submits_one_job_per_run_and_the_job_command_evaluates(tmp_path, ckpt_folder, s3_endpoint):
    beaker = {"image": "ai2/olmix-test-image", "user": "olmixbot", "clusters": ["ai2/jupiter"],
              "secrets": {"AWS_ACCESS_KEY_ID": "olmixbot_AWS_ID", "AWS_SECRET_ACCESS_KEY": "olmixbot_AWS_KEY"}}
    config, swarm, specs = _swarm(s3_endpoint, ckpt_folder, tmp_path, states=("succeeded", "succeeded", "failed"), corrupt=(),
                                  launcher="beaker", workspace="ai2/olmix-test", budget="ai2/oe-data", cluster="ai2/jupiter",
                                  gpus=8, beaker=beaker)
    first, second, failed = (s.run_name for s in specs)
    with FakeBeaker() as fake:
        report = evaluate_group(config, swarm, backend="beaker", beaker_client=fake.client())
        assert report["submitted"] == [first, second] and report["not_finished"] == {failed: "failed"}
        config_url = f"{s3_endpoint}/ckpt-test/{GROUP}/config.yaml"
        for run in (first, second):
            exp = fake.by_name(f"{run}-eval-step10")
            (task,) = exp.spec["tasks"]
            assert task["name"] == "eval" and task["command"] == eval_command(config_url, GROUP, run, f"olmix-{GROUP}")
            assert task["resources"] == {"gpuCount": 1}  # eval needs one GPU, not the training's eight
            assert {"name": "AWS_ACCESS_KEY_ID", "secret": "olmixbot_AWS_ID"} in task["envVars"]
            assert report["runs"][run]["experiment"] == exp.id and not report["runs"][run]["existing"]
        creates = fake.calls["CreateExperiment"]

        # the job for the first run, as Beaker would run it (same argv, minus the program name)
        job = CliRunner().invoke(cli, eval_command(config_url, GROUP, first, f"olmix-{GROUP}")[1:])
        assert job.exit_code == 0, job.output
        assert "evaluated  " in job.stdout

        again = evaluate_group(config, swarm, backend="beaker", beaker_client=fake.client())
        assert again["skipped"] == [first]  # its results are in the dashboard now
        assert again["submitted"] == [second] and again["runs"][second]["existing"]  # adopted, not duplicated
        assert fake.calls["CreateExperiment"] == creates + 1  # one create, answered with a name conflict
        assert len([e for e in fake.experiments.values() if e.name.endswith("-eval-step10")]) == 2

    report = pull_results(config, swarm, source="dashboard", output_dir=str(tmp_path / "pulled"), metrics=["lm:target:ce", "lm:a:bpb"])
    assert report.found == [first]
    table = pd.read_csv(tmp_path / "pulled" / "metrics.csv")
    assert list(table["run"]) == [first] and 0 < table.loc[0, "lm:target:ce"] < 20


def test_beaker_backend_needs_a_remote_results_prefix(tmp_path, ckpt_folder, s3_endpoint):
    config, swarm, _ = _swarm(s3_endpoint, ckpt_folder, tmp_path, states=("succeeded",), corrupt=(), launcher="beaker",
                              workspace="ai2/w", budget="ai2/b", cluster="ai2/jupiter", beaker={"user": "u"},
                              eval_results_prefix=str(tmp_path / "evals"))
    with pytest.raises(ConfigError, match="eval_results_prefix: Beaker eval jobs must write to s3://"):
        evaluate_group(config, swarm, backend="beaker")

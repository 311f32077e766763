"""The emitted olmix-{group}.sh, run for real with stub `olmo-cookbook-eval`, `aws` and `gsutil` on PATH."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.evals import checkpoint_dirs, cluster_kind, default_offline_tasks, render_eval_script, write_eval_script
from olmix_core.store import SwarmStore
from tests.conftest import minimal_config

G = "0a1b2c3d"
TASKS = ["arc_challenge:bpb::olmes:full", "mbpp:3shot:bpb::none"]

STUB = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
if name in ("aws", "gsutil"):
    listings = json.load(open(os.environ["STUB_LISTINGS"]))
    target = sys.argv[-1]
    if target not in listings:
        sys.exit(1)
    sys.stdout.write(listings[target])
elif os.environ.get("STUB_FAIL") and os.environ["STUB_FAIL"] in " ".join(sys.argv[1:3]):
    sys.exit(3)
"""


def run_name(i):
    return f"test-swarm-{G}-{i:04d}"


def shellcheck():
    found = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    return found if os.path.exists(found) else None


@pytest.fixture
def stubs(tmp_path, monkeypatch):
    """Stub commands that record their arguments; `aws`/`gsutil` print the listing registered for their target."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("olmo-cookbook-eval", "aws", "gsutil"):
        p = bin_dir / name
        p.write_text(STUB.format(python=sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    log, listings = tmp_path / "calls.jsonl", tmp_path / "listings.json"
    listings.write_text("{}")

    class Stubs:
        def run(self, script, *args, listing=None, fail=None, cwd=None):
            listings.write_text(json.dumps(listing or {}))
            log.write_text("")
            env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log), "STUB_LISTINGS": str(listings)}
            if fail:
                env["STUB_FAIL"] = fail
            proc = subprocess.run(["bash", script, *args], env=env, capture_output=True, text=True, cwd=cwd or tmp_path, timeout=60)
            calls = [json.loads(line) for line in log.read_text().splitlines()]
            return proc, calls

    return Stubs()


def make_config(**overrides):
    return ExperimentConfig.from_dict(minimal_config(**{"variants": 3, "eval_tasks": TASKS, **overrides}))


def evaluate_call(ckpt, prefix="s3://ai2-llm/evaluation", cluster="aus", backend="olmo_core", tasks=TASKS, dry=False):
    call = ["olmo-cookbook-eval", "evaluate", ckpt, "--dashboard", f"olmix-{G}"]
    for t in tasks:
        call += ["--tasks", t]
    call += ["--cluster", cluster, "--model-backend", backend, "--remote-output-prefix", prefix]
    return call + (["--dry-run"] if dry else [])


def test_s3_cluster_latest_step_and_missing_checkpoints(tmp_path, stubs):
    config = make_config(launcher="beaker", cluster="ai2/jupiter-cirrascale-2", eval_results_prefix="s3://bucket/evals")
    assert cluster_kind(config) == "s3"
    path = write_eval_script(config, G, beaker_user="kyle", output_dir=str(tmp_path / "scripts"))
    assert path == str(tmp_path / "scripts" / f"olmix-{G}.sh") and os.access(path, os.X_OK)
    root = "s3://ai2-llm/checkpoints/kyle"
    listing = {
        # numeric, not lexicographic: step2000 > step300; step2500-unsharded and files are not checkpoints
        f"{root}/{run_name(0)}/": "                           PRE step0/\n                           PRE step2000/\n"
        "                           PRE step300/\n                           PRE step2500-unsharded/\n2026-01-01 00:00:00  12 config.yaml\n",
        f"{root}/{run_name(1)}/": "                           PRE step0/\n",  # only the initial checkpoint: not trained yet
    }  # run 2: no folder at all (aws exits 1)
    proc, calls = stubs.run(path, listing=listing)
    assert proc.returncode == 1
    assert [c for c in calls if c[0] == "aws"] == [["aws", "s3", "ls", f"{root}/{run_name(i)}/"] for i in range(3)]
    assert [c for c in calls if c[0] != "aws"] == [evaluate_call(f"{root}/{run_name(0)}/step2000", prefix="s3://bucket/evals")]
    assert "1 evaluated, 2 skipped (no checkpoint yet), 0 failed" in proc.stdout
    assert f"skipped: {run_name(1)}" in proc.stdout and f"skipped: {run_name(2)}" in proc.stdout
    assert f"no trained checkpoint under {root}/{run_name(2)} yet" in proc.stderr


def test_gcs_cluster_dry_run(tmp_path, stubs):
    config = make_config(launcher="beaker", cluster="ai2/augusta-google-1", eval_cluster="goog", eval_model_backend="vllm")
    assert cluster_kind(config) == "gcs"
    path = write_eval_script(config, G, beaker_user="amy", output_dir=str(tmp_path))
    root = "gs://ai2-llm/checkpoints/amy"
    listing = {f"{root}/{run_name(i)}/": f"{root}/{run_name(i)}/step5/\n{root}/{run_name(i)}/step{10 + i}/\n" for i in range(3)}
    proc, calls = stubs.run(path, "--dry-run", listing=listing)
    assert proc.returncode == 0, proc.stderr
    assert [c for c in calls if c[0] == "gsutil"] == [["gsutil", "ls", f"{root}/{run_name(i)}/"] for i in range(3)]
    assert [c for c in calls if c[0] != "gsutil"] == [
        evaluate_call(f"{root}/{run_name(i)}/step{10 + i}", cluster="goog", backend="vllm", dry=True) for i in range(3)
    ]
    assert "3 evaluated, 0 skipped (no checkpoint yet), 0 failed" in proc.stdout


def test_weka_and_local_folders(tmp_path, stubs):
    weka = make_config(launcher="beaker", cluster="ai2/saturn-cirrascale", weka=True)
    assert cluster_kind(weka) == "weka"
    assert checkpoint_dirs(weka, G, [run_name(0)], "kyle") == {run_name(0): f"/weka/oe-training-default/ai2-llm/checkpoints/kyle/{run_name(0)}"}
    assert cluster_kind(make_config(launcher="beaker", cluster="ai2/saturn-cirrascale")) == "s3"  # no weka: S3

    # an overridden weka root (with a space, on this disk) is listed with `ls`
    root = tmp_path / "weka mount"
    weka = make_config(launcher="beaker", cluster="ai2/jupiter", weka=True, checkpoint_roots={"weka": f"{root}/{{user}}"})
    for step in (0, 7, 12):
        (root / "kyle" / run_name(1) / f"step{step}").mkdir(parents=True)
    path = write_eval_script(weka, G, beaker_user="kyle", output_dir=str(tmp_path))
    proc, calls = stubs.run(path)
    assert proc.returncode == 1 and calls == [evaluate_call(f"{root}/kyle/{run_name(1)}/step12")]

    # the local launcher: checkpoints where `olmix train` writes them, under the store
    store = tmp_path / "store"
    local = make_config(storage_root=str(store), variants=2)
    assert cluster_kind(local) == "local"
    for i in range(2):
        (store / "checkpoints" / "test-swarm" / G / run_name(i) / "step4").mkdir(parents=True)
    path = write_eval_script(local, G, output_dir=str(tmp_path / "s"))
    proc, calls = stubs.run(path, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert calls == [evaluate_call(f"{store}/checkpoints/test-swarm/{G}/{run_name(i)}/step4", dry=True) for i in range(2)]
    assert f"note: results go to s3://ai2-llm/evaluation, not the local {store}/evals: pull with --results-prefix s3://ai2-llm/evaluation" in proc.stderr


def test_training_checkpoint_root_and_failed_eval(tmp_path, stubs):
    ck = tmp_path / "ckpts"
    config = make_config(launcher="beaker", cluster="ai2/augusta", training={"checkpoint_root": str(ck)})
    for i in range(3):
        (ck / "test-swarm" / G / run_name(i) / "step9").mkdir(parents=True)
    path = write_eval_script(config, G, output_dir=str(tmp_path))  # no user needed: the root is explicit
    proc, calls = stubs.run(path, fail="0001")
    assert proc.returncode == 1 and len(calls) == 3
    assert "2 evaluated, 0 skipped (no checkpoint yet), 1 failed" in proc.stdout and f"failed:  {run_name(1)}" in proc.stdout


def test_config_values_reach_the_script_literally(tmp_path, stubs):
    evil = ["a b", "it's", "$(touch pwned1)", "`touch pwned2`", "x;touch pwned3", '"q"\\n']
    config = make_config(
        storage_root=str(tmp_path / "store"),
        eval_tasks=evil,
        eval_cluster="aus'; touch pwned4; '",
        eval_model_backend="$HOME",
        eval_results_prefix="s3://b/$(touch pwned5)",
        variants=1,
    )
    (tmp_path / "store" / "checkpoints" / "test-swarm" / G / run_name(0) / "step1").mkdir(parents=True)
    path = write_eval_script(config, G, output_dir=str(tmp_path))
    subprocess.run(["bash", "-n", path], check=True)
    proc, calls = stubs.run(path)
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        evaluate_call(
            f"{tmp_path}/store/checkpoints/test-swarm/{G}/{run_name(0)}/step1",
            prefix="s3://b/$(touch pwned5)",
            cluster="aus'; touch pwned4; '",
            backend="$HOME",
            tasks=evil,
        )
    ]
    assert not list(tmp_path.glob("pwned*"))


@pytest.mark.parametrize(
    "overrides",
    [
        {"launcher": "beaker", "cluster": "ai2/jupiter"},
        {"launcher": "beaker", "cluster": "ai2/augusta"},
        {"launcher": "beaker", "cluster": "ai2/jupiter", "weka": True},
        {"eval_tasks": None, "eval_cluster": "x'y", "eval_results_prefix": "gs://b/p q"},
    ],
)
def test_bash_n_and_shellcheck(tmp_path, overrides):
    config = ExperimentConfig.from_dict(minimal_config(variants=3, **{"eval_tasks": TASKS, **overrides}))
    path = write_eval_script(config, G, beaker_user="kyle", output_dir=str(tmp_path))
    subprocess.run(["bash", "-n", path], check=True)
    sc = shellcheck()
    if sc is None:
        pytest.skip("shellcheck is not installed")
    proc = subprocess.run([sc, path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_default_tasks_header_and_errors(tmp_path, stubs):
    config = ExperimentConfig.from_dict(minimal_config(variants=2, launcher="beaker", cluster="ai2/jupiter"))
    text = render_eval_script(config, G, beaker_user="kyle", generated="2026-01-31T12:00:00")
    tasks = default_offline_tasks()
    assert len(tasks) == 109 and all(f"\n    {t}\n" in text for t in tasks)
    assert text.startswith("#!/usr/bin/env bash\n")
    for line in ("# Evaluation script for the swarm named in SWARM below.", "SWARM=test-swarm", f"# Group ID: {G}", "# Generated: 2026-01-31T12:00:00", "# Variants: 2", f'DASHBOARD=olmix-{G}'):
        assert line in text
    path = write_eval_script(config, G, beaker_user="kyle", output_dir=str(tmp_path))
    proc, calls = stubs.run(path, "--bogus")
    assert proc.returncode == 2 and calls == [] and "unknown argument: --bogus" in proc.stderr

    with pytest.raises(ConfigError, match="--beaker-user"):
        render_eval_script(config, G)
    with pytest.raises(ConfigError, match="beaker user"):
        render_eval_script(config, G, beaker_user="a b")
    with pytest.raises(ConfigError, match="eval_tasks: empty"):
        render_eval_script(ExperimentConfig.from_dict(minimal_config(eval_tasks=[])), G)
    with pytest.raises(ConfigError, match="does not belong"):
        render_eval_script(config, G, ["test-swarm-ffffffff-0000"], beaker_user="kyle")
    only = render_eval_script(config, G, [run_name(5)], beaker_user="kyle")
    assert f"evaluate_variant 0005 {run_name(5)} " in only and "# Variants: 1" in only


def test_write_records_in_store_and_cli(tmp_path):
    store = tmp_path / "store"
    config = ExperimentConfig.from_dict(minimal_config(storage_root=str(store), variants=8, eval_tasks=TASKS))
    swarm = SwarmStore.open(str(store), config.name, G)
    path = write_eval_script(config, G, 2, output_dir=str(tmp_path / "a"), swarm=swarm)
    assert swarm.store.read_text(swarm.eval_script_key()) == Path(path).read_text()
    meta = swarm.metadata().eval_script.model_dump()
    assert meta["path"] == path and meta["dashboard"] == f"olmix-{G}" and meta["url"].endswith(f"eval_scripts/olmix-{G}.sh")

    swarm.store.write_json(swarm.key("mixtures.json"), [{"wiki": [1.0, 1.0]}] * 3)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "scripts"
    res = CliRunner().invoke(cli, ["eval", "script", "--config", str(cfg), "--group-id", G, "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    text = (out / f"olmix-{G}.sh").read_text()
    assert "# Variants: 3" in text and text.count("\nevaluate_variant ") == 3  # the swarm's own variant count
    assert swarm.store.read_text(swarm.eval_script_key()) == text

    res = CliRunner().invoke(cli, ["eval", "script", "--config", str(cfg), "--group-id", "nothex!!", "--output-dir", str(out)])
    assert res.exit_code == 1 and "--group-id" in res.output
    res = CliRunner().invoke(cli, ["eval", "--help"])
    assert res.exit_code == 0 and "script" in res.output


def test_odd_config_values_never_run_as_commands(tmp_path, stubs):
    """Values that are allowed but mean something to a shell reach the script only as quoted data: no config value
    in any comment, `bash -n` and shellcheck pass, and running it executes nothing injected."""
    marker = tmp_path / "pwned"
    inject = f"$(touch {marker})`touch {marker}`;touch {marker}#"
    store = tmp_path / f"store {inject}"
    config = make_config(
        storage_root=str(store),  # a local results prefix: the script notes that it goes elsewhere
        eval_cluster=f"aus'{inject}",
        eval_model_backend=f'olmo"{inject}',
        eval_tasks=[f"arc {inject}", "mbpp:3shot:bpb::none"],
    )
    path = write_eval_script(config, G, output_dir=str(tmp_path / "ev"))
    text = Path(path).read_text()
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert comments and not any("touch" in line or "store" in line for line in comments)
    subprocess.run(["bash", "-n", path], check=True)
    sc = shellcheck()
    if sc is not None:
        proc = subprocess.run([sc, path], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
    ckpt = f"{store}/checkpoints/test-swarm/{G}/{run_name(0)}"
    os.makedirs(f"{ckpt}/step10")
    proc, calls = stubs.run(path)
    assert not marker.exists(), proc.stderr
    evaluate = [c for c in calls if c[0] == "olmo-cookbook-eval"]
    assert len(evaluate) == 1 and evaluate[0][2] == f"{ckpt}/step10"
    assert evaluate[0][evaluate[0].index("--cluster") + 1] == f"aus'{inject}"
    assert f"arc {inject}" in evaluate[0] and "note: results go to s3://ai2-llm/evaluation" in proc.stderr


def test_newline_in_storage_root_or_results_prefix_is_rejected():
    for field in ("storage_root", "eval_results_prefix"):
        with pytest.raises(ConfigError, match=f"{field}: .*control character"):
            make_config(**{field: "s3://bucket/x\ntouch /tmp/pwned"})

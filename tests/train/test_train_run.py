"""Real olmo-core training of a tiny model on the demo data, through the `olmix train` entry point."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from olmix_core.runspec import RunState, RunStatus
from olmix_core.store import ArtifactStore
from olmix_core.train.result import update_status
from tests.train._train_helpers import make_spec, spec_url, tiny_config

pytestmark = pytest.mark.slow

OLMIX = str(Path(sys.executable).with_name("olmix"))
SMALL = {
    "max_tokens": 6 * 1024,  # 6 steps of 4 × 256 tokens
    "training": {"global_batch_size": 1024, "checkpoint_interval": 3, "wandb": {"mode": "offline"}},
}


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(OLMIX_WORK_DIR=str(tmp_path / "work"), WANDB_SILENT="true")
    return env


def _train(cmd_prefix: list[str], url: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*cmd_prefix, "--run-spec", url], env=_env(tmp_path), capture_output=True, text=True, timeout=180)


def _read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def test_tiny_run_writes_result_and_status_then_resumes_bit_exactly(demo_dir, tmp_path):
    config = tiny_config(demo_dir, tmp_path / "store", evaluation={"sources": {
        "a": [str(demo_dir / "val" / "a.bin")], "target": [str(demo_dir / "val" / "target.bin")]
    }}, **SMALL)
    spec = make_spec(config)
    update_status(spec, RunState.submitted)
    status = RunStatus.model_validate(_read(spec.status_url))
    status.attempts, status.job_id = 1, "777"
    ArtifactStore(os.path.dirname(spec.status_url)).write_json("status.json", status.model_dump(mode="json"))

    # 1. a fresh run: through `python -m olmix_core.commands.train`, with WandB offline
    first = _train([sys.executable, "-m", "olmix_core.commands.train"], spec_url(spec), tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    result = _read(spec.result_url)
    assert set(result["metrics"]) == {"eval/lm/a/CE loss", "eval/lm/target/CE loss", "train/CE loss"}
    assert all(0 < v < 7 for v in result["metrics"].values())
    assert (result["steps"], result["tokens_seen"], result["resumed_from_step"]) == (6, 6 * 1024, None)
    assert result["mixture"] == spec.weights() and result["run"] == spec.run_name and result["state"] == "succeeded"
    ckpt = Path(spec.checkpoint_dir)
    assert result["checkpoint"] == str(ckpt / "step6")
    assert sorted(p.name for p in ckpt.iterdir()) == ["step3", "step6"]
    saved = _read(str(ckpt / "step6" / "config.json"))  # what HF conversion reads
    assert saved["model"]["d_model"] == 64 and saved["dataset"]["tokenizer"]["vocab_size"] == 258
    status = RunStatus.model_validate(_read(spec.status_url))
    assert status.state == RunState.succeeded and (status.attempts, status.job_id) == (1, "777")
    p = status.progress  # reported by the run as it trained, kept by the final status update
    assert (p.step, p.total_steps, p.start_step) == (6, 6, 0) and p.train_loss == pytest.approx(result["metrics"]["train/CE loss"])
    assert p.elapsed_s > 0 and p.steps_per_s > 0
    assert list((tmp_path / "work").rglob("offline-run-*")), "no offline WandB run was written"

    # 2. lose the last checkpoint and the result: the restart resumes from step 3 and ends where run 1 did
    shutil.rmtree(ckpt / "step6")
    os.remove(spec.result_url)
    spec_off = spec.model_copy(update={"training": spec.training.model_copy(update={"wandb": spec.training.wandb.model_copy(update={"mode": "off"})})})
    ArtifactStore(os.path.dirname(spec.status_url)).write_json("spec.json", spec_off.model_dump(mode="json"))
    second = _train([OLMIX, "train"], spec_url(spec), tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = _read(spec.result_url)
    assert resumed["resumed_from_step"] == 3 and resumed["steps"] == 6 and resumed["tokens_seen"] == 6 * 1024
    p = RunStatus.model_validate(_read(spec.status_url)).progress
    assert (p.step, p.total_steps, p.start_step) == (6, 6, 3)
    for name, value in result["metrics"].items():
        assert resumed["metrics"][name] == pytest.approx(value, abs=1e-5), name

    # 3. restarting a finished run trains nothing more and reports the same result
    third = _train([OLMIX, "train"], spec_url(spec), tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    again = _read(spec.result_url)
    assert again["resumed_from_step"] == 6 and again["steps"] == 6
    assert again["metrics"] == pytest.approx(result["metrics"], abs=1e-5)


def test_a_run_that_olmo_core_rejects_is_marked_failed_and_exits_non_zero(demo_dir, tmp_path):
    config = tiny_config(demo_dir, tmp_path / "store", **SMALL)
    config = config.model_copy(update={"max_tokens": 400 * 4096})  # past the sampler: e needs 3.8 passes, cap 2
    spec = make_spec(config, {"a": [0.3, 1.0], "e": [0.7, 1.0]})
    proc = _train([OLMIX, "train"], spec_url(spec), tmp_path)
    assert proc.returncode != 0
    status = RunStatus.model_validate(_read(spec.status_url))
    assert status.state == RunState.failed
    assert "Insufficient tokens for source: e" in status.reason
    assert not os.path.exists(spec.result_url)


def test_a_run_with_its_store_and_checkpoints_on_s3(demo_dir, tmp_path, s3_endpoint):
    config = tiny_config(demo_dir, s3_endpoint, evaluation={"sources": {"target": [str(demo_dir / "val" / "target.bin")]}},
                         **{**SMALL, "training": {**SMALL["training"], "wandb": {"mode": "off"}}})
    spec = make_spec(config)
    assert spec.checkpoint_dir.startswith("s3://") and spec.result_url.startswith("s3://")
    proc = _train([OLMIX, "train"], spec_url(spec), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = ArtifactStore(s3_endpoint)
    run = f"{spec.swarm_name}/{spec.group_id}/runs/{spec.run_name}"
    result = store.read_json(f"{run}/result.json")
    assert result["checkpoint"] == f"{spec.checkpoint_dir}/step6" and "eval/lm/target/CE loss" in result["metrics"]
    assert store.read_json(f"{run}/status.json")["state"] == "succeeded"
    ckpt = spec.checkpoint_dir.removeprefix(s3_endpoint + "/")
    assert json.loads(store.read_text(f"{ckpt}/step6/config.json"))["model"]["d_model"] == 64

"""The store against a real S3 endpoint (moto in its own process) that is killed or paused (SIGSTOP) mid-run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from olmix_core.config import ExperimentConfig
from olmix_core.errors import StoreError
from olmix_core.stages.setup import prepare_swarm
from olmix_core.store import ArtifactStore
from tests.conftest import minimal_config

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 120  # far above the few seconds a failing call takes: only a hang reaches it


def _olmix(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", "from olmix_core.cli import cli; cli()", *args], capture_output=True, text=True,
                          env=env, timeout=HANG_GUARD_S)


def _swarm(root: str):
    config = ExperimentConfig.from_dict(minimal_config(variants=2, storage_root=root))
    swarm, _ = prepare_swarm(config, group_id="0fa17000")
    return swarm


def _one_line_error(proc: subprocess.CompletedProcess, url: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and url in lines[0], proc.stderr
    return lines[0]


@pytest.mark.slow
def test_killed_endpoint_is_one_line_naming_url_and_endpoint(s3_process):
    root = f"s3://{s3_process.bucket}/olmix"
    store = _swarm(root).store
    s3_process.kill()
    with pytest.raises(StoreError, match=f"{root}/test-swarm/0fa17000/metadata.json: could not read .*{s3_process.endpoint}"):
        store.read_json("test-swarm/0fa17000/metadata.json")
    with pytest.raises(StoreError, match="could not write"):
        store.write_json("x.json", {})
    line = _one_line_error(_olmix("launch", "status", "--group-id", "0fa17000", "--storage-root", root), root)
    assert s3_process.endpoint in line and "AWS_ENDPOINT_URL" in line


@pytest.mark.slow
def test_paused_endpoint_times_out_then_works_again(s3_process, monkeypatch):
    root = f"s3://{s3_process.bucket}/olmix"
    swarm = _swarm(root)
    s3_process.pause()
    try:
        line = _one_line_error(_olmix("launch", "status", "--group-id", "0fa17000", "--storage-root", root), root)
        assert "timeout" in line.lower() or "Timeout" in line
        monkeypatch.setenv("OLMIX_STORE_CALL_TIMEOUT", "3")
        with pytest.raises(StoreError, match="could not write"):  # an upload to a paused endpoint ends at the deadline
            ArtifactStore(root).write_json("y.json", {"a": 1})
    finally:
        s3_process.resume()
    proc = _olmix("launch", "status", "--group-id", "0fa17000", "--storage-root", root)
    assert proc.returncode == 0, proc.stderr
    assert "2 runs:" in proc.stdout and swarm.store.read_json(swarm.key("metadata.json"))["group_id"] == "0fa17000"


def test_unwritable_local_path_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=f"{blocker}/store/a.json: could not write .*storage_root"):
        ArtifactStore(str(blocker / "store")).write_json("a.json", {})

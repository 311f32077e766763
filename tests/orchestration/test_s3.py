"""The olmix store and Prefect's result storage on a real S3 endpoint (moto's server on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest
from prefect.filesystems import RemoteFileSystem

from flows.swarm import swarm
from flows.watch import watch_evals
from olmix_core.config import ExperimentConfig
from olmix_core.launch.inprocess import InProcessLauncher, submission_log
from olmix_core.stages.watch import open_swarms
from olmix_core.store import ArtifactStore, SwarmStore
from tasks._common import result_storage_for
from tests.orchestration._helpers import FAST, swarm_config, task_runs

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_swarm_on_s3_caches_in_the_bucket(s3_endpoint):
    root = f"{s3_endpoint}/olmix"
    cfg = swarm_config(root, variants=8)
    params = dict(config=cfg, group_id="5300000a", launcher="inprocess", poll_interval=0.1, launcher_options=FAST)
    first = swarm(**params)
    assert first["status"] == "fitted" and first["store"] == f"{root}/test-swarm/5300000a"

    swarm_store = SwarmStore(ArtifactStore(root), "test-swarm", "5300000a")
    for key in ["priors.json", "mixtures.json", "config.yaml", "results/metrics.csv", "eval_scripts/olmix-5300000a.sh",
                f"fits/{first['fit_id']}/proposed_weights.json", f"fits/{first['fit_id']}/models/manifest.json",
                f"fits/{first['fit_id']}/plots/pred_vs_actual.png", f"fits/{first['fit_id']}/plots/proposed_vs_prior.png"]:
        assert swarm_store.store.exists(swarm_store.key(key)), key
    assert json.loads(swarm_store.store.read_text(swarm_store.fit_key(first["fit_id"], "proposed_weights.json"))) == pytest.approx(first["proposal"])

    # Prefect's cached task results are objects in the same bucket, under the swarm's folder (and nowhere else)
    assert ArtifactStore(s3_endpoint).list() == ["olmix"] and ArtifactStore(root).list() == ["test-swarm"]
    records = swarm_store.store.list(swarm_store.key("_prefect"))
    stages = {r.rsplit("-", 1)[0] for r in records}
    assert {"count-priors", "sample-mixtures", "write-run-specs", "submit-runs", "poll-runs", "fit", "propose", "verify"} <= stages
    storage = result_storage_for(ExperimentConfig.from_dict(cfg))
    assert isinstance(storage, RemoteFileSystem) and storage.basepath == root and storage._block_document_id is not None
    assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(storage.settings) and "testing" not in json.dumps(storage.settings)

    # a second run of the same group: every stage from the S3 cache, nothing submitted again
    submitted = len(submission_log(swarm_store))
    state = swarm(return_state=True, **params)
    assert state.is_completed() and state.result()["proposal"] == first["proposal"]
    assert len(submission_log(swarm_store)) == submitted
    stages = ("count priors", "sample", "write", "eval script", "submit", "poll", "fit", "propose", "verify")
    runs = task_runs(state.state_details.flow_run_id, expect=stages)
    cached = [stage for stage in stages if any(n.startswith(stage) and r.state.name == "Cached" for n, r in runs.items())]
    assert cached == list(stages)


def test_watcher_finds_open_swarms_on_s3(s3_endpoint):
    root = f"{s3_endpoint}/olmix"
    swarm(config=swarm_config(root, variants=8), group_id="5300000b", launcher="inprocess", wait=False, launcher_options={"run_s": 0.0})
    assert [(s.name, s.group_id) for s, _ in open_swarms(root)] == [("test-swarm", "5300000b")]
    cfg = ExperimentConfig.from_dict(swarm_config(root, variants=8))
    InProcessLauncher(cfg, SwarmStore(ArtifactStore(root), "test-swarm", "5300000b")).status()  # the runs finish
    landed = watch_evals(storage_root=root)
    assert [(p["group_id"], p["source"], p["results"], p["config"]) for p in landed] == [
        ("5300000b", "local", 8, f"{root}/test-swarm/5300000b/config.yaml")]
    assert watch_evals(storage_root=root) == []

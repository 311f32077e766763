"""End to end as a user runs it: `prefect server start`, `make serve` (python -m deployments.serve), then
`prefect deployment run olmix/swarm --param config=...`; real olmo-core training with the local launcher, and the
server's scheduler creating the re-fit's and the watcher's runs."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import yaml

from deployments.serve import ui_mismatch
from tests.orchestration._server import BIN, ROOT, get_json


@pytest.mark.slow
def test_scheduler_creates_runs_of_refit_and_watch_without_errors(served):
    # prefect 3.8.8's scheduler service fails on SQLAlchemy 2.1 ("Can't evaluate bulk DML statement") and then
    # no scheduled run is ever created: this is what pyproject's sqlalchemy<2.1 pin is for.
    deployments = {name: served.deployment(f"{flow}/{name}") for flow, name in (("olmix-refit", "refit"), ("olmix-watch-evals", "watch"))}
    assert all(deployments.values()), served.serve_log[-3000:]
    ids = {d["id"]: name for name, d in deployments.items()}
    deadline = time.monotonic() + 120
    while True:
        scheduled = served.flow_runs(deployment_id={"any_": list(ids)}, state={"type": {"any_": ["SCHEDULED"]}})
        found = {ids[r["deployment_id"]] for r in scheduled}
        if found == set(ids.values()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert found == {"refit", "watch"}, served.server_log[-5000:]
    assert all(r["expected_start_time"] for r in scheduled)
    log = served.server_log
    assert "Can't evaluate bulk DML statement" not in log and "Traceback" not in log, log[-5000:]
    assert not re.search(r"\|\s*ERROR\s*\|", log), log[-5000:]
    # the UI of a server on another port than 4200 asks the API on that port
    assert get_json(f"{served.ui}/ui-settings")["api_url"] == served.api
    assert ui_mismatch(served.api) is None and ui_mismatch(served.api.replace("127.0.0.1", "localhost")) is None


@pytest.mark.slow
def test_deployment_run_completes_with_a_proposal(tmp_path, served):
    # local-tiny, smaller: 8 runs of 30 steps, no verify run (~1.5 min of training on 2 cores)
    config = yaml.safe_load((ROOT / "configs/examples/local-tiny.yaml").read_text())
    config.update(name="e2e-tiny", max_tokens=30 * 4096, storage_root=str(tmp_path / "store"))
    config_path = tmp_path / "e2e-tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))

    run = subprocess.run(
        [str(BIN / "prefect"), "deployment", "run", "olmix/swarm", "--param", f"config={config_path}",
         "--param", "poll_interval=2", "--param", "verify=false", "--watch", "--watch-timeout", "480"],
        cwd=ROOT, env=served.env, capture_output=True, text=True, timeout=540,
    )
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}\n{served.serve_log[-5000:]}"
    assert "Completed" in run.stdout + run.stderr

    flow_runs = served.flow_runs(name={"like_": "e2e-tiny-"})
    assert [r["state_type"] for r in flow_runs] == ["COMPLETED"]
    gid = flow_runs[0]["name"].rsplit("-", 1)[1]
    swarm_dir = tmp_path / "store" / "e2e-tiny" / gid
    fits = list((swarm_dir / "fits").glob("fit-*/proposed_weights.json"))
    assert len(fits) == 1
    weights = json.loads(fits[0].read_text())
    assert set(weights) == {"a", "b", "c", "d", "e"} and abs(sum(weights.values()) - 1) < 1e-6
    results = [json.loads(p.read_text()) for p in (swarm_dir / "runs").glob("*/result.json")]
    assert len(results) == 8 and all("eval/lm/target/CE loss" in r["metrics"] for r in results)
    # the runs reported their progress into their status records as they trained
    statuses = [json.loads(p.read_text()) for p in (swarm_dir / "runs").glob("*/status.json")]
    assert all(s["progress"]["step"] == s["progress"]["total_steps"] == 30 and s["progress"]["train_loss"] > 0 for s in statuses)

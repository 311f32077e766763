"""The Prefect UI as a user sees it: a real server, a small swarm run through the served olmix/swarm deployment
(in-process launcher), and the flow run and artifact pages loaded in headless Chromium (Debian's `chromium`;
`make browser` installs it). Screenshots go to $OLMIX_UI_SCREENSHOTS (default: the test's temp folder)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.orchestration._helpers import swarm_config
from tests.orchestration._server import BIN, ROOT, Served, post_json


def chromium(url: str, screenshot: Path | None = None, height: int = 1400) -> str:
    """The page's DOM after its scripts ran (and a screenshot of it)."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: `make browser` (or apt-get install -y chromium) installs it")
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000",
             f"--window-size=1400,{height}", "--dump-dom"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        flags.append(f"--screenshot={screenshot}")
    return subprocess.run([*flags, url], capture_output=True, text=True, timeout=180, check=True).stdout


def page_with(url: str, *needles: str, screenshot: Path | None = None, height: int = 1400) -> str:
    """The DOM once every needle is on the page (the UI loads its data after the page: one more try if not yet)."""
    for _ in range(3):
        dom = chromium(url, screenshot, height)
        if all(n in dom for n in needles):
            return dom
    missing = [n for n in needles if n not in dom]
    raise AssertionError(f"{url}: not on the page: {missing}\n{re.sub(r'<[^>]+>', ' ', dom)[-3000:]}")


def run_deployment(served: Served, params: dict, watch: bool) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "prefect"), "deployment", "run", "olmix/swarm", "--params", json.dumps(params)]
    return subprocess.run([*cmd, "--watch", "--watch-timeout", "300"] if watch else cmd, cwd=ROOT, env=served.env,
                          capture_output=True, text=True, timeout=360)


def artifacts_of(served: Served, flow_run_id: str) -> dict[str, dict]:
    found = post_json(f"{served.api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
    return {a["key"]: a for a in found}


@pytest.mark.slow
def test_ui_shows_the_live_summary_runs_with_steps_and_embedded_plots(tmp_path, served):
    shots = Path(os.environ.get("OLMIX_UI_SCREENSHOTS") or tmp_path / "screenshots")
    config = tmp_path / "ui-swarm.yaml"
    config.write_text(yaml.safe_dump(swarm_config(tmp_path / "store", name="ui-swarm", variants=8)))
    gid = "0000a11e"
    started = run_deployment(served, {"config": str(config), "group_id": gid, "launcher": "inprocess", "poll_interval": 0.3,
                                      "launcher_options": {"run_s": 8, "jitter": 0.3}}, watch=False)
    assert started.returncode == 0, started.stdout + started.stderr

    # while training: the summary has an ETA from the runs' step rates, the runs table steps in between
    deadline, seen = time.monotonic() + 240, {"eta": False, "steps": False}
    while True:
        runs = served.flow_runs(name={"any_": [f"ui-swarm-{gid}"]})
        arts = artifacts_of(served, runs[0]["id"]) if runs else {}
        if f"olmix-{gid}-summary" in arts and "ETA ≈" in arts[f"olmix-{gid}-summary"]["data"]:
            seen["eta"] = True
        if f"olmix-{gid}-runs" in arts:
            steps = [r["step"] for r in json.loads(arts[f"olmix-{gid}-runs"]["data"])]
            seen["steps"] |= any(s and 0 < int(s.split("/")[0]) < 100 for s in steps)
        if runs and runs[0]["state_type"] in ("COMPLETED", "FAILED", "CRASHED") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert runs[0]["state_type"] == "COMPLETED", (runs[0]["state"]["message"], served.serve_log[-4000:])
    assert seen == {"eta": True, "steps": True}
    flow_run_id = runs[0]["id"]
    logs = post_json(f"{served.api}/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 1})
    assert logs[0]["message"].startswith(f"Beginning flow run 'ui-swarm-{gid}'")  # named before its first log line
    arts = artifacts_of(served, flow_run_id)
    keyed = {k.rsplit("-", 1)[1] for k in arts if k}  # the keyless one is the flow's persisted result
    assert keyed == {"progress", "mixtures", "runs", "fit", "proposal", "summary"}

    # the flow run page lists one card per artifact
    page_with(f"{served.ui}/v2/runs/flow-run/{flow_run_id}?tab=Artifacts", f"ui-swarm-{gid}", f"olmix-{gid}-summary",
              f"olmix-{gid}-runs", f"olmix-{gid}-progress", screenshot=shots / "flow-run.png", height=1100)
    # the summary renders its stage, the proposal and the plots as images
    dom = page_with(f"{served.ui}/v2/artifacts/artifact/{arts[f'olmix-{gid}-summary']['id']}", "Stage: done", "verified",
                    "plots/proposed_vs_prior", screenshot=shots / "summary.png", height=2600)
    images = re.findall(r'<img[^>]*alt="([^"]+)"[^>]*src="data:image/png;base64,', dom)
    assert "plots/proposed_vs_prior" in images and len(images) >= 2, images
    # the runs table: every run with its steps and loss, the verify run included
    dom = page_with(f"{served.ui}/v2/artifacts/artifact/{arts[f'olmix-{gid}-runs']['id']}", "100/100", "verify",
                    f"ui-swarm-{gid}-0008", screenshot=shots / "runs.png", height=900)
    assert len(re.findall(r">100/100<", dom)) == 9

    # a failing swarm: a Failed state that says how to resume, and no engine traceback in `make serve`'s log
    failing = run_deployment(served, {"config": str(config), "group_id": "0000fa11", "launcher": "inprocess", "verify": False,
                                      "poll_interval": 0.2, "launcher_options": {"run_s": 0.2, "always_fail": [f"ui-swarm-0000fa11-{i:04d}" for i in range(8)]}},
                             watch=True)
    assert failing.returncode != 0
    [bad] = served.flow_runs(name={"any_": ["ui-swarm-0000fa11"]})
    assert bad["state_type"] == "FAILED" and "NoRunSucceeded" in bad["state"]["message"]
    assert "prefect deployment run olmix/swarm --param group_id=0000fa11" in bad["state"]["message"]
    assert "olmix swarm --config" in bad["state"]["message"]
    assert "Engine execution exited with unexpected exception" not in served.serve_log


@pytest.mark.slow
def test_make_demo_runs_the_swarm_as_a_deployment_run_the_ui_can_retry(tmp_path, served):
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(swarm_config(tmp_path / "store", name="demo-swarm", variants=8)))
    demo = subprocess.run([sys.executable, "-m", "deployments.demo", "--config", str(config), "--launcher", "inprocess", "--no-verify",
                           "--launcher-options", json.dumps({"run_s": 0.5})], cwd=ROOT, env=served.env, capture_output=True,
                          text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "proposed mixture" in demo.stdout and "Retry there" in demo.stdout
    flow_run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", demo.stdout).group(1)
    [run] = [r for r in served.flow_runs(id={"any_": [flow_run_id]})]
    assert run["deployment_id"] == served.deployment("olmix/swarm")["id"] and run["state_type"] == "COMPLETED"

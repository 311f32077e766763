"""The pieces under the flows, without a Prefect server: cache keys, retry rules, the in-process launcher."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prefect.states import Failed

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError, DataError, LaunchError
from olmix_core.launch.inprocess import InProcessLauncher, InProcessOptions, law_metrics, submission_log
from olmix_core.runspec import RunState
from olmix_core.stages import setup as swarm_setup
from tasks._common import SWARM_CACHE, config_digest, retry_unless_bad_input
from tasks.launch import make_launcher
from tasks.setup import count_priors, sample_mixtures
from tests.orchestration._helpers import swarm_config


def key(task, **inputs):
    return SWARM_CACHE.compute_key(SimpleNamespace(task=task), inputs, {})


def test_cache_key_follows_config_content_not_identity(tmp_path):
    a = ExperimentConfig.from_dict(swarm_config(tmp_path))
    b = ExperimentConfig.from_dict(swarm_config(tmp_path))
    assert a is not b and config_digest(a) == config_digest(b)
    k = key(count_priors, config=a, group_id="0123abcd")
    assert k == key(count_priors, config=b, group_id="0123abcd")
    assert k.startswith("test-swarm/0123abcd/_prefect/count-priors-")  # next to the swarm's artifacts
    assert k != key(count_priors, config=ExperimentConfig.from_dict(swarm_config(tmp_path, seed=7)), group_id="0123abcd")
    assert k != key(count_priors, config=a, group_id="0123abce")
    assert k.split("/")[-1].split("-", 2)[-1] != key(sample_mixtures, config=a, group_id="0123abcd").split("/")[-1].split("-", 2)[-1]


def test_cache_key_rejects_a_bad_group_id(tmp_path):
    with pytest.raises(ValueError, match="8 lowercase hex"):
        key(count_priors, config=ExperimentConfig.from_dict(swarm_config(tmp_path)), group_id="../../etc")


@pytest.mark.parametrize("exc, retry", [
    (ConnectionError("reset"), True), (OSError("disk"), True), (TimeoutError(), True), (LaunchError("beaker 503"), True),
    (ConfigError("variants"), False), (DataError("row 3"), False), (ValueError("bug"), False), (KeyError("x"), False),
])
def test_retry_only_what_the_outside_world_breaks(exc, retry):
    assert retry_unless_bad_input(None, None, Failed(data=exc)) is retry


def _launcher(tmp_path, **options):
    cfg = ExperimentConfig.from_dict(swarm_config(tmp_path, variants=4))
    swarm, specs = swarm_setup.prepare_swarm(cfg, "0123abcd")
    return InProcessLauncher(cfg, swarm, InProcessOptions(**options)), specs


def test_inprocess_runs_complete_over_time_with_law_metrics(tmp_path):
    launcher, specs = _launcher(tmp_path, run_s=0.3, jitter=0.0)
    assert {s.state for s in launcher.status().values()} == {RunState.pending}
    launcher.submit(specs)
    assert {s.state for s in launcher.status().values()} == {RunState.running}
    launcher.submit(specs)  # idempotent: nothing submitted twice
    assert len(submission_log(launcher.swarm)) == 4
    time.sleep(0.35)
    statuses = launcher.status()
    assert {s.state for s in statuses.values()} == {RunState.succeeded}
    result = launcher.swarm.store.read_json(launcher.swarm.run_key(specs[0].run_name, "result.json"))
    assert result["metrics"] == pytest.approx(law_metrics(launcher.config, specs[0].weights()))


def test_inprocess_faults_and_resubmission(tmp_path):
    launcher, specs = _launcher(tmp_path, run_s=0.0, always_fail=["test-swarm-0123abcd-0001"], preempt_fraction=1.0)
    launcher.submit(specs)
    states = {n: s.state for n, s in launcher.status().items()}
    assert states["test-swarm-0123abcd-0001"] == RunState.failed
    assert {states[s.run_name] for s in specs if s.run_name != "test-swarm-0123abcd-0001"} == {RunState.preempted}
    launcher.resubmit(specs)
    states = {n: (s.state, s.attempts) for n, s in launcher.status().items()}
    assert states["test-swarm-0123abcd-0000"] == (RunState.succeeded, 2)  # preempted on the first attempt only
    assert states["test-swarm-0123abcd-0001"] == (RunState.failed, 2)


def test_launcher_options_only_for_the_inprocess_launcher(tmp_path):
    cfg = ExperimentConfig.from_dict(swarm_config(tmp_path))
    with pytest.raises(ConfigError, match="only the inprocess launcher"):
        make_launcher("local", cfg, "0123abcd", {"run_s": 1})
    with pytest.raises(ConfigError, match="launcher 'slurm'"):
        make_launcher("slurm", cfg, "0123abcd")
    with pytest.raises(ValueError, match="run_s"):
        make_launcher("inprocess", cfg, "0123abcd", {"run_s": -1})


def test_serve_warns_when_the_servers_ui_asks_another_port():
    """What `prefect server start --port N` without PREFECT_SERVER_API_PORT=N answers on /ui-settings (its UI then
    asks 4200); `tests/orchestration/test_e2e.py` checks a real server started the way `make server` does."""
    import http.server
    import json
    import threading

    from deployments.serve import ui_mismatch

    class UISettings(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"api_url": "http://127.0.0.1:4200/api"}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), UISettings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        warning = ui_mismatch(f"http://127.0.0.1:{port}/api")
        assert warning and "asks the API at http://127.0.0.1:4200/api" in warning and f"make server PREFECT_PORT={port}" in warning
    finally:
        server.shutdown()

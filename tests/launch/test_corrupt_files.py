"""One truncated status.json or a garbage result.json hides nothing else: status, cancel, resume and pull go on."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.runspec import RunState, read_statuses
from olmix_core.store import find_swarm
from tests.conftest import minimal_config
from tests.launch.conftest import FAKE_TRAINER


@pytest.fixture
def fake_cli(fake_env):
    fake_env.setattr("olmix_core.launch.local.TRAIN_COMMAND", FAKE_TRAINER)
    return fake_env


def _launch(tmp_path, *extra: str, **overrides):
    cfg = minimal_config(**{"variants": 3, "storage_root": str(tmp_path / "store"), "training": {"threads_per_run": 1}, **overrides})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(cli, ["launch", "run", "--config", str(path), "--eval-script-dir", str(tmp_path / "ev"), *extra])
    assert r.exit_code == 0, r.output
    return str(path), find_swarm(cfg["storage_root"], r.output.split()[1].rstrip(":"))


def _truncate(swarm, run: str, filename: str) -> None:
    path = swarm.store.path(swarm.run_key(run, filename))
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])


def _rows(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines() if line.startswith("test-swarm-")}


def test_truncated_status_is_shown_unreadable_and_a_resume_recreates_it(tmp_path, fake_cli):
    path, swarm = _launch(tmp_path, "--wait", max_concurrency=3)
    runs = sorted(read_statuses(swarm))
    _truncate(swarm, runs[1], "status.json")

    r = CliRunner().invoke(cli, ["launch", "status", "--group-id", swarm.group_id, "--config", path])
    assert r.exit_code == 0, r.output
    rows = _rows(r.output)
    assert set(rows) == set(runs) and "unreadable status.json" in rows[runs[1]] and "failed" in rows[runs[1]]
    assert all("succeeded" in rows[run] for run in (runs[0], runs[2]))

    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--group-id", swarm.group_id, "--wait"])
    assert r.exit_code == 0, r.output
    after = read_statuses(swarm)
    assert all(s.state == RunState.succeeded for s in after.values())
    assert after[runs[1]].reason == "status re-created from result.json"  # from its result: not trained again
    assert json.loads(swarm.store.read_text(swarm.run_key(runs[1], "status.json")))["state"] == "succeeded"


def test_cancel_goes_on_past_a_truncated_status(tmp_path, fake_cli):
    fake_cli.setenv("FAKE_TRAIN_SECONDS", "60")
    path, swarm = _launch(tmp_path, max_concurrency=1)
    deadline = time.monotonic() + 30
    while not any(s.state == RunState.running and s.job_id for s in read_statuses(swarm).values()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    queued = sorted(n for n, s in read_statuses(swarm).items() if s.state == RunState.submitted)
    _truncate(swarm, queued[0], "status.json")

    r = CliRunner().invoke(cli, ["launch", "cancel", "--group-id", swarm.group_id, "--config", path])
    assert r.exit_code == 0, r.output
    rows = _rows(r.output)
    assert len(rows) == 3 and "unreadable status.json" in rows[queued[0]]
    assert sum("canceled" in row for row in rows.values()) == 2  # the running one and the other queued one

    # resume: the unreadable run gets a fresh status and trains, the canceled ones are submitted again
    fake_cli.setenv("FAKE_TRAIN_SECONDS", "0.2")
    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--group-id", swarm.group_id, "--wait"])
    assert r.exit_code == 0, r.output
    assert {s.state for s in read_statuses(swarm).values()} == {RunState.succeeded}


def test_garbage_result_counts_as_failed_and_a_resume_trains_it_again(tmp_path, fake_cli):
    path, swarm = _launch(tmp_path, "--wait", max_concurrency=3)
    runs = sorted(read_statuses(swarm))
    swarm.store.write_bytes(swarm.run_key(runs[0], "result.json"), b'{"metrics": {"eval/lm/target/CE lo')
    out = tmp_path / "pulled"
    pull = ["results", "pull", "--config", path, "--group-id", swarm.group_id, "--from", "local", "--output-dir", str(out)]
    r = CliRunner().invoke(cli, pull)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "pull_report.json").read_text())
    assert report["failed"] == [runs[0]] and report["included"] == runs[1:]
    assert any("result.json: unreadable" in w and "counts as failed" in w for w in report["warnings"])

    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--group-id", swarm.group_id, "--wait"])
    assert r.exit_code == 0, r.output
    st = read_statuses(swarm)[runs[0]]
    assert st.state == RunState.succeeded and st.attempts == 2
    assert "train/CE loss" in swarm.store.read_json(swarm.run_key(runs[0], "result.json"))["metrics"]
    r = CliRunner().invoke(cli, pull)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "pull_report.json").read_text())["included"] == runs

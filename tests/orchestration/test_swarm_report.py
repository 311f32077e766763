"""What the UI shows about a swarm (olmix_core.swarm_report): run rows, share of steps done, ETA, resume commands."""

from __future__ import annotations

import pytest

from olmix_core.runspec import RunProgress, RunState, RunStatus
from olmix_core.swarm_report import SwarmView, eta_s, resume_commands, run_rows, steps_done, summary_markdown


def status(name: str, state: RunState, step: int | None = None, elapsed: float = 0.0, **kw) -> RunStatus:
    progress = RunProgress(step=step, total_steps=100, elapsed_s=elapsed, train_loss=3.0, **kw) if step is not None else None
    return RunStatus(run_name=name, state=state, attempts=1, launcher="local", progress=progress)


def view(**statuses: RunStatus) -> SwarmView:
    return SwarmView(name="s", group_id="0000abcd", store="s3://b/s/0000abcd", stage="training", statuses=statuses,
                     verify_runs=["v"], config_url="s3://b/s/0000abcd/config.yaml")


def test_eta_from_step_rates_spread_over_the_running_runs():
    # two running at 1 step/s (50 and 80 steps to go), one queued at the median run time (100 s), done ones ignored
    v = view(a=status("a", RunState.running, 50, 50.0), b=status("b", RunState.running, 20, 20.0),
             c=status("c", RunState.submitted), d=status("d", RunState.succeeded, 100, 100.0))
    assert eta_s(v.statuses) == pytest.approx((50 + 80 + 100) / 2)
    assert steps_done(v.statuses) == pytest.approx(100 * (50 + 20 + 100) / 400, abs=0.1)  # the queued run: 100 to do
    # a resumed run's rate counts the steps of this attempt only
    resumed = status("r", RunState.running, 60, 10.0, start_step=50)
    assert eta_s({"r": resumed}) == pytest.approx(40 / 1.0)
    assert eta_s({"q": status("q", RunState.submitted)}) is None  # no step rate anywhere yet
    assert eta_s({"d": status("d", RunState.succeeded, 100, 5.0)}) == 0.0


def test_run_rows_put_the_verify_run_last_with_steps_loss_folder_and_log():
    rows = run_rows(view(v=status("v", RunState.running, 30, 3.0), a=status("a", RunState.failed)))
    assert [(r["run"], r["purpose"]) for r in rows] == [("a", "swarm"), ("v", "verify")]
    assert rows[1]["step"] == "30/100" and rows[1]["train loss"] == "3.0000" and rows[1]["elapsed"] == "3s"
    assert rows[1]["folder"] == "s3://b/s/0000abcd/runs/v" and rows[1]["log"] == "s3://b/s/0000abcd/runs/v/train.log"
    assert rows[0]["step"] == "" and rows[0]["state"] == "failed"


def test_failed_summary_says_how_to_resume_with_quoted_values():
    v = view(a=status("a", RunState.failed)).model_copy(update={"config_url": "/tmp/my swarm/config.yaml", "stage": "failed"})
    cmds = resume_commands(v)
    assert cmds == ["prefect deployment run olmix/swarm --param group_id=0000abcd --param config='/tmp/my swarm/config.yaml'",
                    "olmix swarm --config '/tmp/my swarm/config.yaml' --group-id 0000abcd"]
    text = summary_markdown(v, failure="NoRunSucceeded: group 0000abcd: no run succeeded")
    assert "**Stage: failed**" in text and cmds[0] in text and cmds[1] in text and "1 failed" in text

"""`olmix launch run --append`: rounds in one group. Numbering continues after every run (verify runs included),
each run records its round, appending the same batch again (or resuming a half-done append) adds nothing, and
`results pull` covers every round while verify runs stay out."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.errors import ConfigError
from olmix_core.results import pull_results
from olmix_core.stages.append import append_runs
from olmix_core.stages.setup import store_verify_spec
from olmix_core.store import SwarmStore
from tests.launch.conftest import FAKE_TRAINER, launch_config
from tests.launch.test_launch_cli import _write


@pytest.fixture
def fake_cli(fake_env):
    fake_env.setattr("olmix_core.launch.local.TRAIN_COMMAND", FAKE_TRAINER)
    fake_env.setenv("FAKE_TRAIN_SECONDS", "0.05")
    return fake_env


def test_append_continues_numbering_records_rounds_and_is_idempotent(tmp_path, fake_cli):
    config = launch_config(tmp_path)  # 3 variants
    path = _write(tmp_path, json.loads(config.model_dump_json()))
    ev = str(tmp_path / "ev")
    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--group-id", "0000a0a0", "--wait", "--eval-script-dir", ev])
    assert r.exit_code == 0, r.output
    swarm = SwarmStore.open(config.storage_root, config.name, "0000a0a0")
    verify = store_verify_spec(config, swarm, {"wiki": 1.0})  # takes variant 3
    batch = tmp_path / "next.json"
    batch.write_text(json.dumps([{"wiki": 0.5, "code": 0.5}, {"code": 0.25, "web:science": 0.75}]))
    args = ["launch", "run", "--config", path, "--group-id", "0000a0a0", "--mixtures", str(batch), "--append", "--wait",
            "--eval-script-dir", ev]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "round 1, 2 new runs" in first.output
    specs = swarm.read_run_files("spec.json")
    new = [f"{config.name}-0000a0a0-0004", f"{config.name}-0000a0a0-0005"]
    assert verify.run_name == f"{config.name}-0000a0a0-0003"
    assert [specs[n]["round"] for n in new] == [1, 1] and specs[verify.run_name]["purpose"] == "verify"
    assert {m["leaf"]: m["weight"] for m in specs[new[0]]["mixture"]} == {"wiki": 0.5, "code": 0.5}
    assert all(specs[f"{config.name}-0000a0a0-000{i}"]["round"] == 0 for i in range(3))
    assert [(e.round, e.runs) for e in swarm.metadata().rounds] == [(1, new)]
    script = (tmp_path / "ev" / "olmix-0000a0a0.sh").read_text()
    assert all(n in script for n in new)  # the offline-eval script covers every round

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "round 1, 0 new runs (2 of the 2 mixtures already in the group)" in again.output
    assert sorted(swarm.read_run_files("spec.json")) == sorted(specs)
    statuses = swarm.read_run_files("status.json")
    assert all(statuses[n]["attempts"] == 1 and statuses[n]["state"] == "succeeded" for n in new)

    report = pull_results(config, swarm, source="local")
    assert sorted(report.included) == sorted([f"{config.name}-0000a0a0-000{i}" for i in range(3)] + new)
    assert verify.run_name not in report.included


def test_resumed_half_done_append_keeps_its_round(tmp_path):
    config = launch_config(tmp_path)
    from olmix_core.stages.setup import prepare_swarm

    swarm, _ = prepare_swarm(config, "0000b0b0", launcher="local")
    a, b = {"wiki": 0.5, "code": 0.5}, {"code": 0.25, "web:science": 0.75}
    part = append_runs(config, swarm, [a])  # a crash after the first spec was written
    assert part.round == 1 and len(part.new_runs) == 1
    full = append_runs(config, swarm, [a, b])
    assert full.round == 1 and full.new_runs == [f"{config.name}-0000b0b0-0004"]
    assert [s.run_name for s in full.specs] == part.new_runs + full.new_runs
    nxt = append_runs(config, swarm, [{"wiki": 0.2, "web:sports": 0.3, "code": 0.5}])
    assert nxt.round == 2 and nxt.specs[0].variant == 5
    assert [e.round for e in swarm.metadata().rounds] == [1, 2]


def test_append_needs_an_existing_group_and_the_same_config(tmp_path):
    config = launch_config(tmp_path)
    from olmix_core.stages.setup import open_swarm, prepare_swarm

    with pytest.raises(ConfigError, match="has no swarm yet"):
        append_runs(config, open_swarm(config, "0000c0c0"), [{"wiki": 1.0}])
    swarm, _ = prepare_swarm(config, "0000c0c0", launcher="local")
    changed = launch_config(tmp_path, max_tokens=2_000_000)
    with pytest.raises(ConfigError, match="group_id 0000c0c0: the config differs"):
        append_runs(changed, swarm, [{"wiki": 1.0}])
    r = CliRunner().invoke(cli, ["launch", "run", "--config", _write(tmp_path, json.loads(config.model_dump_json())), "--append"])
    assert r.exit_code == 1 and "--append needs --group-id" in r.output

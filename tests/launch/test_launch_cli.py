"""`olmix launch run|status|cancel|validate` through click's CliRunner (the local launcher with the stand-in trainer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.store import ArtifactStore, find_swarm
from tests.conftest import minimal_config
from tests.launch.conftest import FAKE_TRAINER


def _write(tmp_path, cfg, name="c.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


def _data_config(tmp_path, **overrides):
    """Two real uint32 token files; 1000 and 3000 tokens."""
    for name, n in [("a/part-0.bin", 1000), ("b/x.bin", 3000)]:
        p = tmp_path / "data" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        np.arange(n, dtype=np.uint32).tofile(p)
    cfg = {
        "name": "cli-swarm",
        "variants": 2,
        "max_tokens": 2000,
        "dtype": "uint32",
        "storage_root": str(tmp_path / "store"),
        "sources": [
            {"name": "alpha", "paths": [str(tmp_path / "data/a/*.bin")]},
            {"name": "beta", "paths": [str(tmp_path / "data/b")]},
        ],
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def fake_cli(fake_env):
    fake_env.setattr("olmix_core.launch.local.TRAIN_COMMAND", FAKE_TRAINER)
    return fake_env


def test_validate_prints_resolved_config(tmp_path):
    r = CliRunner().invoke(cli, ["launch", "validate", "--config", _write(tmp_path, _data_config(tmp_path))])
    assert r.exit_code == 0, r.output
    assert "target tokens per run: 2,000" in r.output
    alpha = next(line for line in r.output.splitlines() if line.startswith("alpha"))
    # 1000 tokens, prior 0.25, repetition cap 1, so at most half of a 2000-token run
    assert alpha.split()[1:5] == ["1,000", "0.2500", "1.00", "0.5000"]
    assert "ok:" in r.output


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"variants": 0}, "variants"),
        ({"max_tokens": 10_000}, "token caps"),
        ({"sources": [{"name": "alpha", "paths": ["/nowhere/*.bin"]}]}, "leaf 'alpha' matches no file"),
        ({"sourcez": []}, "sourcez: unknown key"),
        ({"eval_sources": {"heldout": ["/nowhere/val.bin"]}}, "eval_sources: no file at heldout: /nowhere/val.bin"),
    ],
)
def test_validate_errors_exit_1(tmp_path, overrides, match):
    r = CliRunner().invoke(cli, ["launch", "validate", "--config", _write(tmp_path, _data_config(tmp_path, **overrides))])
    assert r.exit_code == 1
    assert match in r.output and "Traceback" not in r.output


def test_dry_run_prints_specs_and_writes_nothing(tmp_path, fake_cli):
    cfg = _data_config(tmp_path)
    r = CliRunner().invoke(cli, ["launch", "run", "--config", _write(tmp_path, cfg), "--dry-run", "--specs-out", "-", "--eval-script-dir", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    specs = json.loads(r.stdout)
    assert [s["variant"] for s in specs] == [0, 1]
    assert {s["swarm_name"] for s in specs} == {"cli-swarm"}
    assert all(abs(sum(m["weight"] for m in s["mixture"]) - 1) < 1e-9 for s in specs)
    assert ArtifactStore(cfg["storage_root"]).list() in ([], ["_cache"])  # at most the priors cache, no swarm
    assert not (tmp_path / "ev").exists()


def test_run_wait_status_cancel_roundtrip(tmp_path, fake_cli):
    cfg = _data_config(tmp_path)
    path = _write(tmp_path, cfg)
    runner = CliRunner()
    r = runner.invoke(cli, ["launch", "run", "--config", path, "--wait", "--eval-script-dir", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    swarm = find_swarm(cfg["storage_root"], r.output.split()[1].rstrip(":"))
    meta = swarm.metadata()
    assert meta.eval_script.path == str(tmp_path / "ev" / f"olmix-{swarm.group_id}.sh")
    assert (tmp_path / "ev" / f"olmix-{swarm.group_id}.sh").exists()
    assert len(meta.run_names) == 2

    # status from the store alone (no config), as another shell would
    st = runner.invoke(cli, ["launch", "status", "--group-id", swarm.group_id, "--storage-root", cfg["storage_root"], "--json"])
    assert st.exit_code == 0, st.output
    states = json.loads(st.output)
    assert {v["state"] for v in states.values()} == {"succeeded"} and set(states) == set(meta.run_names)
    table = runner.invoke(cli, ["launch", "status", "--group-id", swarm.group_id, "--config", path])
    assert "2 runs: 2 succeeded" in table.output
    # the step and loss each run reported, kept by the supervisor's final status
    assert table.output.splitlines()[0].split()[:5] == ["run", "state", "attempts", "step", "loss"]
    assert all(" 10/10 " in line and " 2.5000 " in line for line in table.output.splitlines()[2:4]), table.output

    # cancelling a finished group changes nothing; re-running it submits nothing
    c = runner.invoke(cli, ["launch", "cancel", "--group-id", swarm.group_id, "--config", path])
    assert c.exit_code == 0 and "2 succeeded" in c.output
    again = runner.invoke(cli, ["launch", "run", "--config", path, "--group-id", swarm.group_id, "--eval-script-dir", str(tmp_path / "ev")])
    assert again.exit_code == 0, again.output
    assert "2 runs: 2 succeeded" in again.output


def test_run_with_mixtures_file_wait_exits_1_when_a_run_fails(tmp_path, fake_cli):
    path = _write(tmp_path, _data_config(tmp_path, name="failing"))
    mixtures = tmp_path / "m.json"
    mixtures.write_text(json.dumps([{"alpha": 0.5, "beta": 0.5}, {"beta": 1.0}]))
    fake_cli.setenv("FAKE_TRAIN_FAIL", "failing-0000000b-0001")
    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--mixtures", str(mixtures), "--group-id", "0000000b",
                                 "--wait", "--eval-script-dir", str(tmp_path / "ev")])
    assert r.exit_code == 1
    assert "did not succeed: failing-0000000b-0001" in r.output
    swarm = find_swarm(str(tmp_path / "store"), "0000000b")
    spec = swarm.read_run_files("spec.json")["failing-0000000b-0001"]
    assert [(m["leaf"], m["weight"]) for m in spec["mixture"]] == [("beta", 1.0)]
    statuses = swarm.read_run_files("status.json")
    assert statuses["failing-0000000b-0000"]["state"] == "succeeded" and statuses["failing-0000000b-0000"]["attempts"] == 1
    assert statuses["failing-0000000b-0001"]["attempts"] == 3  # --wait resubmitted it up to max_attempts (default 3)


def test_status_of_unknown_group_exits_1(tmp_path):
    r = CliRunner().invoke(cli, ["launch", "status", "--group-id", "deadbeef", "--storage-root", str(tmp_path)])
    assert r.exit_code == 1 and "deadbeef" in r.output
    r = CliRunner().invoke(cli, ["launch", "status", "--group-id", "not-hex!", "--storage-root", str(tmp_path)])
    assert r.exit_code == 1 and "group id" in r.output


def test_changed_config_for_existing_group_exits_1(tmp_path, fake_cli):
    cfg = minimal_config(variants=2, storage_root=str(tmp_path / "store"))
    path = _write(tmp_path, cfg)
    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--dry-run"])
    assert r.exit_code == 0
    from olmix_core.config import ExperimentConfig
    from olmix_core.stages.setup import prepare_swarm

    swarm, _ = prepare_swarm(ExperimentConfig.from_dict(cfg))
    cfg["training"] = {"learning_rate": 0.5}
    r = CliRunner().invoke(cli, ["launch", "run", "--config", _write(tmp_path, cfg), "--group-id", swarm.group_id])
    assert r.exit_code == 1 and "different spec" in r.output

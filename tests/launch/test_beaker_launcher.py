"""The Beaker launcher against a local stand-in of Beaker's API (gRPC + HTTP on 127.0.0.1), through a real
beaker-py client, with the store on a local S3 server: specs sent, idempotency, batching, retries, state mapping."""

from __future__ import annotations

import shlex

import pytest

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError, LaunchError
from olmix_core.launch.base import get_launcher
from olmix_core.launch.beaker import BeakerLauncher, attempt_name, experiment_spec, secret_env, train_command
from olmix_core.runspec import RunState, RunStatus, build_run_specs, read_run_spec, write_run_specs
from olmix_core.store import SwarmStore
from tests.conftest import minimal_config
from tests.fakes.beaker_server import FakeBeaker

GROUP = "0badc0de"
MIX = {"wiki": [0.4, 1.0], "code": [0.3, 1.0], "web:science": [0.2, 1.0], "web:sports": [0.1, 1.0]}
SECRETS = {"WANDB_API_KEY": "olmixbot_WANDB", "AWS_ACCESS_KEY_ID": "olmixbot_AWS_ID", "AWS_SECRET_ACCESS_KEY": "olmixbot_AWS_KEY"}


@pytest.fixture
def fake():
    with FakeBeaker() as server:
        yield server


def beaker_config(root: str, **overrides) -> ExperimentConfig:
    beaker = {"image": "ai2/olmix-test-image", "user": "olmixbot", "clusters": ["ai2/jupiter", "ai2/saturn"], "secrets": SECRETS,
              "max_submit_workers": 4}
    beaker.update(overrides.pop("beaker", {}))
    fields = {"storage_root": root, "workspace": "ai2/olmix-test", "budget": "ai2/oe-data", "priority": "high", "preemptible": True,
              "gpus": 1, "launcher": "beaker", "beaker": beaker}
    cfg = minimal_config(**{**fields, **overrides})
    return ExperimentConfig.from_dict(cfg)


def make_swarm(config: ExperimentConfig, n: int, write: bool = True):
    swarm = SwarmStore.open(config.storage_root, config.name, GROUP)
    specs = build_run_specs(config, swarm, [MIX] * n)
    if write:
        write_run_specs(swarm, specs)
    return swarm, specs


def launcher(fake: FakeBeaker, config: ExperimentConfig, swarm: SwarmStore, **kw) -> BeakerLauncher:
    return BeakerLauncher(config, swarm, client=fake.client(), retry_delay_s=0.01, **kw)


def test_submit_sends_the_specs_and_records_statuses(fake, s3_endpoint):
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 3, write=False)  # the launcher writes specs the store lacks
    out = launcher(fake, config, swarm).submit(specs)

    assert sorted(out) == sorted(s.run_name for s in specs)
    assert fake.calls["CreateExperiment"] == 3
    group_name = f"test-swarm-{GROUP}"
    assert fake.group_members(group_name) == {s.run_name for s in specs}
    group_id = next(gid for gid, g in fake.groups.items() if g["name"] == group_name)
    for s in specs:
        exp = fake.by_name(s.run_name)  # experiment name = run name
        assert exp.workspace_id == fake.workspaces["ai2/olmix-test"]
        body = exp.spec
        assert body["budget"] == "ai2/oe-data" and body["groups"] == [group_id]
        (task,) = body["tasks"]
        assert task["image"] == {"beaker": "ai2/olmix-test-image"}
        url = task["command"][-1]
        assert task["command"] == ["olmix", "train", "--run-spec", url]
        assert url == f"{s3_endpoint}/test-swarm/{GROUP}/runs/{s.run_name}/spec.json"
        assert read_run_spec(url) == s  # the job can read its spec from the store
        assert task["context"] == {"priority": "high", "preemptible": True}
        assert task["constraints"] == {"cluster": ["ai2/jupiter", "ai2/saturn"]}
        assert task["resources"] == {"gpuCount": 1}
        assert sorted(task["envVars"], key=lambda e: e["name"]) == [
            {"name": "AWS_ACCESS_KEY_ID", "secret": "olmixbot_AWS_ID"},
            {"name": "AWS_SECRET_ACCESS_KEY", "secret": "olmixbot_AWS_KEY"},
            {"name": "WANDB_API_KEY", "secret": "olmixbot_WANDB"},
        ]  # by secret name only: no value reaches the spec
        st = RunStatus.model_validate(swarm.store.read_json(swarm.run_key(s.run_name, "status.json")))
        assert (st.state, st.attempts, st.launcher, st.job_id) == (RunState.submitted, 1, "beaker", exp.id)
        assert st.url == f"{fake.agent_address}/ex/{exp.id}"
        assert out[s.run_name].job_id == exp.id
    meta = swarm.metadata()
    assert meta.beaker_group_id == group_id and meta.beaker_group_url.endswith(f"/gr/{group_id}")


def test_submitting_again_creates_nothing_even_from_a_new_process(fake, s3_endpoint):
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 4)
    first = launcher(fake, config, swarm).submit(specs)
    again = launcher(fake, config, swarm).submit(specs)  # a fresh launcher, as after a restart
    assert fake.calls["CreateExperiment"] == 4 and len(fake.experiments) == 4
    assert {r: s.job_id for r, s in again.items()} == {r: s.job_id for r, s in first.items()}
    assert fake.calls["CreateGroup"] == 1


def test_a_crashed_launch_can_be_rerun(fake, s3_endpoint):
    """Experiments created but the launch died before recording them (no status.json), and some never created."""
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 4)
    launcher(fake, config, swarm).submit(specs[:2])
    for s in specs[:2]:
        swarm.store.delete(swarm.run_key(s.run_name, "status.json"))
    out = launcher(fake, config, swarm).submit(specs)
    assert fake.calls["CreateExperiment"] == 4 and len(fake.experiments) == 4
    for s in specs:
        assert out[s.run_name].job_id == fake.by_name(s.run_name).id
        assert swarm.store.read_json(swarm.run_key(s.run_name, "status.json"))["job_id"] == fake.by_name(s.run_name).id


def test_finished_runs_are_not_submitted(fake, s3_endpoint):
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 2)
    done = RunStatus(run_name=specs[0].run_name, state=RunState.succeeded)
    swarm.store.write_json(swarm.run_key(done.run_name, "status.json"), done.model_dump(mode="json"))
    out = launcher(fake, config, swarm).submit(specs)
    assert [e.name for e in fake.experiments.values()] == [specs[1].run_name]
    assert out[specs[0].run_name].state == RunState.succeeded


def test_name_conflict_means_it_exists(fake, s3_endpoint):
    """The listing lags behind creation: the create answers 409 and the run adopts the existing experiment."""
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 2)
    launcher(fake, config, swarm).submit(specs[:1])
    existing = fake.by_name(specs[0].run_name).id
    swarm.store.delete(swarm.run_key(specs[0].run_name, "status.json"))
    fake.hidden_from_list.add(specs[0].run_name)
    out = launcher(fake, config, swarm).submit(specs)
    assert fake.calls["CreateExperiment"] == 3  # 1 + a conflicting one + the new run
    assert len(fake.experiments) == 2
    assert out[specs[0].run_name].job_id == existing and out[specs[0].run_name].extra["created"] is False
    assert fake.calls["ResolveWorkloadName"] == 1


def test_a_create_whose_reply_was_lost_is_not_duplicated(fake, s3_endpoint):
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 1)
    fake.fail("CreateExperiment", "commit-then-503")
    out = launcher(fake, config, swarm).submit(specs)
    assert len(fake.experiments) == 1 and fake.calls["CreateExperiment"] == 2
    assert out[specs[0].run_name].job_id == fake.by_name(specs[0].run_name).id


def test_transient_errors_are_retried(fake, s3_endpoint):
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 3)
    fake.fail("CreateExperiment", 503, times=2)
    fake.fail("CreateGroup", "unavailable")
    fake.fail("ListWorkloads", "unavailable", times=2)  # retried by beaker-py itself (reads)
    out = launcher(fake, config, swarm).submit(specs)
    assert all(s.state == RunState.submitted for s in out.values())
    assert len(fake.experiments) == 3
    assert fake.calls["CreateExperiment"] == 5 and fake.calls["CreateGroup"] == 2 and fake.calls["ListWorkloads"] == 3


def test_retries_are_bounded_and_the_rest_is_submitted(fake, s3_endpoint):
    config = beaker_config(s3_endpoint, beaker={"max_submit_workers": 1})
    swarm, specs = make_swarm(config, 2)
    fake.fail("CreateExperiment", 503, times=3)
    with pytest.raises(LaunchError, match=rf"(?s)could not submit 1 of 2 runs.*{specs[0].run_name}: HTTPError"):
        launcher(fake, config, swarm, retry_attempts=3).submit(specs)
    assert [e.name for e in fake.experiments.values()] == [specs[1].run_name]
    assert fake.calls["CreateExperiment"] == 4
    out = launcher(fake, config, swarm, retry_attempts=3).submit(specs)  # re-running the launch finishes the job
    assert all(s.state == RunState.submitted for s in out.values()) and len(fake.experiments) == 2


def test_status_is_batched_and_maps_preemption_apart_from_failure(fake, s3_endpoint):
    config = beaker_config(s3_endpoint, beaker={"max_submit_workers": 10})
    swarm, specs = make_swarm(config, 60)
    bl = launcher(fake, config, swarm)
    bl.submit(specs)
    names = [s.run_name for s in specs]
    fake.set_state(names[0], "running")
    fake.set_state(names[1], "succeeded")
    fake.set_state(names[2], "failed", message="OOM")
    fake.set_state(names[3], "preempted")
    fake.set_state(names[4], "timeout")
    before = fake.calls.copy()
    statuses = launcher(fake, config, swarm).status()
    used = fake.calls - before
    assert used["ListWorkloads"] == 2  # 60 experiments, pages of 50: not one call per run
    assert used["GetWorkload"] == 0 and used["ListJobs"] == 3  # only the newly ended canceled/failed runs
    assert len(statuses) == 60
    assert statuses[names[0]].state == RunState.running
    assert statuses[names[1]].state == RunState.succeeded
    assert statuses[names[2]].state == RunState.failed and statuses[names[2]].reason == "exit code 1: OOM"
    assert statuses[names[3]].state == RunState.preempted and "system_preemption" in statuses[names[3]].reason
    assert statuses[names[4]].state == RunState.failed and statuses[names[4]].reason == "timeout"
    assert statuses[names[5]].state == RunState.submitted
    stored = swarm.read_run_files("status.json")  # what `olmix launch status` reads from anywhere
    assert stored[names[3]]["state"] == "preempted" and stored[names[2]]["state"] == "failed"
    before = fake.calls.copy()
    launcher(fake, config, swarm).status()
    assert (fake.calls - before)["ListJobs"] == 0  # finished classifications are cached in the store


def test_what_the_run_itself_wrote_is_kept(fake, s3_endpoint):
    """The trainer writes its own succeeded/failed marker (no job id): success wins over a job still uploading, and
    a failure keeps the trainer's reason."""
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 2)
    bl = launcher(fake, config, swarm)
    bl.submit(specs)
    ok, bad = specs[0].run_name, specs[1].run_name
    fake.set_state(ok, "running")
    fake.set_state(bad, "failed")
    for run, state, reason in [(ok, RunState.succeeded, None), (bad, RunState.failed, "Insufficient tokens for source wiki")]:
        swarm.store.write_json(swarm.run_key(run, "status.json"), RunStatus(run_name=run, state=state, reason=reason).model_dump(mode="json"))
    st = bl.status()
    assert st[ok].state == RunState.succeeded and st[ok].job_id == fake.by_name(ok).id
    assert st[bad].state == RunState.failed and st[bad].reason == "Insufficient tokens for source wiki"
    assert st[bad].job_id == fake.by_name(bad).id


def test_resubmit_creates_a_new_attempt(fake, s3_endpoint):
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 4)
    bl = launcher(fake, config, swarm)
    bl.submit(specs)
    a, b, c, d = (s.run_name for s in specs)
    fake.set_state(a, "preempted")
    fake.set_state(b, "failed")
    fake.set_state(c, "succeeded")
    fake.set_state(d, "running")
    out = bl.resubmit(specs)
    assert sorted(e.name for e in fake.experiments.values()) == sorted([a, b, c, d, attempt_name(a, 2), attempt_name(b, 2)])
    assert attempt_name(a, 2) == f"{a}-a2"
    assert (out[a].state, out[a].attempts, out[a].job_id) == (RunState.submitted, 2, fake.by_name(f"{a}-a2").id)
    assert out[c].state == RunState.succeeded and out[d].state == RunState.running and out[c].attempts == 1
    assert fake.group_members(f"test-swarm-{GROUP}") >= {f"{a}-a2", f"{b}-a2"}
    launcher(fake, config, swarm).resubmit(specs)  # nothing is finished-and-retryable now: no new experiment
    assert len(fake.experiments) == 6
    fake.set_state(f"{a}-a2", "preempted")
    out = bl.resubmit(specs)
    assert out[a].attempts == 3 and fake.by_name(f"{a}-a3").spec["tasks"][0]["command"][-1].endswith(f"/runs/{a}/spec.json")
    assert launcher(fake, config, swarm).status()[a].attempts == 3


def test_cancel_stops_the_group_in_one_call(fake, s3_endpoint):
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 4)
    bl = launcher(fake, config, swarm)
    bl.submit(specs[:3])
    a, b, c, never = (s.run_name for s in specs)
    fake.set_state(a, "running")
    fake.set_state(b, "succeeded")
    out = bl.cancel()
    assert fake.calls["CancelWorkloads"] == 1
    assert out[a].state == out[c].state == RunState.canceled and out[b].state == RunState.succeeded
    assert out[never].state == RunState.canceled and "before it was submitted" in out[never].reason
    assert fake.by_name(a).canceled and fake.by_name(c).canceled and not fake.by_name(b).canceled
    later = launcher(fake, config, swarm).status()
    assert later[a].state == RunState.canceled and later[a].extra["beaker_status"] == "canceled"
    assert launcher(fake, config, swarm).submit(specs)[never].state == RunState.canceled  # canceled runs stay canceled
    assert len(fake.experiments) == 3


def test_get_launcher_opens_the_beaker_client_from_the_environment(fake, monkeypatch, s3_endpoint, tmp_path, caplog):
    import olmix_core.launch.beaker as mod

    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 2)
    launcher(fake, config, swarm).submit(specs[:1])
    monkeypatch.setenv("BEAKER_CONFIG", str(tmp_path / "none.yml"))
    monkeypatch.delenv("BEAKER_TOKEN", raising=False)
    bl = get_launcher("beaker", config, swarm)
    assert isinstance(bl, BeakerLauncher)
    with pytest.raises(LaunchError, match="BEAKER_TOKEN"):
        bl.submit(specs)
    statuses = bl.status()  # no credentials on this machine: what the store last recorded
    assert statuses[specs[0].run_name].job_id == fake.by_name(specs[0].run_name).id
    assert statuses[specs[1].run_name].state == RunState.pending
    assert "last recorded in the store" in caplog.text
    monkeypatch.setenv("BEAKER_TOKEN", "tok")
    client = mod.beaker_client(config)
    assert client.config.default_workspace == "ai2/olmix-test" and client.config.user_token == "tok"


def test_a_rejected_token_is_a_clear_error_without_the_token(fake, s3_endpoint):
    config = beaker_config(s3_endpoint)
    swarm, specs = make_swarm(config, 1)
    bl = BeakerLauncher(config, swarm, client=fake.client(token="wrong-token-value"), retry_delay_s=0.01)
    with pytest.raises(LaunchError, match="Beaker: submit failed") as e:
        bl.submit(specs)
    assert "wrong-token-value" not in str(e.value)


def _experiment_json(bl, spec):
    """The Beaker spec (JSON) a run is submitted with; builds it without a server when `beaker.secrets` is set."""
    return experiment_spec(bl.config, spec, bl.spec_url(spec.run_name), bl.secrets()).to_json()


def test_dry_run_specs_need_no_server(s3_endpoint, monkeypatch):
    monkeypatch.delenv("BEAKER_TOKEN", raising=False)
    config = beaker_config(s3_endpoint, nodes=2, gpus=8)
    swarm, specs = make_swarm(config, 2, write=False)
    task = _experiment_json(BeakerLauncher(config, swarm), specs[0])["tasks"][0]
    assert task["replicas"] == 2 and task["leaderSelection"] and task["hostNetworking"] and task["propagatePreemption"]
    assert task["command"][:2] == ["bash", "-c"] and "--nnodes=2" in task["command"][2] and "--nproc-per-node=8" in task["command"][2]


def test_config_problems_are_named_before_anything_is_sent(s3_endpoint, tmp_path):
    with pytest.raises(ConfigError) as e:
        cfg = beaker_config(str(tmp_path / "store"), cluster="local", beaker={"clusters": [], "secrets": {"WANDB_API_KEY": "bad name!"}})
        BeakerLauncher(cfg.model_copy(update={"budget": None}), make_swarm(cfg, 1, write=False)[0])
    msg = str(e.value)
    for field in ("budget", "cluster", "storage_root", "beaker.secrets.WANDB_API_KEY"):
        assert field in msg


def test_gcs_credentials_are_mounted_from_their_secret(s3_endpoint):
    config = beaker_config(s3_endpoint, beaker={"secrets": {"GOOGLE_APPLICATION_CREDENTIALS": "olmixbot_GCP"}})
    swarm, specs = make_swarm(config, 1, write=False)
    task = _experiment_json(BeakerLauncher(config, swarm), specs[0])["tasks"][0]
    (mount,) = task["datasets"]
    assert mount["source"] == {"secret": "olmixbot_GCP"}
    assert {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": mount["mountPath"]} in task["envVars"]


def test_default_secret_names_follow_what_the_config_needs():
    cfg = ExperimentConfig.from_dict(minimal_config(storage_root="s3://b/root", training={"wandb": {"mode": "online"}}))
    assert secret_env(cfg, "alice") == {"WANDB_API_KEY": "alice_WANDB_API_KEY", "AWS_ACCESS_KEY_ID": "alice_AWS_ACCESS_KEY_ID",
                                        "AWS_SECRET_ACCESS_KEY": "alice_AWS_SECRET_ACCESS_KEY"}
    gcs = ExperimentConfig.from_dict(minimal_config(storage_root="gs://b/root"))
    assert secret_env(gcs, "alice") == {"GOOGLE_APPLICATION_CREDENTIALS": "alice_GOOGLE_APPLICATION_CREDENTIALS"}
    with pytest.raises(ConfigError, match="beaker.user"):
        secret_env(cfg, None)


@pytest.mark.parametrize("url", ["s3://bucket/a b/spec.json", "s3://bucket/$(touch x)/spec.json", "s3://b/it's;rm -rf/spec.json"])
def test_the_multi_node_command_quotes_the_spec_url(url):
    argv = train_command(url, nodes=2, gpus=4)
    assert argv[:2] == ["bash", "-c"]
    tokens = shlex.split(argv[2])
    assert tokens[-4:] == ["olmix", "train", "--run-spec", url]
    assert train_command(url) == ["olmix", "train", "--run-spec", url]
    assert train_command(url, gpus=4)[-4:] == ["olmix", "train", "--run-spec", url]

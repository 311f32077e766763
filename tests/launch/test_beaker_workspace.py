"""`olmix workspace sync` against the local Beaker stand-in: secrets written from the environment, values never shown."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

import olmix_core.launch.beaker as beaker_mod
from olmix_core.cli import cli
from tests.conftest import minimal_config
from tests.fakes.beaker_server import FakeBeaker

VALUES = {
    "WANDB_API_KEY": "wandb-value-7f3a9c",
    "AWS_ACCESS_KEY_ID": "AKIAVALUE0042",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value/+x9",
}
GCP_JSON = json.dumps({"type": "service_account", "private_key": "gcp-private-key-value"})


@pytest.fixture
def fake(monkeypatch):
    with FakeBeaker() as server:
        monkeypatch.setattr(beaker_mod, "beaker_client", lambda config: server.client())
        yield server


def write_config(tmp_path, **overrides) -> str:
    cfg = minimal_config(storage_root="s3://bucket/olmix", workspace="ai2/olmix-test", budget="ai2/oe-data", **overrides)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def run_sync(path: str, *args: str):
    return CliRunner().invoke(cli, ["workspace", "sync", "--config", path, *args])


def test_sync_writes_secrets_from_the_environment_and_never_prints_them(fake, tmp_path, monkeypatch, capfd):
    key_file = tmp_path / "gcp.json"
    key_file.write_text(GCP_JSON)
    for k, v in VALUES.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    secrets = {"WANDB_API_KEY": "team_WANDB", "AWS_ACCESS_KEY_ID": "team_AWS_ID", "AWS_SECRET_ACCESS_KEY": "team_AWS_KEY",
               "GOOGLE_APPLICATION_CREDENTIALS": "team_GCP"}
    path = write_config(tmp_path, beaker={"secrets": secrets})
    result = run_sync(path)
    assert result.exit_code == 0, result.output
    ws = fake.workspaces["ai2/olmix-test"]
    assert fake.secrets == {
        (ws, "team_WANDB"): VALUES["WANDB_API_KEY"],
        (ws, "team_AWS_ID"): VALUES["AWS_ACCESS_KEY_ID"],
        (ws, "team_AWS_KEY"): VALUES["AWS_SECRET_ACCESS_KEY"],
        (ws, "team_GCP"): GCP_JSON,  # the key file's content, not its path
    }
    for var, name in secrets.items():
        assert any(var in line and name in line and "written" in line for line in result.output.splitlines())
    seen = result.output + "".join(capfd.readouterr())
    for value in [*VALUES.values(), "gcp-private-key-value"]:
        assert value not in seen


def test_default_secret_names_and_missing_variables(fake, tmp_path, monkeypatch, capfd):
    """No beaker.secrets: `{user}_{VAR}` for what the config needs (S3 store, WandB online); a needed variable that
    is neither set nor already in the workspace fails the command, after writing the others."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", VALUES["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", VALUES["AWS_SECRET_ACCESS_KEY"])
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    path = write_config(tmp_path, training={"wandb": {"mode": "online"}})
    result = run_sync(path)
    assert result.exit_code == 1
    assert "WANDB_API_KEY (secret olmixbot_WANDB_API_KEY)" in result.output
    ws = fake.workspaces["ai2/olmix-test"]
    assert fake.secrets == {(ws, "olmixbot_AWS_ACCESS_KEY_ID"): VALUES["AWS_ACCESS_KEY_ID"],
                            (ws, "olmixbot_AWS_SECRET_ACCESS_KEY"): VALUES["AWS_SECRET_ACCESS_KEY"]}
    assert fake.calls["GetUser"] == 1  # the user name, for the default secret names

    fake.secrets[(ws, "olmixbot_WANDB_API_KEY")] = "set-earlier"
    result = run_sync(path)  # present in the workspace already: kept, not an error
    assert result.exit_code == 0, result.output
    assert any("WANDB_API_KEY" in line and "kept" in line for line in result.output.splitlines())
    assert fake.secrets[(ws, "olmixbot_WANDB_API_KEY")] == "set-earlier"
    seen = result.output + "".join(capfd.readouterr())
    assert VALUES["AWS_SECRET_ACCESS_KEY"] not in seen and "set-earlier" not in seen


def test_dry_run_writes_nothing(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", VALUES["WANDB_API_KEY"])
    path = write_config(tmp_path, beaker={"secrets": {"WANDB_API_KEY": "team_WANDB"}})
    result = run_sync(path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would write" in result.output and not fake.secrets
    assert VALUES["WANDB_API_KEY"] not in result.output


def test_transient_errors_while_writing_are_retried(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", VALUES["WANDB_API_KEY"])
    monkeypatch.setattr(beaker_mod, "RETRY_DELAY_S", 0.001)
    fake.fail("PutSecret", 503, times=2)
    result = run_sync(write_config(tmp_path, beaker={"secrets": {"WANDB_API_KEY": "team_WANDB"}}))
    assert result.exit_code == 0, result.output
    assert fake.calls["PutSecret"] == 3 and list(fake.secrets.values()) == [VALUES["WANDB_API_KEY"]]


def test_a_config_without_workspace_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(minimal_config(storage_root="s3://bucket/olmix")))
    result = run_sync(str(path))
    assert result.exit_code == 1 and "beaker.workspace: required" in result.output

"""Bad input a real user brings is an error naming the field or file, before any work, with no traceback."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError, DataError
from olmix_core.sampling import read_mixtures_file
from olmix_core.store import ArtifactStore, find_swarm
from tests.conftest import minimal_config


def _error(**overrides) -> str:
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict(minimal_config(**overrides))
    return str(e.value)


def _write(tmp_path, cfg, name="c.yaml") -> str:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"storage_root": "/tmp/store\ntouch /tmp/pwned"}, "storage_root"),
        ({"eval_results_prefix": "s3://bucket/evals\rx"}, "eval_results_prefix"),
        ({"eval_cluster": "aus\tx"}, "eval_cluster"),
        ({"eval_model_backend": "olmo_core\x00"}, "eval_model_backend"),
        ({"beaker": {"image": "ai2/olmix\x1b[31m"}}, "beaker.image"),
        ({"beaker": {"secrets": {"WANDB_API_KEY": "key\x85"}}}, "beaker.secrets"),  # a C1 control (NEL)
        ({"eval_tasks": ["arc\x7f"]}, "eval_tasks"),
        ({"training": {"checkpoint_root": "/ckpt\n"}}, "training.checkpoint_root"),
        ({"checkpoint_roots": {"s3": "s3://b/c\n"}}, "checkpoint_roots"),
        ({"existing_mix_file": "m.json\n"}, "existing_mix_file"),
    ],
)
def test_control_characters_are_rejected_naming_the_field(overrides, field):
    msg = _error(**overrides)
    assert f"  {field}" in msg and "control character" in msg


def test_control_characters_in_paths_and_free_text():
    cfg = minimal_config()
    cfg["sources"][0]["paths"] = ["/data/wiki/\n*.bin"]
    with pytest.raises(ConfigError, match=r"sources\.0\.paths: .*control character"):
        ExperimentConfig.from_dict(cfg)
    # the description is free text kept only in config.yaml: lines and tabs are fine there, other controls are not
    assert ExperimentConfig.from_dict(minimal_config(description="line one\n\tline two")).description.startswith("line one")
    assert "description" in _error(description="bell\x07")


@pytest.mark.parametrize(
    "overrides, field, needle",
    [
        ({"training": {"learning_rate": float("nan")}}, "training.learning_rate", "finite"),
        ({"training": {"learning_rate": 0.0}}, "training.learning_rate", "> 0"),
        ({"mix_temperature": float("inf")}, "mix_temperature", "finite"),
        ({"training": {"threads_per_run": 0}}, "training.threads_per_run", "> 0"),
        ({"training": {"warmup_fraction": 1.5}}, "training.warmup_fraction", "[0, 1)"),
        ({"variants": True}, "variants", "true/false"),
        ({"max_tokens": True}, "max_tokens", "true/false"),
        ({"seed": -5}, "seed", ">= 0"),
        ({"max_attempts": 0}, "max_attempts", "> 0"),
        ({"storage_root": "ftp://host/x"}, "storage_root", "unknown protocol"),
        ({"storage_root": "s3://"}, "storage_root", "no bucket"),
    ],
)
def test_numbers_and_urls_are_checked(overrides, field, needle):
    msg = _error(**overrides)
    assert f"  {field}" in msg and needle in msg


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"sequence_length": 256, "training": {"global_batch_size": 1000}}, "global_batch_size 1000 must be a multiple of sequence_length 256"),
        ({"sequence_length": 256, "training": {"microbatch_size": 768, "global_batch_size": 1024}}, "microbatch_size 768"),
        ({"tokenizer": "custom"}, "custom tokenizer needs training.vocab_size"),
        ({"tokenizer": "nope"}, "tokenizer 'nope' is not known"),
        ({"training": {"vocab_size": 100, "eos_token_id": 100}}, "eos_token_id 100 is outside the vocabulary"),
        ({"training": {"model": "gpt5_1T"}}, "not an olmo-core preset"),
        ({"training": {"n_heads": 5}}, "d_model 64 must be divisible by training.n_heads 5"),
    ],
)
def test_what_the_trainer_rejects_is_rejected_by_the_config(overrides, needle):
    assert needle in _error(**overrides)


def test_swarm_names_must_fit_a_file_name():
    assert "245 characters" in _error(name="a" * 245)
    assert ExperimentConfig.from_dict(minimal_config(name="a" * 241, variants=8)).name  # 241 + "-{8 hex}-0007" = 255


def test_validate_rejects_what_every_run_would_fail_on(tmp_path):
    for overrides, needle in [
        ({"training": {"learning_rate": float("nan")}}, "training.learning_rate"),
        ({"training": {"threads_per_run": 0}}, "training.threads_per_run"),
        ({"sequence_length": 256, "training": {"global_batch_size": 1000}}, "multiple of sequence_length"),
        ({"variants": True}, "variants"),
    ]:
        r = CliRunner().invoke(cli, ["launch", "validate", "--config", _write(tmp_path, minimal_config(**overrides))])
        assert r.exit_code == 1 and needle in r.output and "Traceback" not in r.output, r.output


def test_binary_file_or_folder_as_config(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    for path, needle in [(binary, "not a text file"), (tmp_path, "is a folder")]:
        r = CliRunner().invoke(cli, ["launch", "validate", "--config", str(path)])
        assert r.exit_code == 1 and needle in r.output and isinstance(r.exception, SystemExit), r.output


def test_read_only_storage_root_fails_before_any_work(tmp_path):
    """A folder without write permission (or, for root, which writes anywhere, /sys: never writable)."""
    if os.geteuid() == 0:
        if not os.path.isdir("/sys/fs"):
            pytest.skip("no read-only file system to try")
        root = "/sys/fs/olmix-read-only-store"
    else:
        root = str(tmp_path / "ro")
        os.mkdir(root)
        os.chmod(root, stat.S_IRUSR | stat.S_IXUSR)
    r = CliRunner().invoke(cli, ["launch", "run", "--config", _write(tmp_path, minimal_config(storage_root=root))])
    assert r.exit_code == 1 and root in r.output and "writable" in r.output and "Traceback" not in r.output, r.output
    assert not os.path.exists(root) or os.listdir(root) == []
    assert not (tmp_path / "output").exists()  # no eval script either


def test_impossible_storage_root_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = CliRunner().invoke(cli, ["launch", "run", "--config", _write(tmp_path, minimal_config(storage_root=str(blocker / "store")))])
    assert r.exit_code == 1 and r.exception is not None and isinstance(r.exception, SystemExit)
    line = r.output.strip()
    assert line.startswith("error: ") and "\n" not in line and str(blocker) in line and "storage_root" in line
    assert blocker.read_text() == "x"


def test_seed_and_output_options(tmp_path):
    path = _write(tmp_path, minimal_config(storage_root=str(tmp_path / "store")))
    r = CliRunner().invoke(cli, ["mix", "generate", "--config", path, "--output", str(tmp_path / "m.json"), "--seed", "-5"])
    assert r.exit_code == 2 and "-5 is not in the range" in r.output and not (tmp_path / "m.json").exists()
    out = tmp_path / "new" / "deeper" / "mixtures.json"
    r = CliRunner().invoke(cli, ["mix", "generate", "--config", path, "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert len(json.loads(out.read_text())) == 8


def test_same_group_id_under_two_swarm_names(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    for name in ("swarm-b", "swarm-a"):
        store.write_json(f"{name}/0badcafe/metadata.json", {"name": name})
    with pytest.raises(ConfigError, match="several swarms.*swarm-a, swarm-b"):
        find_swarm(str(tmp_path / "store"), "0badcafe")
    r = CliRunner().invoke(cli, ["launch", "status", "--group-id", "0badcafe", "--storage-root", str(tmp_path / "store")])
    assert r.exit_code == 1 and "swarm-a" in r.output and "swarm-b" in r.output and "--config" in r.output
    config = ExperimentConfig.from_dict(minimal_config(name="swarm-a", storage_root=str(tmp_path / "store")))
    store.write_text("swarm-a/0badcafe/config.yaml", config.to_yaml())
    r = CliRunner().invoke(cli, ["launch", "status", "--group-id", "0badcafe", "--config", _write(tmp_path, config.model_dump(mode="json"))])
    assert r.exit_code == 0, r.output


def test_mixtures_file_with_duplicate_rows(tmp_path):
    p = tmp_path / "mixes.json"
    p.write_text(json.dumps([{"a": 0.5, "b": 0.5}, {"a": 0.2, "b": 0.8}, {"b": [0.5, 1.0], "a": [0.5, 1.0]}, {"a": 0.2, "b": 0.8, "c": 0.0}]))
    with pytest.raises(DataError, match=r"duplicate mixtures .*2 \(same as 0\), 3 \(same as 1\)"):
        read_mixtures_file(str(p))
    p.write_text(json.dumps([{"a": 0.5, "b": 0.5}, {"a": 0.2, "b": 0.8}]))
    assert len(read_mixtures_file(str(p))) == 2


def test_beaker_user_on_a_local_config_is_said_to_be_unused(tmp_path):
    path = _write(tmp_path, minimal_config(storage_root=str(tmp_path / "store"), eval_tasks=["arc"]))
    args = ["eval", "script", "--config", path, "--group-id", "0a1b2c3d", "--output-dir", str(tmp_path / "ev")]
    r = CliRunner().invoke(cli, [*args, "--beaker-user", "kyle"])
    assert r.exit_code == 0, r.output
    assert "warning: --beaker-user 'kyle' is not used: the config's launcher is local" in r.output
    assert "warning" not in CliRunner().invoke(cli, args).output


def test_an_os_error_outside_the_store_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = _write(tmp_path, minimal_config(storage_root=str(tmp_path / "store")))
    r = CliRunner().invoke(cli, ["mix", "generate", "--config", path, "--output", str(blocker / "m.json")])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    line = r.output.strip()
    assert line.startswith(f"error: {blocker}") and "\n" not in line and "can exist" in line


def test_dry_run_of_a_huge_swarm_prints_a_summary_and_writes_specs_on_request(tmp_path):
    path = _write(tmp_path, minimal_config(variants=1000, storage_root=str(tmp_path / "store")))
    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--dry-run"])
    assert r.exit_code == 0, r.output
    assert len(r.output) < 3000 and "dry run: 1000 runs of test-swarm" in r.output and "... and 997 more" in r.output
    assert "--specs-out FILE" in r.output and "web:science" in r.output  # the per-leaf summary
    out = tmp_path / "new" / "specs.json"
    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--dry-run", "--specs-out", str(out)])
    assert r.exit_code == 0, r.output
    specs = json.loads(out.read_text())
    assert len(specs) == 1000 and specs[-1]["variant"] == 999 and f"specs: {out}" in r.output
    assert not (tmp_path / "store" / "test-swarm").exists()
    r = CliRunner().invoke(cli, ["launch", "run", "--config", path, "--specs-out", str(out)])
    assert r.exit_code == 1 and "use it with --dry-run" in r.output

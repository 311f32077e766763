"""Preparing a swarm in the store: stages, idempotency for an existing group id, given mixtures, verify specs."""

from __future__ import annotations

import json

import pytest
import yaml

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError, DataError, InfeasibleError
from olmix_core.names import parse_run_name
from olmix_core.sampling import read_mixtures_file
from olmix_core.stages.setup import prepare_swarm, store_verify_spec
from olmix_core.store import SwarmStore
from tests.launch.conftest import launch_config


def test_prepare_writes_every_artifact(tmp_path):
    config = launch_config(tmp_path, variants=4)
    swarm, specs = prepare_swarm(config, launcher="local")
    store = swarm.store
    assert [parse_run_name(s.run_name)[1:] for s in specs] == [(swarm.group_id, i) for i in range(4)]
    priors = store.read_json(swarm.key(SwarmStore.PRIORS))
    assert priors["token_counts"] == config.priors.token_counts
    mixtures = store.read_json(swarm.key(SwarmStore.MIXTURES))
    assert len(mixtures) == 4 and all(abs(sum(w for w, _ in m.values()) - 1) < 1e-9 for m in mixtures)
    assert ExperimentConfig.from_dict(yaml.safe_load(store.read_text(swarm.key(SwarmStore.CONFIG)))) == config
    assert set(swarm.run_names()) == {s.run_name for s in specs}
    meta = swarm.metadata()
    assert meta.group_id == swarm.group_id and meta.launcher == "local"
    assert meta.run_names == [s.run_name for s in specs]
    assert "git_commit" in meta.model_fields_set and meta.created


def test_existing_group_reuses_mixtures_and_keeps_created(tmp_path):
    config = launch_config(tmp_path, variants=3)
    swarm, specs = prepare_swarm(config)
    created = swarm.metadata().created
    reseeded = ExperimentConfig.from_dict({**config.model_dump(mode="json"), "seed": 7})
    with pytest.raises(ConfigError, match="different spec"):  # a new seed would change existing runs
        prepare_swarm(reseeded, group_id=swarm.group_id)
    again, specs2 = prepare_swarm(config, group_id=swarm.group_id)
    assert again.group_id == swarm.group_id
    assert [s.model_dump() for s in specs2] == [s.model_dump() for s in specs]
    assert again.metadata().created == created
    other, _ = prepare_swarm(config)
    assert other.group_id != swarm.group_id


def test_changed_training_for_same_group_is_an_error_naming_the_field(tmp_path):
    config = launch_config(tmp_path, variants=2)
    swarm, _ = prepare_swarm(config)
    changed = ExperimentConfig.from_dict({**config.model_dump(mode="json"), "training": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError, match="training"):
        prepare_swarm(changed, group_id=swarm.group_id)


def test_bad_group_id_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="^group_id: "):
        prepare_swarm(launch_config(tmp_path), group_id="../../etc")


def test_given_mixtures_are_validated_and_used(tmp_path):
    config = launch_config(tmp_path)
    path = tmp_path / "mix.json"
    path.write_text(json.dumps([{"wiki": 0.5, "code": [0.5, 1.0]}, {"web:science": 1.0}]))
    swarm, specs = prepare_swarm(config, mixtures=read_mixtures_file(str(path)))
    assert len(specs) == 2  # the file decides the number of runs
    assert specs[0].weights() == {"wiki": 0.5, "code": 0.5}
    assert specs[1].weights() == {"web:science": 1.0}
    stored = swarm.store.read_json(swarm.key(SwarmStore.MIXTURES))
    assert stored[1]["wiki"] == [0.0, 1.0]
    # the same group with other mixtures is refused
    path.write_text(json.dumps([{"wiki": 1.0}]))
    with pytest.raises(ConfigError, match="different mixtures"):
        prepare_swarm(config, group_id=swarm.group_id, mixtures=read_mixtures_file(str(path)))


@pytest.mark.parametrize(
    "mixtures, error, match",
    [
        ([{"nope": 1.0}], DataError, "not in the config"),
        ([{"wiki": 0.5, "code": 0.2}], DataError, "sum to 0.7"),
        ([{"wiki": 1.5, "code": -0.5}], DataError, "outside"),
        ([{"web:sports": 1.0}], InfeasibleError, "web:sports"),  # 500k tokens for a 1M-token run
    ],
)
def test_bad_given_mixtures(tmp_path, mixtures, error, match):
    with pytest.raises(error, match=match):
        prepare_swarm(launch_config(tmp_path), mixtures=mixtures)


def test_mixtures_file_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_mixtures_file(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DataError, match="bad.json"):
        read_mixtures_file(str(bad))
    bad.write_text(json.dumps([{"wiki": "lots"}]))
    with pytest.raises(DataError, match="mixture 0, leaf 'wiki'"):
        read_mixtures_file(str(bad))


def test_verify_spec_takes_next_variant_and_is_reused(tmp_path):
    config = launch_config(tmp_path, variants=3)
    swarm, _ = prepare_swarm(config)
    weights = {"wiki": 0.4, "code": 0.3, "web:science": 0.3, "web:sports": 1e-9}
    spec = store_verify_spec(config, swarm, weights)
    assert spec.purpose == "verify" and spec.variant == 3
    assert parse_run_name(spec.run_name) == (config.name, swarm.group_id, 3)
    assert spec.weights() == pytest.approx({"wiki": 0.4, "code": 0.3, "web:science": 0.3})
    assert store_verify_spec(config, swarm, weights).run_name == spec.run_name
    other = store_verify_spec(config, swarm, {"wiki": 0.5, "code": 0.5})
    assert other.variant == 4
    meta = swarm.metadata()
    assert meta.verify_runs == [spec.run_name, other.run_name]
    assert spec.run_name not in meta.run_names

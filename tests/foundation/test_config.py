import pytest
import yaml

from olmix_core.config import ExperimentConfig, load_config, model_params
from olmix_core.errors import ConfigError
from tests.conftest import minimal_config


def test_minimal_config_resolves_leaves_and_tokens():
    cfg = ExperimentConfig.from_dict(minimal_config())
    assert cfg.leaf_names() == ["wiki", "code", "web:science", "web:sports"]
    assert cfg.target_tokens == 1_000_000
    assert cfg.leaf_repetition_caps() == {"wiki": 1.0, "code": 1.0, "web:science": 1.0, "web:sports": 1.0}


def test_yaml_roundtrip(tmp_path):
    cfg = ExperimentConfig.from_dict(minimal_config(seed=7))
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    again = ExperimentConfig.from_yaml(p)
    assert again == cfg
    assert load_config(str(p)) == cfg and load_config(cfg.model_dump()) == cfg


def test_chinchilla_tokens():
    cfg = ExperimentConfig.from_dict(minimal_config(max_tokens=None, proxy_model_id="olmo2_30M", chinchilla_multiple=0.5))
    assert cfg.target_tokens == 20 * 30_000_000 // 2
    assert model_params("olmo2_1B") == 1_000_000_000


def test_repetition_caps_take_the_smaller_factor():
    c = minimal_config(repetition_factor=4.0)
    c["sources"][0]["max_repetition_factor"] = 2.0
    cfg = ExperimentConfig.from_dict(c)
    assert cfg.leaf_repetition_caps()["wiki"] == 2.0
    assert cfg.leaf_repetition_caps()["code"] == 1.0


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda c: c.update(sources=[]), "sources"),
        (lambda c: c["sources"].append({"name": "wiki", "paths": ["x"]}), "duplicate source names"),
        (lambda c: c["sources"][0].update(topics=[{"name": "t", "paths": ["p"]}]), "exactly one of `paths` or `topics` (got both)"),
        (lambda c: c["sources"][0].pop("paths"), "(got neither)"),
        (lambda c: c.update(variants=0), "variants"),
        (lambda c: c.update(max_tokens=-5), "max_tokens"),
        (lambda c: c["sources"][0].update(weight=1.5), "sources.0.weight"),
        (lambda c: c.update(fixed_source_weights={"wiki": 0.7, "code": 0.6}), "sum to 1.3000 > 1"),
        (lambda c: c.update(fixed_source_weights={"nope": 0.1}), "unknown sources ['nope']"),
        (lambda c: c.update(mix_temprature=0.5), "mix_temprature: unknown key"),
        (lambda c: c["sources"][1].update(colour="red"), "sources.1.colour: unknown key"),
        (lambda c: c.update(name="bad name; rm -rf /"), "name 'bad name; rm -rf /' must match"),
        (lambda c: c["sources"][2]["topics"][0].update(name="$(x)"), "topic name"),
        (lambda c: c.update(priority="asap"), "priority"),
        (lambda c: c.update(dtype="int8"), "dtype"),
        (lambda c: c.update(max_tokens=None), "proxy_model_id and chinchilla_multiple"),
        (lambda c: c.update(priors={"token_counts": {"wiki": 1}}), "no count for leaves"),
        (lambda c: c.update(nonzero_weight=["ghost"]), "nonzero_weight"),
    ],
)
def test_invalid_configs_name_the_field(mutate, needle):
    c = minimal_config()
    mutate(c)
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict(c, "my.yaml")
    assert needle in str(e.value)
    assert str(e.value).startswith("my.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ExperimentConfig.from_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ExperimentConfig.from_yaml(bad)


SEED_STYLE = {  # the seed's / regmixer's top-level infrastructure and eval keys
    "budget": "ai2/oe-data", "workspace": "ai2/olmix", "cluster": "ai2/jupiter", "priority": "high",
    "preemptible": False, "nodes": 2, "gpus": 8, "weka": True,
    "eval_sources": {"held": ["/d/val.bin"]}, "eval_interval": 50, "eval_tasks": ["arc_easy:bpb"], "eval_cluster": "goog",
    "eval_model_backend": "vllm", "checkpoint_roots": {"weka": "/weka/b/{user}"}, "eval_results_prefix": "s3://b/evals",
    "offline_eval": {"batch_size": 4},
}


def test_seed_style_keys_load_into_their_blocks_with_a_deprecation_note(caplog):
    with caplog.at_level("WARNING", logger="olmix.config"):
        config = ExperimentConfig.from_dict(minimal_config(**SEED_STYLE, beaker={"image": "ai2/x"}), "seed.yaml")
    b, e = config.beaker, config.evaluation
    assert (b.budget, b.workspace, b.cluster, b.priority.value, b.preemptible, b.nodes, b.gpus, b.weka, b.image) == (
        "ai2/oe-data", "ai2/olmix", "ai2/jupiter", "high", False, 2, 8, True, "ai2/x")
    assert (e.sources, e.interval, e.tasks, e.cluster, e.model_backend, e.checkpoint_roots, e.results_prefix, e.offline.batch_size) == (
        {"held": ["/d/val.bin"]}, 50, ["arc_easy:bpb"], "goog", "vllm", {"weka": "/weka/b/{user}"}, "s3://b/evals", 4)
    assert "seed.yaml: config key 'budget' is deprecated: use 'beaker.budget'" in caplog.text
    assert "config key 'offline_eval' is deprecated: use 'evaluation.offline'" in caplog.text
    assert caplog.text.count("is deprecated") == len(SEED_STYLE)
    # what is stored (config.yaml) is in the new shape: it reloads to the same config without a note
    caplog.clear()
    with caplog.at_level("WARNING", logger="olmix.config"):
        again = ExperimentConfig.from_dict(yaml.safe_load(config.to_yaml()))
    assert again == config and "deprecated" not in caplog.text


def test_a_key_set_in_both_places_is_an_error_naming_both():
    with pytest.raises(ConfigError, match=r"gpus: set both at the top level and as beaker.gpus; keep only beaker.gpus"):
        ExperimentConfig.from_dict(minimal_config(gpus=2, beaker={"gpus": 4}))
    # the same value twice, or a dumped config (defaults in the block) with a legacy key, is not a clash
    assert ExperimentConfig.from_dict(minimal_config(gpus=2, beaker={"gpus": 2})).beaker.gpus == 2
    dumped = ExperimentConfig.from_dict(minimal_config()).model_dump(mode="json")
    assert ExperimentConfig.from_dict({**dumped, "eval_results_prefix": "s3://b/e"}).evaluation.results_prefix == "s3://b/e"


def test_block_fields_keep_their_rules():
    with pytest.raises(ConfigError, match=r"beaker.nodes: must be > 0"):
        ExperimentConfig.from_dict(minimal_config(beaker={"nodes": 0}))
    with pytest.raises(ConfigError, match=r"beaker.nodes: must be > 0"):
        ExperimentConfig.from_dict(minimal_config(nodes=0))
    with pytest.raises(ConfigError, match=r"evaluation.gpu: unknown key"):
        ExperimentConfig.from_dict(minimal_config(evaluation={"gpu": 1}))

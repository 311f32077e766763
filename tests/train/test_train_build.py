"""RunSpec → olmo-core config objects, without training."""

import os

import numpy as np
import pytest
from olmo_core.exceptions import OLMoConfigurationError
from olmo_core.nn.transformer import TransformerBlockType

from olmix_core.errors import ConfigError, DataError
from olmix_core.train.data import (
    batching,
    build_data_loader,
    build_dataset,
    build_eval_dataset,
    build_lm_evaluator,
    build_mixture,
    eval_steps,
)
from olmix_core.train.model import build_model, build_tokenizer, model_choice
from olmix_core.train.trainer import (
    MetricsCollector,
    OlmixWandBCallback,
    build_train_module,
    build_trainer,
    checkpoint_folder,
)
from tests.train._train_helpers import make_spec, tiny_config


@pytest.fixture
def spec(demo_dir, tmp_path):
    return make_spec(tiny_config(demo_dir, tmp_path / "store"))


def _with_training(spec, **fields):
    return spec.model_copy(update={"training": spec.training.model_copy(update=fields)})


# tokenizer ---------------------------------------------------------------------------------------


def test_custom_tokenizer_from_training_fields(spec):
    tok = build_tokenizer(spec)
    assert (tok.vocab_size, tok.eos_token_id, tok.pad_token_id) == (258, 256, 257)
    assert tok.padded_vocab_size() == 384


@pytest.mark.parametrize("name, vocab, eos", [("dolma2", 100278, 100257), ("gpt-neox", 50280, 50279), ("gpt2", 50257, 50256)])
def test_named_tokenizers(spec, name, vocab, eos):
    s = _with_training(spec.model_copy(update={"tokenizer": name}), vocab_size=None, eos_token_id=None, pad_token_id=None)
    tok = build_tokenizer(s)
    assert (tok.vocab_size, tok.eos_token_id) == (vocab, eos)


def test_bad_tokenizers_name_the_field(spec):
    unknown = _with_training(spec.model_copy(update={"tokenizer": "llama9"}), vocab_size=None)
    with pytest.raises(ConfigError, match="tokenizer 'llama9'"):
        build_tokenizer(unknown)
    with pytest.raises(ConfigError, match="eos_token_id"):
        build_tokenizer(_with_training(spec, eos_token_id=None))
    with pytest.raises(ConfigError, match="pad_token_id 300 is outside"):
        build_tokenizer(_with_training(spec, pad_token_id=300))


# model -------------------------------------------------------------------------------------------


def test_tiny_custom_shape_is_an_olmo2_block(spec):
    assert model_choice(spec) == ("custom", {"d_model": 64, "n_layers": 2, "n_heads": 4})
    model = build_model(spec, build_tokenizer(spec))
    assert model.vocab_size == 384 and model.d_model == 64 and model.n_layers == 2
    assert model.block.name == TransformerBlockType.reordered_norm
    assert model.block.sequence_mixer.qk_norm is not None
    assert 100_000 < model.num_params < 200_000


def test_presets_by_name_alias_and_precedence(spec):
    preset = _with_training(spec, model="olmo2_30M", d_model=None, n_layers=None, n_heads=None)
    m = build_model(preset, build_tokenizer(preset))
    assert (m.d_model, m.n_layers) == (256, 4)
    # no shape given: the config's proxy_model_id, including the seed's spelling (olmo_14m)
    by_id = _with_training(spec, d_model=None, n_layers=None, n_heads=None).model_copy(update={"proxy_model_id": "olmo_14m"})
    assert model_choice(by_id) == ("olmo2_14M", {})
    assert build_model(by_id, build_tokenizer(by_id)).d_model == 128
    # an explicit shape wins over proxy_model_id (which may only be there to size the token budget)
    assert model_choice(spec.model_copy(update={"proxy_model_id": "olmo2_14M"}))[0] == "custom"
    with pytest.raises(ConfigError, match="not an olmo-core preset"):
        model_choice(_with_training(spec, model="gpt5_1T"))
    with pytest.raises(ConfigError, match="divisible"):
        model_choice(_with_training(spec, n_heads=5))


# batches, mixture, evals -------------------------------------------------------------------------


def test_batching_counts_tokens_and_whole_steps(spec):
    b = batching(spec)
    assert (b.global_batch_tokens, b.microbatch_tokens, b.steps) == (4096, 4096, 200)
    assert b.requested_tokens == 819_200
    s = spec.model_copy(update={"max_tokens": 10_000})
    assert batching(s).steps == 2  # floor: never more tokens than the budget
    with pytest.raises(ConfigError, match="multiple of sequence_length"):
        batching(_with_training(spec, global_batch_size=1000))
    with pytest.raises(ConfigError, match="microbatch_size"):
        batching(_with_training(spec, microbatch_size=1536))
    assert batching(_with_training(spec, global_batch_size=None)).global_batch_tokens == 16 * 256


def test_mixture_drops_zero_weights_and_builds_the_requested_ratios(demo_dir, tmp_path):
    config = tiny_config(demo_dir, tmp_path / "store")
    mix = {"a": [0.5, 1.0], "b": [0.0, 1.0], "c": [0.25, 1.0], "d": [0.15, 1.0], "e": [0.1, 1.0]}
    spec = make_spec(config, mix)
    batch = batching(spec)
    cfg = build_mixture(spec, batch)
    sources = {s.source_name: s for s in cfg.source_list.sources}
    assert set(sources) == {"a", "c", "d", "e"}
    assert sum(s.target_ratio for s in sources.values()) == pytest.approx(1.0)
    assert sources["a"].paths == [str(demo_dir / "train" / "a" / f"part-{i}.bin") for i in range(2)]
    assert sources["a"].max_repetition_ratio == pytest.approx(2.0)  # the config's cap
    built = cfg.build(npdtype=np.uint16, sequence_length=256)
    got = {o.name: sum(p.tokens for p in o.path_tokens) for o in built.sources}
    assert sum(got.values()) == batch.requested_tokens
    for leaf, (w, _) in mix.items():
        if w:
            assert abs(got[leaf] - w * batch.requested_tokens) <= 2 * 256, leaf  # within a sequence per file


def test_mixture_repeats_a_small_source_up_to_its_cap(demo_dir, tmp_path):
    mix = {"a": [0.1, 1.0], "e": [0.9, 1.0]}  # e has 300k tokens; 0.9 × 819k needs it 2.46 times
    capped = make_spec(tiny_config(demo_dir, tmp_path / "s1"), mix)  # cap 2
    with pytest.raises(OLMoConfigurationError, match="Insufficient tokens for source: e"):
        build_mixture(capped, batching(capped)).build(npdtype=np.uint16, sequence_length=256)
    config = tiny_config(demo_dir, tmp_path / "s2", repetition_factor=3.0, sources=[
        {"name": n, "paths": [str(demo_dir / "train" / n / "*.bin")], "max_repetition_factor": 3.0} for n in "abcde"
    ])
    spec = make_spec(config, mix)
    built = build_mixture(spec, batching(spec)).build(npdtype=np.uint16, sequence_length=256)
    e = next(o for o in built.sources if o.name == "e")
    assert len(e.path_tokens) == 6  # two files, read three times (2 full passes + part of a third)
    assert sum(p.tokens for p in e.path_tokens) > 2 * 300_000
    # a mixture file's own repetition factor (the seed's [weight, repetition_factor]) is honoured too
    explicit = make_spec(tiny_config(demo_dir, tmp_path / "s3"), {"a": [0.1, 1.0], "e": [0.9, 2.5]})
    assert build_mixture(explicit, batching(explicit)).source_list.sources[1].max_repetition_ratio == pytest.approx(2.5)


def test_folder_paths_resolve_to_files_and_missing_paths_name_the_leaf(demo_dir, tmp_path):
    config = tiny_config(demo_dir, tmp_path / "store", sources=[
        {"name": "a", "paths": [str(demo_dir / "train" / "a")]},
        {"name": "b", "paths": [str(tmp_path / "nowhere" / "*.bin")]},
    ])
    spec = make_spec(config, {"a": [0.5, 1.0], "b": [0.5, 1.0]})
    with pytest.raises(DataError, match="mixture leaf 'b'.*matches no file"):
        build_mixture(spec, batching(spec))
    only_a = make_spec(config, {"a": [1.0, 1.0], "b": [0.0, 1.0]})
    assert build_mixture(only_a, batching(only_a)).source_list.sources[0].paths == [
        str(demo_dir / "train" / "a" / "part-0.bin"), str(demo_dir / "train" / "a" / "part-1.bin")
    ]


def test_relative_paths_resolve_against_the_working_directory(demo_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(demo_dir.parent)
    config = tiny_config(demo_dir, tmp_path / "store").model_dump(mode="json")
    config["sources"] = [{"name": "a", "paths": [f"{demo_dir.name}/train/a/*.bin"]}]
    config["evaluation"]["sources"] = {"a": [f"{demo_dir.name}/val/a.bin"]}
    from olmix_core.config import ExperimentConfig

    spec = make_spec(ExperimentConfig.from_dict(config), {"a": [1.0, 1.0]})
    paths = build_mixture(spec, batching(spec)).source_list.sources[0].paths
    assert all(os.path.isabs(p) and os.path.exists(p) for p in paths)


def test_eval_dataset_has_one_label_per_file_and_one_instance_per_document(spec, demo_dir, tmp_path):
    tok = build_tokenizer(spec)
    cfg = build_eval_dataset(spec, tok, str(tmp_path / "work"))
    assert [m["label"] for m in cfg.metadata] == ["a", "b", "c", "d", "e", "target"]
    assert cfg.paths[-1] == str(demo_dir / "val" / "target.bin")
    ds = cfg.build()
    ds.prepare()
    assert len(ds) == 5 * 100 + 200  # every validation document is its own (untruncated) instance
    assert build_eval_dataset(spec.model_copy(update={"eval_sources": {}}), tok, str(tmp_path)) is None


def test_evaluator_runs_at_the_end_and_every_eval_interval(spec, tmp_path):
    tok = build_tokenizer(spec)
    ev = build_lm_evaluator(spec, tok, 200, str(tmp_path))
    assert ev.eval_on_finish and ev.fixed_steps is None and ev.eval_interval is None
    assert eval_steps(spec.model_copy(update={"eval_interval": 50}), 200) == [50, 100, 150]  # 200: the final eval


def test_dataset_and_loader_configs(spec, tmp_path):
    tok = build_tokenizer(spec)
    batch = batching(spec)
    ds = build_dataset(spec, tok, batch, str(tmp_path))
    assert ds.sequence_length == 256 and ds.dtype == "uint16" and ds.source_mixture_config.seed == spec.seed
    loader = build_data_loader(spec, batch, str(tmp_path))
    assert loader.global_batch_size == 4096 and loader.seed == spec.seed and loader.num_workers == 0


# train module and trainer ------------------------------------------------------------------------


def test_train_module_schedule_and_optimizer(spec):
    tm = build_train_module(spec, batching(spec))
    assert tm.optim.lr == pytest.approx(0.004) and tm.optim.weight_decay == pytest.approx(0.1)
    assert tm.scheduler.warmup == 20  # 10% of 200 steps
    assert tm.rank_microbatch_size == 4096 and tm.max_sequence_length == 256 and tm.dp_config is None
    assert build_train_module(spec, batching(spec), world_size=2).dp_config is not None


def test_trainer_checkpoints_to_the_spec_folder_and_wandb_is_off_by_default(spec, tmp_path):
    cfg = build_trainer(spec, batching(spec), build_tokenizer(spec), str(tmp_path / "work"))
    assert cfg.save_folder == os.path.abspath(spec.checkpoint_dir) == checkpoint_folder(spec)
    assert cfg.max_duration.value == 200
    ckpt = cfg.callbacks["checkpointer"]
    assert ckpt.save_interval is None and ckpt.pre_train_checkpoint is False and ckpt.save_async is False
    assert isinstance(cfg.callbacks["olmix_metrics"], MetricsCollector)
    assert "lm_evaluator" in cfg.callbacks and "wandb" not in cfg.callbacks
    with_interval = _with_training(spec, checkpoint_interval=50)
    assert build_trainer(with_interval, batching(spec), build_tokenizer(spec), str(tmp_path)).callbacks["checkpointer"].save_interval == 50


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_wandb_callback_records_mixture_and_group(spec, tmp_path, mode):
    s = _with_training(spec, wandb=spec.training.wandb.model_copy(update={"mode": mode, "project": "proj", "entity": "team"}))
    cb = build_trainer(s, batching(s), build_tokenizer(s), str(tmp_path)).callbacks["wandb"]
    assert isinstance(cb, OlmixWandBCallback)
    assert cb.offline is (mode == "offline") and (cb.project, cb.entity) == ("proj", "team")
    assert cb.group == spec.group_id and cb.name == cb.run_id == spec.run_name
    assert cb.config["mixture"] == spec.weights() and cb.config["group_id"] == spec.group_id
    assert (cb.cancel_tags is None) is (mode == "offline")  # offline runs never call the WandB API


def test_metrics_collector_keeps_the_latest_values_across_a_checkpoint():
    c = MetricsCollector()
    c.log_metrics(5, {"train/CE loss": 3.0})
    c.log_metrics(10, {"train/CE loss": 2.0, "eval/lm/a/CE loss": 1.5})
    restored = MetricsCollector()
    restored.load_state_dict(c.state_dict())
    assert restored.latest == {"train/CE loss": 2.0, "eval/lm/a/CE loss": 1.5}

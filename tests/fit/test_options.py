"""The one fit-options model: nested sections, one rule per field, errors naming the field, the flat keys of
earlier versions (with a deprecation note), the experiment config's `fit:` block, and the generated reference."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.fit.fit_file import read_fit_file
from olmix_core.fit.options import FitOptions, options_from_experiment, reference_markdown

REFERENCE = Path(__file__).parents[2] / "docs" / "reference" / "fit-config.md"


def _experiment(fit: dict) -> dict:
    return {"name": "x", "max_tokens": 10**6, "sources": [{"name": "a", "paths": ["/a"]}, {"name": "b", "paths": ["/b"]}],
            "fit": fit}


def test_flat_keys_load_into_their_sections_with_a_deprecation_note(caplog):
    with caplog.at_level(logging.WARNING, logger="olmix_core.fit.options"):
        flat = FitOptions(regression_type="linear", kl_reg=0.1, objective="loss", repetition_factor=2.0, fit_only=True)
    nested = FitOptions(regression={"type": "linear"}, proposer={"kl_reg": 0.1, "fit_only": True},
                        filtering={"objective": "loss"}, constraints={"repetition_factor": 2.0})
    assert flat == nested
    assert "'regression_type' is deprecated: use 'regression.type'" in caplog.text
    assert "fit.proposer.kl_reg" in caplog.text
    with pytest.raises(ValueError, match="both given"):
        FitOptions(kl_reg=0.1, proposer={"kl_reg": 0.2})


def test_experiment_fit_block_flat_and_nested_are_the_same_options(caplog):
    with caplog.at_level(logging.WARNING, logger="olmix_core.fit.options"):
        old = ExperimentConfig.from_dict(_experiment({"objective": "loss", "proposer_type": "general",
                                                      "min_weight_per_domain": 0.1, "repetition_factor": 3.0}))
    new = ExperimentConfig.from_dict(_experiment({"filtering": {"objective": "loss"}, "proposer": {"type": "general"},
                                                  "constraints": {"min_weight_per_domain": 0.1, "repetition_factor": 3.0}}))
    assert old.fit == new.fit and "use 'constraints.min_weight_per_domain'" in caplog.text
    opts = options_from_experiment(new)  # the swarm's own target tokens and seed fill what the block leaves unset
    assert opts.constraints.target_tokens == 10**6 and opts.constraints.repetition_factor == 3.0
    assert opts.seed == new.seed and opts.proposer.type == "general"
    default = options_from_experiment(ExperimentConfig.from_dict(_experiment({})))
    assert default.constraints.repetition_factor == {"a": 1.0, "b": 1.0}  # the leaves' caps


@pytest.mark.parametrize(
    "fit, field, why",
    [
        ({"proposer": {"kl_reg": -1}}, "fit.proposer.kl_reg", "must be >= 0"),
        ({"constraints": {"repetition_factor": 0}}, "fit.constraints.repetition_factor", "must be > 0"),
        ({"constraints": {"repetition_factor": {"a": -2}}}, "fit.constraints.repetition_factor", "must be > 0"),
        ({"regression": {"type": "nope"}}, "fit.regression.type", "unknown regression type"),
        ({"regression": {"train_split": 2.5}}, "fit.regression.train_split", "whole number"),
        ({"proposer": {"make_worst_mix": True, "type": "exact"}}, "fit.proposer.make_worst_mix", "exact proposer"),
        ({"constraints": {"enabled": True}}, "fit.constraints.enabled", "requires constraints.target_tokens"),
        ({"regression": {"aggregate_task_families": True}}, "fit.regression.aggregate_task_families", "eval.tasks"),
        ({"filtering": {"objective": "a", "obj_weights": {"a": 1}}}, "fit.filtering.obj_weights", "alternatives"),
        ({"filtering": {"obj_weights": {"a": "7/0"}}}, "fit.filtering.obj_weights", "not a number"),
        ({"proposer": {"kl": 1}}, "fit.proposer.kl", "unknown key"),
    ],
)
def test_errors_name_the_config_field(fit, field, why):
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict(_experiment(fit))
    line = next(li for li in str(e.value).splitlines() if field in li)
    assert why in line, str(e.value)


def test_one_rule_per_field_everywhere():
    """repetition_factor: > 0 in the options, whether from the experiment config, a fit file or the library."""
    ok = FitOptions(constraints={"repetition_factor": 0.5})
    assert ok.constraints.repetition_factor == 0.5
    assert ExperimentConfig.from_dict(_experiment({"constraints": {"repetition_factor": 0.5}})).fit == ok
    with pytest.raises(ConfigError, match=r"constraints\.repetition_factor: repetition_factor must be > 0"):
        FitOptions.from_dict({"constraints": {"repetition_factor": 0}})


def test_numbers_fractions_and_suffixes():
    o = FitOptions(filtering={"obj_weights": {"math": "7/52.0", "qa": 0.5}}, constraints={"target_tokens": "6T",
                   "fixed_weights": {"a": "1/4"}})
    assert o.filtering.obj_weights == {"math": 7 / 52, "qa": 0.5}
    assert o.constraints.target_tokens == 6e12 and o.constraints.fixed_weights == {"a": 0.25}


def test_cli_names_its_flags_and_the_config_file_its_keys(tmp_path, swarm_files):
    r, m, _ = swarm_files
    cfg = tmp_path / "fit.yaml"
    cfg.write_text(f"swarm: {{ratios: {r}, metrics: {m}}}\nproposer: {{kl_reg: -1, type: general}}\n"
                   "regression: {type: linear}\n")
    res = CliRunner().invoke(cli, ["fit", "--config", str(cfg), "--output", str(tmp_path / "o")])
    assert res.exit_code == 1 and f"{cfg}: proposer.kl_reg: value must be >= 0" in res.output
    res = CliRunner().invoke(cli, ["fit", "--config", str(cfg), "--output", str(tmp_path / "o"), "--kl-reg", "-2"])
    assert res.exit_code == 1 and "--kl-reg: value must be >= 0 (got -2.0)" in res.output
    res = CliRunner().invoke(cli, ["fit", "--config", str(cfg), "--output", str(tmp_path / "o"), "--kl-reg", "0",
                                   "--objective", "nope", "--n-jobs", "1", "--no-plots"])
    assert res.exit_code == 1 and "--objective: 'nope' is not a metric" in res.output
    assert not (tmp_path / "o").exists()


def test_earlier_flat_fit_files_still_load(tmp_path):
    for name in ("r.csv", "m.csv"):
        (tmp_path / name).write_text("x")
    cfg = tmp_path / "fit.yaml"
    cfg.write_text("ratios: r.csv\nmetrics: m.csv\nregression_type: linear\nmetric: [a]\nno_plots: true\nseed: 3\n")
    f = read_fit_file(cfg)
    o = FitOptions.from_dict(f.values, f.path)
    assert (f.ratios, f.metrics) == (str(tmp_path / "r.csv"), str(tmp_path / "m.csv"))
    assert o.regression.type == "linear" and o.filtering.metrics == ["a"] and o.plots is False and o.seed == 3
    assert any("'regression_type' is deprecated: use 'regression.type'" in n for n in f.notes)
    assert any("use 'swarm.ratios'" in n for n in f.notes)
    cfg.write_text("swarm: {ratios: r.csv, metrics: m.csv}\nmetrics: [a, b]\n")  # a list is the flat metric selection
    assert FitOptions.from_dict(read_fit_file(cfg).values).filtering.metrics == ["a", "b"]


def test_ai2_defaults_apply_where_the_file_is_silent(tmp_path):
    for name in ("r.csv", "m.csv"):
        (tmp_path / name).write_text("x")
    cfg = tmp_path / "fit.yaml"
    cfg.write_text("swarm: {ratios: r.csv, metrics: m.csv}\npriors: {relative_sizes: {a: 1}, token_counts: {a: 5}}\n"
                   "proposer: {temperature: 0.5}\n")
    f = read_fit_file(cfg)
    o = FitOptions.from_dict(f.values, f.path)
    assert (o.regression.type, o.proposer.type, o.constraints.repetition_factor, o.constraints.enabled) == (
        "log_linear", "exact", 4.0, False)
    assert sum("Ai2's default" in n for n in f.notes) == 4
    assert any("proposer.temperature is used by simulation proposers only" in n for n in f.notes)


def test_reference_doc_is_generated_from_the_model():
    text = REFERENCE.read_text()
    start, end = "<!-- generated: fit options -->\n", "<!-- end generated -->"
    table = text[text.index(start) + len(start): text.index(end)]
    from olmix_core.commands.fit import FLAGS

    assert table == reference_markdown(FLAGS), (
        "docs/reference/fit-config.md is out of date: python -m olmix_core.fit.options > table, paste between the markers"
    )


def test_our_own_file_with_a_swarm_section_keeps_our_defaults(tmp_path):
    for name in ("r.csv", "m.csv", "priors.json"):
        (tmp_path / name).write_text("x")
    cfg = tmp_path / "fit.yaml"
    cfg.write_text("swarm: {ratios: r.csv, metrics: m.csv}\npriors: priors.json\nproposer: {kl_reg: 0.1}\n")
    f = read_fit_file(cfg)
    o = FitOptions.from_dict(f.values, f.path)
    assert (o.regression.type, o.proposer.type, o.proposer.kl_reg) == ("auto", "auto", 0.1) and not f.notes
    assert f.priors == str(tmp_path / "priors.json")


def test_every_fit_flag_sets_one_options_field():
    from olmix_core.commands.fit import FIELDS, fit

    params = {p.name for p in fit.params} - {"config_file", "ratios", "metrics", "priors", "output_dir"}
    assert params == set(FIELDS)
    for field in FIELDS.values():
        section, _, name = field.rpartition(".")
        model = FitOptions.model_fields[section].annotation if section else FitOptions
        assert name in model.model_fields, field


def test_inloop_eval_families_name_metric_columns():
    o = FitOptions(eval={"type": "inloop", "tasks": {"qa": {"arc_easy": "eval/arc_easy/bpb"}, "lm": {"c4": "eval/c4"}}})
    assert o.eval.families == {"qa": ["eval/arc_easy/bpb"], "lm": ["eval/c4"]}
    with pytest.raises(ConfigError, match="regression.type: Ai2's autoscale regressor has no equivalent"):
        FitOptions.from_dict({"regression": {"type": "autoscale"}})
